"""Checkpoints of `bo.sample`: a killed run, restarted, ends with exactly the uninterrupted draws.

Processes (tests/scripts/sample_runs.py, 4 virtual CPU devices, so the sharded path is the
one checkpointed), each running SGLD (thinning 2, 10 chunks) and then NUTS (8 chunks):

1. `reference`: both runs uninterrupted, checkpointing to ref/.
2. `killed_in_save`: SGLD SIGKILLs itself half-way through writing its 4th checkpoint file
   (after warm-up, 20 and 40 draws were saved): the checkpoint must still be the complete one
   of 40 draws, with the half-written temporary file beside it.
3. `killed_between_chunks`: SGLD resumes at draw 40 and finishes; NUTS runs until its
   checkpoint shows some chunks done but not all, and is then killed (SIGKILL) from here.
4. `restarted`: the same command again. SGLD returns from its finished checkpoint, NUTS
   resumes; both must equal the reference run exactly (np.array_equal, draws and statistics),
   and so must their final checkpoint files. The same process checks that checkpoints written
   with other arguments (key, number of draws, data) are refused with a ValueError.

1 and 2 run side by side, then 3 (beside the end of 1), then 4. All share a persistent JAX
compilation cache, so restarts load their compiled programs instead of compiling again.
"""

import hashlib
import re
import signal
import threading

import jax
import numpy as np
import pytest
from conftest import model_file
from scripts import launch

import bayesover as bo

lg = model_file("linear_gaussian")

NUM_DEVICES = 4
MODEL = {"seed": 0, "num_features": 3, "num_points": 50}
SGLD = {
    "name": "sgld",
    "sampler": "sgld",
    "seed": 3,
    "num_chains": 4,
    "num_warmup": 100,
    "num_draws": 200,
    "thinning": 2,
    "chunk_size": 20,
    "progress": True,
}
NUTS = {
    "name": "nuts",
    "sampler": "nuts",
    "seed": 5,
    "num_chains": 4,
    "num_warmup": 200,
    "num_draws": 200,
    "chunk_size": 25,
    "progress": True,
}
KILL_AT = 75  # NUTS draws in the checkpoint when process 3 is killed


def _load(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_checkpoint(run, folder):
    return {**run, "checkpoint": str(folder / f"{run['name']}.npz")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoint")
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    ref, resumed = folder / "ref", folder / "resumed"
    ref.mkdir()
    resumed.mkdir()
    out = {"folder": folder, "ref": ref, "resumed": resumed}

    def start(name, spec, pipe=False):
        return launch.start(
            {"model": MODEL, **spec},
            folder,
            name,
            num_devices=NUM_DEVICES,
            cache_dir=cache,
            pipe=pipe,
        )

    reference = start("reference", {"runs": [_with_checkpoint(r, ref) for r in (SGLD, NUTS)]})
    killed = start(
        "killed_in_save",
        {"runs": [{**_with_checkpoint(SGLD, resumed), "die_in_save": 4}]},
    )
    killed.wait(timeout=400)
    out["killed_in_save"] = {
        "returncode": killed.returncode,
        "log": (folder / "killed_in_save.log").read_text(),
        "checkpoint": _load(resumed / "sgld.npz"),
        "tmp_exists": (resumed / "sgld.npz.tmp").exists(),
        "tmp_loadable": _loadable(resumed / "sgld.npz.tmp"),
    }

    proc = start(
        "killed_between_chunks",
        {
            "runs": [
                _with_checkpoint(SGLD, resumed),
                {**_with_checkpoint(NUTS, resumed), "slow_progress": 1.0},
            ]
        },
        pipe=True,
    )
    watchdog = threading.Timer(400, proc.kill)
    watchdog.start()
    lines, in_nuts, killed_at = [], False, None
    try:
        for line in proc.stderr:
            lines.append(line)
            in_nuts = in_nuts or line.startswith("sample_runs: start nuts")
            match = re.search(r"draws (\d+)/", line)
            if in_nuts and match and int(match.group(1)) >= KILL_AT:
                # the line comes after the checkpoint of that chunk was written
                killed_at = int(_load(resumed / "nuts.npz")["draws_done"])
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
        proc.stderr.close()
    out["killed_between_chunks"] = {
        "returncode": proc.returncode,
        "log": "".join(lines),
        "killed_at": killed_at,
        "nuts_draws_done": int(_load(resumed / "nuts.npz")["draws_done"]),
        "sgld_draws_done": int(_load(resumed / "sgld.npz")["draws_done"]),
    }

    out["reference"] = launch.finish(reference, folder, "reference")
    ref_digests = {p.name: _digest(p) for p in ref.glob("*.npz")}
    errors = [
        {**_with_checkpoint(SGLD, ref), "name": "other_key", "seed": 4},
        {**_with_checkpoint(SGLD, ref), "name": "other_num_draws", "num_draws": 220},
        {**_with_checkpoint(SGLD, ref), "name": "other_data", "model": {**MODEL, "seed": 1}},
        {**_with_checkpoint(NUTS, ref), "name": "other_sampler", "sampler": "hmc"},
    ]
    errors = [{**e, "expect_error": True} for e in errors]
    restarted = start(
        "restarted",
        {"runs": [_with_checkpoint(SGLD, resumed), _with_checkpoint(NUTS, resumed), *errors]},
    )
    out["restarted"] = launch.finish(restarted, folder, "restarted")
    out["restarted_log"] = (folder / "restarted.log").read_text()
    out["ref_unchanged"] = ref_digests == {p.name: _digest(p) for p in ref.glob("*.npz")}
    return out


def _loadable(path):
    try:
        _load(path)
    except Exception:
        return False
    return True


def test_killed_while_writing_leaves_the_previous_checkpoint(runs):
    result = runs["killed_in_save"]
    assert result["returncode"] == -signal.SIGKILL, result["log"][-3000:]
    # the checkpoint is the last complete one: warm-up, then chunks of 20 and 40 draws
    assert int(result["checkpoint"]["draws_done"]) == 40
    # the half-written file is the temporary one, never the checkpoint itself
    assert result["tmp_exists"] and not result["tmp_loadable"]


def test_killed_between_chunks_has_some_but_not_all_chunks(runs):
    result = runs["killed_between_chunks"]
    log = result["log"]
    assert result["returncode"] == -signal.SIGKILL, log[-3000:]
    assert result["killed_at"] is not None, f"no NUTS progress line to kill at:\n{log[-3000:]}"
    assert "resumed from checkpoint at draw 40/200" in log  # SGLD, after process 2
    assert result["sgld_draws_done"] == 200
    assert KILL_AT <= result["killed_at"] < NUTS["num_draws"]
    assert result["nuts_draws_done"] == result["killed_at"]


@pytest.mark.parametrize("name", ["sgld", "nuts"])
def test_restarted_run_equals_the_uninterrupted_run_exactly(runs, name):
    (ref, ref_meta), (new, new_meta) = runs["reference"], runs["restarted"]
    keys = sorted(k for k in ref if k.startswith(f"{name}/"))
    assert f"{name}/draws" in keys and len(keys) > 2
    assert keys == sorted(k for k in new if k.startswith(f"{name}/"))
    for k in keys:
        assert np.array_equal(ref[k], new[k]), f"{k} differs after kill and restart"
    assert np.all(np.isfinite(ref[f"{name}/draws"]))
    shape = (4, {"sgld": SGLD, "nuts": NUTS}[name]["num_draws"], 4)
    assert ref[f"{name}/draws"].shape == shape
    # the resumed run ends sharded over the devices like the uninterrupted one
    for meta in (ref_meta, new_meta):
        assert meta["runs"][name]["num_devices"] == NUM_DEVICES
        assert all(leaf == [4, 4] for leaf in meta["runs"][name]["leaf_devices"])


def test_restart_really_resumed(runs):
    log = runs["restarted_log"]
    assert "resumed from checkpoint at draw 200/200" in log  # SGLD had finished
    killed_at = runs["killed_between_chunks"]["killed_at"]
    assert f"resumed from checkpoint at draw {killed_at}/200" in log  # NUTS


@pytest.mark.parametrize("name", ["sgld", "nuts"])
def test_final_checkpoints_are_identical(runs, name):
    ref, new = _load(runs["ref"] / f"{name}.npz"), _load(runs["resumed"] / f"{name}.npz")
    assert ref.keys() == new.keys()
    assert int(ref["draws_done"]) == 200
    for k in ref:
        assert np.array_equal(ref[k], new[k]), k


def test_no_temporary_file_is_left(runs):
    for folder in (runs["ref"], runs["resumed"]):
        assert sorted(p.name for p in folder.iterdir()) == ["nuts.npz", "sgld.npz"]


@pytest.mark.parametrize("name", ["other_key", "other_num_draws", "other_data", "other_sampler"])
def test_checkpoint_of_other_arguments_is_refused(runs, name):
    error = runs["restarted"][1]["runs"][name]
    assert error["error"] == "ValueError"
    assert "`checkpoint`" in error["message"] and "other arguments" in error["message"]
    assert runs["ref_unchanged"]  # refusing does not touch the file


# -- in this (1-device) process: nothing here compiles a sampler --------------------------


@pytest.fixture(scope="module")
def posterior():
    return lg.build(**MODEL).posterior


def _sample(posterior, path, **overrides):
    kwargs = {k: SGLD[k] for k in ("num_chains", "num_warmup", "num_draws", "thinning")}
    kwargs.update(chunk_size=SGLD["chunk_size"], progress=False, **overrides)
    return bo.sample(
        posterior,
        bo.SGLD(step_size=1e-3, batch_size=10),
        key=jax.random.key(SGLD["seed"]),
        checkpoint=path,
        **kwargs,
    )


def test_checkpoint_from_another_device_count_is_refused(runs, posterior):
    # the same arguments, but the checkpoint was written on 4 devices and this process has 1
    assert jax.device_count() != NUM_DEVICES
    with pytest.raises(ValueError, match="`checkpoint`.*other arguments"):
        _sample(posterior, runs["ref"] / "sgld.npz")


def test_garbage_checkpoint_is_a_clear_error(tmp_path, posterior):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not an npz file\n" * 10)
    with pytest.raises(ValueError, match="`checkpoint`.*not a readable checkpoint"):
        _sample(posterior, path)
    assert path.read_bytes() == b"this is not an npz file\n" * 10


def test_truncated_checkpoint_is_a_clear_error(runs, tmp_path, posterior):
    data = (runs["ref"] / "sgld.npz").read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="`checkpoint`.*not a readable checkpoint"):
        _sample(posterior, path)


def test_npz_that_is_not_a_checkpoint_is_refused(tmp_path, posterior):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.arange(3))
    with pytest.raises(ValueError, match="`checkpoint`"):
        _sample(posterior, path)
