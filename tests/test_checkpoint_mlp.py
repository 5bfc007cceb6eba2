"""Checkpoints of an Equinox MLP resume in a NEW process (the fingerprint holds no addresses).

The posterior of `bayesover/models/teacher_student.py` holds an `eqx.nn.MLP` whose activation is
`jnp.tanh`; a fingerprint built from `repr` would print the function's address and differ in
every process. Processes (tests/scripts/sample_runs.py, one CPU device):

1. `reference`: SGLD then NUTS, uninterrupted, checkpointing to ref/;
2. `first`: SGLD, SIGKILLed from here once its checkpoint holds some chunks but not all;
3. `second`: SGLD resumes and finishes; NUTS starts and is SIGKILLed mid-run the same way;
4. `third`: SGLD returns from its finished checkpoint; NUTS resumes and finishes.

The draws and statistics of 4 must equal those of 1 exactly (np.array_equal).
"""

import re
import signal
import threading

import numpy as np
import pytest
from scripts import launch

MODEL = {"seed": 0, "width": 4, "num_points": 40}
SGLD = {
    "name": "sgld",
    "sampler": "sgld",
    "sampler_options": {"step_size": 1e-4},
    "seed": 1,
    "num_chains": 2,
    "num_warmup": 50,
    "num_draws": 100,
    "thinning": 2,
    "chunk_size": 10,
    "progress": True,
}
NUTS = {
    "name": "nuts",
    "sampler": "nuts",
    "sampler_options": {"max_tree_depth": 5},
    "seed": 2,
    "num_chains": 2,
    "num_warmup": 50,
    "num_draws": 60,
    "chunk_size": 10,
    "progress": True,
}
KILL_AT = 30


def _load(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _with_checkpoint(run, folder):
    return {**run, "checkpoint": str(folder / f"{run['name']}.npz")}


def _kill_when(proc, run_name, checkpoint, draws):
    """Read the child's stderr; SIGKILL it once `run_name` reports >= `draws` draws (the line
    comes after that chunk's checkpoint was written). Returns (log, draws in the checkpoint)."""
    watchdog = threading.Timer(400, proc.kill)
    watchdog.start()
    lines, inside, killed_at = [], False, None
    try:
        for line in proc.stderr:
            lines.append(line)
            inside = inside or line.startswith(f"sample_runs: start {run_name}")
            match = re.search(r"draws (\d+)/", line)
            if inside and match and int(match.group(1)) >= draws:
                killed_at = int(_load(checkpoint)["draws_done"])
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
        proc.stderr.close()
    return "".join(lines), killed_at


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoint_mlp")
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    ref, resumed = folder / "ref", folder / "resumed"
    ref.mkdir()
    resumed.mkdir()

    def start(name, runs, pipe=False):
        spec = {"model_file": "teacher_student", "model": MODEL, "runs": runs}
        return launch.start(spec, folder, name, num_devices=1, cache_dir=cache, pipe=pipe)

    sgld, nuts = _with_checkpoint(SGLD, resumed), _with_checkpoint(NUTS, resumed)
    reference = start("reference", [_with_checkpoint(r, ref) for r in (SGLD, NUTS)])
    first = start("first", [{**sgld, "slow_progress": 0.5}], pipe=True)
    first_log, sgld_killed_at = _kill_when(first, "sgld", resumed / "sgld.npz", KILL_AT)
    second = start("second", [sgld, {**nuts, "slow_progress": 0.5}], pipe=True)
    second_log, nuts_killed_at = _kill_when(second, "nuts", resumed / "nuts.npz", KILL_AT)
    out = {
        "first": (first.returncode, first_log, sgld_killed_at),
        "second": (second.returncode, second_log, nuts_killed_at),
        "reference": launch.finish(reference, folder, "reference"),
    }
    third = start("third", [sgld, nuts])
    out["third"] = launch.finish(third, folder, "third")
    out["third_log"] = (folder / "third.log").read_text()
    return out


def test_runs_were_killed_mid_run(runs):
    for name, total in (("first", SGLD["num_draws"]), ("second", NUTS["num_draws"])):
        returncode, log, killed_at = runs[name]
        assert returncode == -signal.SIGKILL, log[-3000:]
        assert killed_at is not None and KILL_AT <= killed_at < total, log[-3000:]


def test_new_processes_resumed_the_checkpoints(runs):
    _, second_log, nuts_killed_at = runs["second"]
    _, _, sgld_killed_at = runs["first"]
    assert f"resumed from checkpoint at draw {sgld_killed_at}/{SGLD['num_draws']}" in second_log
    log = runs["third_log"]
    assert f"resumed from checkpoint at draw {SGLD['num_draws']}/{SGLD['num_draws']}" in log
    assert f"resumed from checkpoint at draw {nuts_killed_at}/{NUTS['num_draws']}" in log
    assert "other arguments" not in second_log + log


@pytest.mark.parametrize("name", ["sgld", "nuts"])
def test_resumed_mlp_run_equals_the_uninterrupted_run(runs, name):
    (ref, _), (new, _) = runs["reference"], runs["third"]
    keys = sorted(k for k in ref if k.startswith(f"{name}/"))
    assert f"{name}/draws" in keys and len(keys) > 2
    assert keys == sorted(k for k in new if k.startswith(f"{name}/"))
    num_draws = {"sgld": SGLD, "nuts": NUTS}[name]["num_draws"]
    assert ref[f"{name}/draws"].shape == (2, num_draws, 17)  # 2 -> 4 -> 1 MLP: 17 weights
    assert np.all(np.isfinite(ref[f"{name}/draws"]))
    for k in keys:
        assert np.array_equal(ref[k], new[k]), f"{k} differs after kill and restart"
