"""The live progress bar of `bo.sample` (bayesover/inference/_progress.py).

- NUTS with a step size too large (no warm-up) diverges at about half of the draws: the bar
  reaches 60/60 and its final divergence count equals the sum of `ensemble.stats["diverging"]`;
  the host received a report from every chain after every block of `ceil(60 / UPDATES)` draws
  (and after the shorter first block of each chunk; in the last chunk, of which 10 of 25
  draws are kept, the draws done stop at 60), i.e. from inside the compiled chunks, not only
  between them; checkpoint lines print above the bar.
- SGLD with a polynomial schedule: the bar shows the step size of the last draw (the mean
  over chains, 3 significant digits).
- `progress=False` prints nothing; the draws and statistics equal those of the run with the
  bar bit for bit (NUTS and SGLD).
- The host aggregation alone: the bar waits for a report of every chain, counts a chain
  reported by two devices (a data axis) once, sums the counts over chains and chunks.
- 4 forced host devices (subprocess): NUTS on a (4, 1) and a (2, 2) mesh, SGLD on (2, 2): the
  bar reaches the end, its divergence count equals the recorded one (so a chain computed by
  the 2 devices of a data axis is counted once); SGLD's draws on (2, 2) equal those without
  the bar.
"""

import math
import re

import jax
import numpy as np
import pytest
from conftest import model_file
from scripts import launch

import bayesover as bo
from bayesover.inference import _progress
from bayesover.inference.schedules import polynomial

lg = model_file("linear_gaussian")

NUM_DRAWS, CHUNK = 60, 25
# No warm-up: the step size stays this large (the posterior's sd is ~0.07): about half of the
# draws diverge, so the count is neither 0 nor every draw.
NUTS_BIG_STEP = {"initial_step_size": 0.14}
# a state of the bar: "sampling 2 chain(s):  40%|####      | 24/60 [00:01<00:01, 20.0draw/s,
# diverging=13]" -> ("24", "60", "20.0draw/s, diverging=13")
BAR = re.compile(r"sampling \d+ chain\(s\):[^\r\n]*?(\d+)/(\d+) \[[^\]]*?(?:, ([^\]]*))?\]")


@pytest.fixture(scope="module")
def posterior():
    return lg.build(seed=0, num_features=3, num_points=50).posterior


def _final(err: str):
    """(draws, total, postfix) of the last state of the bar in captured stderr."""
    states = BAR.findall(err)
    assert states, f"no progress bar in:\n{err[-2000:]}"
    draws, total, postfix = states[-1]
    return int(draws), int(total), dict(p.split("=") for p in postfix.split(", ") if "=" in p)


def _equal(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(leaves_a, leaves_b, strict=True)
    )


def test_nuts_bar_counts_every_divergence_and_progress_off_is_silent_and_equal(
    posterior, capfd, monkeypatch, tmp_path
):
    reports = []
    receive = _progress.LiveBar.receive

    def recording(self, chain, done, counts, current):
        reports.append((chain, done))
        return receive(self, chain, done, counts, current)

    monkeypatch.setattr(_progress.LiveBar, "receive", recording)
    kwargs = dict(key=jax.random.key(3), num_chains=2, num_warmup=0, num_draws=NUM_DRAWS)
    kwargs.update(chunk_size=CHUNK)
    on = bo.sample(
        posterior, bo.NUTS(**NUTS_BIG_STEP), progress=True, checkpoint=tmp_path / "c", **kwargs
    )
    err = capfd.readouterr().err
    draws, total, postfix = _final(err)
    divergences = int(np.asarray(on.stats["diverging"]).sum())
    assert (draws, total) == (NUM_DRAWS, NUM_DRAWS)
    assert 0 < divergences < 2 * NUM_DRAWS
    assert int(postfix["diverging"]) == divergences
    # per chunk of 25: a block of the 25 % every draws left over, then blocks of `every`, each
    # reporting the draws done (capped at 60 in the last chunk, which computes 25, keeps 10)
    every = math.ceil(NUM_DRAWS / _progress.UPDATES)
    ends = [
        *([CHUNK % every] if CHUNK % every else []),
        *range(CHUNK % every + every, CHUNK + 1, every),
    ]
    expected = [min(first + end, NUM_DRAWS) for first in (0, 25, 50) for end in ends]
    for chain in {c for c, _ in reports}:
        assert [done for c, done in reports if c == chain] == expected
    assert len({c for c, _ in reports}) == 2 and len(reports) == 2 * len(expected)
    assert "warm-up of 0 steps done" in err
    assert "checkpoint written at draws 50/60" in err

    off = bo.sample(posterior, bo.NUTS(**NUTS_BIG_STEP), progress=False, **kwargs)
    assert capfd.readouterr().err == ""
    assert _equal((on.params, on.stats), (off.params, off.stats))


def test_sgld_bar_shows_the_step_size_and_draws_do_not_depend_on_it(posterior, capfd):
    sampler = bo.SGLD(step_size=1e-3, batch_size=10, schedule=polynomial(1e-3, decay_steps=10.0))
    kwargs = dict(key=jax.random.key(4), num_chains=3, num_warmup=10, num_draws=NUM_DRAWS)
    kwargs.update(chunk_size=CHUNK, thinning=2)
    on = bo.sample(posterior, sampler, progress=True, **kwargs)
    _, _, postfix = _final(capfd.readouterr().err)
    last = float(np.asarray(on.stats["step_size"])[:, -1].mean())
    assert postfix["step_size"] == f"{last:.3g}"
    assert "diverging" not in postfix
    off = bo.sample(posterior, sampler, progress=False, **kwargs)
    assert capfd.readouterr().err == ""
    assert _equal((on.params, on.stats), (off.params, off.stats))


def test_the_bar_waits_for_every_chain_and_counts_a_replica_once(capsys):
    report = _progress.Progress(True, 10, 2, 4)
    report.resumed(4)
    bar = report.bar
    assert bar is not None and bar.bar.n == 4
    # 6 draws done: chain (7, 1) from two devices (a data axis), then chain (7, 2)
    for chain, diverging in [((7, 1), 1), ((7, 1), 1), ((7, 2), 2)]:
        assert bar.bar.n == 4
        bar.receive(chain, 6, {"diverging": diverging}, {"step_size": 0.5 * chain[1]})
    assert bar.bar.n == 6
    assert bar.bar.postfix == "diverging=3, step_size=0.75"  # sum and mean over the 2 chains
    bar.receive((7, 2), 6, {"diverging": 2}, {"step_size": 1.0})  # a late copy: ignored
    bar.receive((7, 1), 8, {"diverging": 1}, {"step_size": 0.5})  # one chain of two so far
    assert bar.bar.n == 6
    report.chunk_done(10)
    err = capsys.readouterr().err
    assert "resumed from checkpoint at draw 4/10" in err
    assert re.search(r"10/10 \[.*diverging=3", err)  # the incomplete report was not counted
    assert report.bar is None and _progress._active is None


def test_quiet_progress_has_no_live_arguments():
    report = _progress.Progress(False, 100, 4, 1)
    assert report.live is None
    report.warmup_done(10)
    assert report.bar is None


@pytest.mark.slow  # about 15 s
def test_four_devices_and_a_data_axis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    common = {"seed": 5, "num_chains": 4, "num_warmup": 0, "num_draws": 30, "chunk_size": 20}
    nuts = {**common, "sampler": "nuts", "sampler_options": NUTS_BIG_STEP, "progress": True}
    runs = [
        {**nuts, "name": "nuts"},
        {**nuts, "name": "nuts_2x2", "mesh": [2, 2]},
        {**common, "name": "sgld_2x2", "sampler": "sgld", "mesh": [2, 2], "progress": True},
        {**common, "name": "sgld_2x2_off", "sampler": "sgld", "mesh": [2, 2]},
    ]
    spec = {"model": {"seed": 0, "num_features": 3, "num_points": 48}, "runs": runs}
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    arrays, meta = launch.run(spec, folder, "progress4", num_devices=4, cache_dir=cache)
    log = (folder / "progress4.log").read_text()
    parts = re.split(r"sample_runs: start (\S+)\n", log)
    logs = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert meta["runs"]["nuts"]["mesh"] == {"chains": 4, "data": 1}
    assert meta["runs"]["nuts_2x2"]["mesh"] == {"chains": 2, "data": 2}
    for name in ("nuts", "nuts_2x2"):
        draws, total, postfix = _final(logs[name])
        assert (draws, total) == (30, 30), logs[name][-2000:]
        divergences = int(arrays[f"{name}/stat/diverging"].sum())
        assert 0 < divergences < 4 * 30 and int(postfix["diverging"]) == divergences
    draws, total, postfix = _final(logs["sgld_2x2"])
    assert (draws, total) == (30, 30) and float(postfix["step_size"]) == pytest.approx(1e-3)
    assert "sampling" not in logs["sgld_2x2_off"]
    sgld = sorted(k for k in arrays if k.startswith("sgld_2x2/"))
    assert len(sgld) > 2
    for key in sgld:  # the bar changes nothing on a mesh either
        assert np.array_equal(arrays[key], arrays[key.replace("sgld_2x2/", "sgld_2x2_off/")])
