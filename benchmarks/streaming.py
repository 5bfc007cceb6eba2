"""Draws streamed to disk (`bo.sample(..., store=PATH)`): peak memory against in-memory runs.

    .venv/bin/python benchmarks/streaming.py           # updates its section of RESULTS.md
    .venv/bin/python benchmarks/streaming.py --quick   # tiny sizes, prints only

One network family, `eqx.nn.MLP(16, 1, width, depth=2, tanh)` with width 308, 495 and 1000
(100,717, 254,431 and 1,019,001 weights), prior N(0, 1/fan_in), Gaussian likelihood with fixed
noise 0.1, on 256 random points; SGLD (step size 1e-7, minibatches of 32), 4 chains x 1,000
draws after 50 warm-up steps, chunks of 20 draws. Then the mixture predictive mean at 64
inputs (`ensemble.predict(x).mean`): in memory with the defaults, from the store block by block
with its defaults (blocks of about 64 MB, members in batches of about 64 MB); its time is that
of a second call (the first compiles for the number of members).

Every run is a FRESH child process. It first makes a 20-draw run of the same shapes (streamed
or not, like the measured one) and its predictive, which compiles every program, and takes its
peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) as the baseline; then it makes the
measured run and reports the peak RSS again, after sampling and after the predictive. The
table shows the peaks above that baseline. Every configuration runs `--repeats` times,
alternating in memory and streamed, and the table shows medians (the 1M-weight run once per
repeat too: it writes 16 GB).

The in-memory run of 1M weights is not made: its draws alone are 4 x 1,000 x 1,019,001 x 4 B =
16.3 GB, and `bo.sample` holds them about three times at its end (the chunks, their
concatenation, the arrays placed on the device), which does not fit in this machine's 23 GB.
The streamed run and the in-memory run are therefore compared at 100k and 250k weights, and
the streamed 1M run is shown beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _sections import machine_line, write_section

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- streaming:start -->", "<!-- streaming:end -->"

NUM_CHAINS, NUM_DRAWS, NUM_WARMUP, CHUNK = 4, 1000, 50, 20
WIDTHS = {"100k": 308, "250k": 495, "1M": 1000}


def log(*args):
    print(*args, flush=True)


def child(spec: dict) -> dict:
    """One measured run (see the module docstring); returns its numbers."""
    import resource

    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import bayesover as bo

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    width, streamed, folder = spec["width"], spec["streamed"], Path(spec["folder"])
    num_draws = spec["num_draws"]
    x = jax.random.normal(jax.random.key(0), (256, 16))
    y = jnp.sin(x[:, 0]) + 0.1 * x[:, 1]
    net = eqx.nn.MLP(16, 1, width, 2, activation=jnp.tanh, key=jax.random.key(1))
    model = bo.Model(net, bo.priors.FanInNormal(1.0), bo.likelihoods.Gaussian(scale=0.1))
    posterior = bo.Posterior(model, bo.Data(x, y))
    sampler = bo.SGLD(1e-7, batch_size=32)
    run = dict(
        key=jax.random.key(3),
        num_chains=NUM_CHAINS,
        num_warmup=NUM_WARMUP,
        chunk_size=CHUNK,
        progress=False,
    )
    probe = x[:64]

    warm = bo.sample(
        posterior, sampler, num_draws=CHUNK, store=folder / "warm.nc" if streamed else None, **run
    )
    warm.predict(probe).mean.block_until_ready()
    del warm
    baseline = peak_mib()
    store = folder / "run.nc" if streamed else None
    start = time.perf_counter()
    ensemble = bo.sample(posterior, sampler, num_draws=num_draws, store=store, **run)
    sample_seconds = time.perf_counter() - start
    after_sample = peak_mib()
    ensemble.predict(probe).mean.block_until_ready()  # compiles for this many members
    start = time.perf_counter()
    mean = ensemble.predict(probe).mean.block_until_ready()
    predict_seconds = time.perf_counter() - start
    after_predict = peak_mib()
    return {
        "num_params": int(model.num_params),
        "draw_mib": NUM_CHAINS * num_draws * int(model.num_params) * 4 / 2**20,
        "baseline_mib": baseline,
        "sample_mib": after_sample - baseline,
        "predict_mib": after_predict - baseline,
        "sample_s": sample_seconds,
        "predict_s": predict_seconds,
        "file_mib": (store.stat().st_size / 2**20) if store is not None else None,
        "finite": bool(jnp.all(jnp.isfinite(mean))),
    }


def measure(width: int, streamed: bool, num_draws: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bayesover-streaming-", dir=os.environ.get("TMPDIR")))
    spec = {"width": width, "streamed": streamed, "folder": str(folder), "num_draws": num_draws}
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
        )
        if done.returncode != 0:
            raise RuntimeError(f"child {spec} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def section(results: dict, repeats: int, free_gib: float) -> str:
    lines = [
        START,
        "## Draws streamed to disk (`benchmarks/streaming.py`)",
        "",
        f"{machine_line()}; {free_gib:.0f} GiB of disk free in the temporary directory.",
        "",
        f"SGLD, {NUM_CHAINS} chains x {NUM_DRAWS:,} draws (chunks of {CHUNK}), then the "
        "predictive mean at 64 inputs. Peak RSS of a fresh process above its baseline (the "
        "peak after a 20-draw run of the same shapes, which compiled everything), medians of "
        f"{repeats} runs. `store=` writes each chunk to a netCDF file as it is made and "
        "returns the lazily opened ensemble; its predictive reads the file in blocks.",
        "",
        "| weights | draws | run | peak above baseline, sampling | ... and predictive | "
        "baseline | sampling time | predictive time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for runs in results.values():
        for streamed in (False, True):
            rows = runs.get(streamed)
            if not rows:
                continue
            first = rows[0]
            lines.append(
                f"| {first['num_params']:,} | {first['draw_mib'] / 1024:.2f} GiB | "
                f"{'streamed (`store=`)' if streamed else 'in memory'} | "
                f"{median(rows, 'sample_mib'):,.0f} MiB | {median(rows, 'predict_mib'):,.0f} MiB | "
                f"{median(rows, 'baseline_mib'):,.0f} MiB | {median(rows, 'sample_s'):.1f} s | "
                f"{median(rows, 'predict_s'):.1f} s |"
            )
    lines.append("")
    ratios = []
    for size, runs in results.items():
        if runs.get(False) and runs.get(True):
            memory, streamed = runs[False], runs[True]
            peak = median(memory, "sample_mib") / max(1.0, median(streamed, "sample_mib"))
            seconds = median(streamed, "sample_s") / median(memory, "sample_s")
            ratios.append(
                f"{size}: the in-memory run's peak above baseline is {peak:.0f}x the streamed "
                f"run's (at least 1 MiB), and streaming takes {seconds:.2f}x its sampling time"
            )
    if ratios:
        lines += ["Side by side: " + "; ".join(ratios) + ".", ""]
    lines += [
        "The in-memory run holds its draws about three times at its end (the list of chunks, "
        "their concatenation, the arrays placed on the device): its peak is about three times "
        "the draws. The streamed run holds one chunk (and the chunk program's output buffer) "
        "whatever the number of draws. The 1M-weight run is made streamed only: in memory its "
        "16 GB of draws, held three times, would not fit in this machine's 23 GB.",
        "",
        END,
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    tmp = Path(os.environ.get("TMPDIR", tempfile.gettempdir()))
    free_gib = shutil.disk_usage(tmp).free / 2**30
    num_draws = 100 if args.quick else NUM_DRAWS
    sizes = {"10k": 90} if args.quick else WIDTHS
    repeats = 1 if args.quick else args.repeats
    results: dict = {size: {False: [], True: []} for size in sizes}
    for repeat in range(repeats):
        for size, width in sizes.items():
            for streamed in (False, True) if size != "1M" else (True,):
                row = measure(width, streamed, num_draws)
                results[size][streamed].append(row)
                log(f"repeat {repeat}, {size}, {'streamed' if streamed else 'in memory'}: {row}")
    text = section(results, repeats, free_gib)
    log(text)
    if not args.quick:
        write_section(RESULTS, text, START, END)
        log(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
