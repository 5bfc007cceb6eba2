"""`bo.sample` under `jax.distributed`: 2 processes on this machine against 1.

Two CPU processes (one device each) join a coordinator on 127.0.0.1 with the CPU collectives
through gloo (tests/scripts/distributed_runs.py); the global mesh has 2 devices, one per
process. Every process ends with all the draws.

- SGLD, chains over the processes (mesh 2 x 1) and the data over them (1 x 2): the draws of
  each process equal those of a 1-process, 1-device run with the same key to 1e-5 (float
  rounding), and the two processes hold the same draws.
- The checkpoint of a 2-process run is written once, by process 0, and a second 2-process run
  with the same arguments resumes from it (no chunk is sampled again) with the same draws.
- Progress (the phase lines and the live bar) is shown by process 0 only.
- The draw store (`store=`) of a 2-process run is written by process 0 and opened by both
  (the data-mesh run above streams its draws there).
- NUTS on the posteriordb posterior sblri-blr (float64), 4 chains over the 2 processes: every
  parameter's mean within 4 combined MCSE of the reference and its sd within 10% (the gates of
  tests/test_posteriordb_nuts.py); about 20 s.
"""

import json
import math
import socket
import subprocess
import sys

import numpy as np
import pytest
from scripts import launch

SCRIPT = launch.SCRIPT.parent / "distributed_runs.py"
SGLD = {
    "sampler": "sgld",
    "num_chains": 4,
    "num_warmup": 100,
    "num_draws": 100,
    "chunk_size": 25,
    "seed": 3,
}
MODEL = {"seed": 0, "num_features": 3, "num_points": 50}
TOLERANCE = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_distributed(spec, folder, name, cache, *, x64=False, timeout=600):
    """Run `spec` as 2 processes; return [(arrays, meta) of process 0, of process 1]."""
    spec = {**spec, "out": str(folder / f"{name}.npz")}
    spec_file = folder / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    env = launch.environment(1, cache)
    if x64:
        env["JAX_ENABLE_X64"] = "1"
    port = _free_port()
    procs = []
    for pid in range(2):
        log = open(folder / f"{name}.p{pid}.log", "w")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, str(SCRIPT), str(spec_file), str(pid), "2", str(port)],
                cwd=launch.ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        )
        log.close()
    try:
        for proc in procs:
            proc.wait(timeout=timeout)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    results = []
    for pid, proc in enumerate(procs):
        text = (folder / f"{name}.p{pid}.log").read_text()
        assert proc.returncode == 0, f"process {pid} failed ({proc.returncode}):\n{text[-4000:]}"
        with np.load(folder / f"{name}.p{pid}.npz") as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads((folder / f"{name}.p{pid}.npz.json").read_text())
        results.append((arrays, meta))
    return results


@pytest.fixture(scope="module")
def sgld_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    checkpoint = str(folder / "run.ckpt")
    runs = [
        {**SGLD, "name": "chains", "mesh": [2, 1], "checkpoint": checkpoint, "progress": True},
        {**SGLD, "name": "data", "mesh": [1, 2], "store": str(folder / "draws.nc")},
    ]
    one = launch.start(
        {"model": MODEL, "runs": [{**SGLD, "name": "one"}]},
        folder,
        "one",
        num_devices=1,
        cache_dir=cache,
    )
    two = _run_distributed({"model": MODEL, "runs": runs}, folder, "two", cache)
    checkpoint_after_first = (folder / "run.ckpt").stat().st_mtime_ns
    again = _run_distributed({"model": MODEL, "runs": runs[:1]}, folder, "again", cache)
    return {
        "one": launch.finish(one, folder, "one"),
        "two": two,
        "again": again,
        "folder": folder,
        "checkpoint_unchanged": (folder / "run.ckpt").stat().st_mtime_ns == checkpoint_after_first,
    }


def test_two_processes_see_a_global_mesh(sgld_runs):
    for _, meta in sgld_runs["two"]:
        assert len(meta["devices"]) == 2
        assert meta["runs"]["chains"]["mesh"] == {"chains": 2, "data": 1}
        assert meta["runs"]["data"]["mesh"] == {"chains": 1, "data": 2}


@pytest.mark.parametrize("name", ["chains", "data"])
def test_two_process_sgld_equals_one_process(sgld_runs, name):
    one = sgld_runs["one"][0]["one/draws"]
    (first, _), (second, _) = sgld_runs["two"]
    assert first[f"{name}/draws"].shape == one.shape
    np.testing.assert_array_equal(first[f"{name}/draws"], second[f"{name}/draws"])
    difference = np.max(np.abs(first[f"{name}/draws"] - one))
    assert difference <= TOLERANCE, f"{name}: max |draws_2p - draws_1p| = {difference:.3g}"
    np.testing.assert_allclose(
        first[f"{name}/stat/lp"], sgld_runs["one"][0]["one/stat/lp"], rtol=1e-5
    )


def test_only_process_0_shows_progress(sgld_runs):
    folder = sgld_runs["folder"]
    first, second = (folder / f"two.p{pid}.log" for pid in range(2))
    assert "sampling 4 chain(s)" in first.read_text()
    assert "checkpoint written at draws 100/100" in first.read_text()
    assert "bayesover:" not in second.read_text()
    assert "sampling 4 chain(s)" not in second.read_text()


def test_store_is_written_once_and_read_by_both_processes(sgld_runs):
    from bayesover.inference._store import store_attrs

    attrs = store_attrs(sgld_runs["folder"] / "draws.nc")
    assert attrs is not None and int(attrs["complete"]) == 1
    assert int(attrs["draws_done"]) == SGLD["num_draws"]
    # both processes returned the stored ensemble (their draws, read back, are compared with
    # the 1-process run in test_two_process_sgld_equals_one_process["data"])
    for _, meta in sgld_runs["two"]:
        assert "error" not in meta["runs"]["data"]


def test_checkpoint_is_written_once_and_resumed(sgld_runs):
    folder = sgld_runs["folder"]
    assert (folder / "run.ckpt").is_file()
    assert not list(folder.glob("run.ckpt.*")), "a temporary checkpoint file was left behind"
    # the second run found the finished checkpoint: it sampled nothing and wrote nothing
    assert sgld_runs["checkpoint_unchanged"]
    for (first, _), (again, _) in zip(sgld_runs["two"], sgld_runs["again"], strict=True):
        np.testing.assert_array_equal(first["chains/draws"], again["chains/draws"])


@pytest.mark.slow  # about 25 s
@pytest.mark.reference_data("posteriordb")
def test_two_process_nuts_matches_posteriordb(tmp_path_factory):
    import arviz_stats

    from bayesover.cli.builders import load_module

    name = "sblri-blr"
    validation = load_module(launch.ROOT / "models" / "posteriordb" / "_reference.py")
    reference = validation.reference_summary(name)
    folder = tmp_path_factory.mktemp("distributed_nuts")
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    spec = {
        "model_file": "posteriordb/blr",
        "model": {"dataset": "sblri"},
        "runs": [
            {
                "name": "nuts",
                "sampler": "nuts",
                "num_chains": 4,
                "num_warmup": 1000,
                "num_draws": 2000,
                "chunk_size": 500,
                "seed": 0,
            }
        ],
    }
    (arrays, meta), _ = _run_distributed(spec, folder, "nuts", cache, x64=True)
    assert meta["runs"]["nuts"]["mesh"] == {"chains": 2, "data": 1}
    draws = arrays["nuts/draws"]  # (chain, draw, [beta[1..5], sigma])
    assert draws.shape == (4, 2000, 6)
    flat = validation.flatten_draws({"beta": draws[..., :5], "sigma": draws[..., 5]})
    assert set(flat) == set(reference)
    failures = []
    for param, ref in reference.items():
        x = flat[param]
        mcse = float(arviz_stats.mcse(x, method="mean"))
        z = (x.mean() - ref["mean"]) / math.hypot(mcse, ref["mean_mcse"])
        sd_error = np.std(x, ddof=1) / ref["draws_sd"] - 1.0
        if not (abs(z) < 4.0 and abs(sd_error) < 0.10):
            failures.append(f"{param}: z = {z:+.2f}, sd error {100 * sd_error:+.1f}%")
    assert not failures, "\n".join(failures)
    assert arrays["nuts/stat/diverging"].sum() <= 0.005 * draws.shape[0] * draws.shape[1]
