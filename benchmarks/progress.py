"""The cost of the live progress bar: the same `bo.sample` runs with `progress` on and off.

    .venv/bin/python benchmarks/progress.py           # updates its section of RESULTS.md
    .venv/bin/python benchmarks/progress.py --quick   # tiny sizes, prints only

The network and data of benchmarks/sampling.py: `eqx.nn.MLP(4, 1, width_size=48, depth=2,
tanh)` (2,641 weights), prior N(0, 1), Gaussian likelihood (noise 0.1), teacher-student data.
Two runs, 4 chains vmapped on one device:

- NUTS (max tree depth 6) on N = 100 points, full batch;
- SGLD (batch 32) on N = 1,000 points, thinning 1: a draw is one cheap step, so a per-draw
  cost shows most here.

Three settings of each run, with the same key (so the same draws and the same work):
`progress=False`; `progress=True` (blocks of ceil(num_draws / UPDATES) draws, a report
after each: about UPDATES = 25 per run); and `progress=True` with blocks of one draw (a
host call at every draw). Timed: the sampling phase only, from the end of warm-up to the end
of the last chunk (the bar's final sync and close included), as the warm-up program does not
change with `progress`. Every setting is called once untimed first (compile), then the
repeats are interleaved (off, on, every draw, off, ...) and the medians compared. The bar
writes to /dev/null (tqdm limits its redraws to 10 per second, so a terminal costs no more).

Then where the callback goes, in plain JAX (the design choice of bayesover/inference/
_progress.py): a scan of 2,000 Langevin-like steps on a 2,641-vector, 4 chains vmapped, with
(a) no callback; (b) `lax.cond(i % 40 == 0, jax.debug.callback)` in every iteration (as
NumPyro's progress bar does); (c) the scan cut into blocks of 40 (a scan of scans) and a
`jax.debug.callback` after each block, which vmap unrolls into one host call per chain; (d)
blocks of 40 and one `jax.pure_callback(..., vmap_method="expand_dims")` per block for all
chains, its result (0) added to the next block's indices (bayesover's choice); (e) a
`jax.debug.callback` in every iteration (BlackJAX's progress bar calls the host at every
scan step). Medians of the same interleaved repeats; the cost per iteration is
(variant - (a)) / 2,000.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _sections import machine_line, write_section

import bayesover as bo
from bayesover.inference import _progress

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- progress:start -->", "<!-- progress:end -->"
NOISE = 0.1
SETTINGS = ("off", "on", "every draw")


def log(*args):
    print(*args, file=sys.__stdout__, flush=True)


def posterior(num_points):
    net = eqx.nn.MLP(4, 1, 48, 2, activation=jnp.tanh, key=jax.random.key(0))
    teacher = eqx.nn.MLP(4, 1, 16, 1, activation=jnp.tanh, key=jax.random.key(1000))
    data = bo.data.teacher_student(
        jax.random.key(num_points), teacher, num_points, input_shape=4, noise_scale=NOISE
    )
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(NOISE))
    return bo.Posterior(model, data)


class SamplingClock:
    """Seconds from the end of warm-up to the end of the last chunk of one `bo.sample`."""

    def __init__(self):
        self.start = self.end = 0.0
        warmup_done, chunk_done = _progress.Progress.warmup_done, _progress.Progress.chunk_done
        clock = self

        def timed_warmup_done(report, num_warmup):
            warmup_done(report, num_warmup)
            clock.start = time.perf_counter()

        def timed_chunk_done(report, draws_done):
            chunk_done(report, draws_done)
            if draws_done >= report.num_draws:
                clock.end = time.perf_counter()

        _progress.Progress.warmup_done = timed_warmup_done
        _progress.Progress.chunk_done = timed_chunk_done

    @property
    def seconds(self):
        return self.end - self.start


@contextlib.contextmanager
def report_every_draw(enabled):
    """Within: the live bar reports at every draw (`LiveArgs.every = 1`)."""
    live_args = _progress.live_args
    if enabled:
        _progress.live_args = lambda num_draws: live_args(num_draws, updates=num_draws)
    try:
        yield
    finally:
        _progress.live_args = live_args


def run(clock, setting, target, sampler, num_warmup, num_draws, num_chains):
    with report_every_draw(setting == "every draw"):
        ensemble = bo.sample(
            target,
            sampler,
            key=jax.random.key(7),
            num_chains=num_chains,
            num_warmup=num_warmup,
            num_draws=num_draws,
            progress=setting != "off",
        )
    jax.block_until_ready(jax.tree.leaves(ensemble.params))
    return clock.seconds, ensemble


def bench(clock, name, target, sampler, num_warmup, num_draws, num_chains, repeats):
    times = {s: [] for s in SETTINGS}
    draws = {}
    for setting in SETTINGS:  # compile every program once, untimed
        _, ensemble = run(clock, setting, target, sampler, num_warmup, num_draws, num_chains)
        draws[setting] = jax.tree.leaves(ensemble.params)
    same = all(
        all(bool(jnp.array_equal(a, b)) for a, b in zip(draws["off"], draws[s], strict=True))
        for s in SETTINGS
    )
    for r in range(repeats):
        for setting in SETTINGS:
            seconds, _ = run(clock, setting, target, sampler, num_warmup, num_draws, num_chains)
            times[setting].append(seconds)
        log(f"{name} repeat {r + 1}: " + ", ".join(f"{s} {times[s][-1]:.3f} s" for s in SETTINGS))
    medians = {s: statistics.median(v) for s, v in times.items()}
    chunk = math.ceil(num_draws / 10)  # bo.sample's default chunk_size
    every = min(_progress.live_args(num_draws).every, chunk)
    chunks = math.ceil(num_draws / chunk)
    return {
        "reports": {
            "on": chunks * (chunk // every + (chunk % every > 0)),
            "every draw": chunks * chunk,
        },
        "name": name,
        "medians": medians,
        "times": times,
        "same": same,
        "num_draws": num_draws,
        "num_chains": num_chains,
        "every": int(every),
    }


PLACEMENTS = (
    "none",
    "cond every iteration",
    "blocks of 40, debug.callback per chain",
    "blocks of 40, one pure_callback",
    "every iteration",
)


def placement(repeats, num_steps=2000, num_chains=4, size=2641, block=40):
    """Seconds per call of each placement of the callback (module docstring), medians."""

    def host(*args):
        pass

    def host_returning(packed):
        return np.zeros(packed.shape[:-1], np.int32)

    def step(x, i, key):
        noise = jax.random.normal(jax.random.fold_in(key, i), x.shape)
        return x - 1e-3 * jnp.tanh(x) + 1e-3 * noise

    def make(kind):
        def chain(x, key):
            if kind.startswith("blocks"):

                def inner(x, i):
                    return step(x, i, key), None

                def outer(carry, first):
                    x, token = carry
                    x, _ = jax.lax.scan(inner, x, first + token + jnp.arange(block))
                    report = jnp.stack([first, jnp.int32(0)]) + x[:2].astype(jnp.int32)
                    if kind == "blocks of 40, one pure_callback":
                        result = jax.ShapeDtypeStruct((), jnp.int32)
                        token = jax.pure_callback(
                            host_returning, result, report, vmap_method="expand_dims"
                        )
                    else:
                        jax.debug.callback(host, report)
                    return (x, token), None

                firsts = block * jnp.arange(num_steps // block)
                return jax.lax.scan(outer, (x, jnp.zeros((), jnp.int32)), firsts)[0][0]

            def body(x, i):
                x = step(x, i, key)
                if kind == "cond every iteration":
                    report = lambda: jax.debug.callback(host, i, x[0])  # noqa: E731
                    jax.lax.cond(i % block == 0, report, lambda: None)
                if kind == "every iteration":
                    jax.debug.callback(host, i, x[0])
                return x, None

            return jax.lax.scan(body, x, jnp.arange(num_steps))[0]

        return jax.jit(jax.vmap(chain))

    x = jnp.zeros((num_chains, size))
    keys = jax.random.split(jax.random.key(0), num_chains)
    programs = {kind: make(kind) for kind in PLACEMENTS}
    for program in programs.values():
        jax.block_until_ready(program(x, keys))
    times = {kind: [] for kind in PLACEMENTS}
    for _ in range(repeats):
        for kind, program in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(program(x, keys))
            times[kind].append(time.perf_counter() - start)
    log("placement: " + ", ".join(f"{k} {statistics.median(v):.4f} s" for k, v in times.items()))
    return {kind: statistics.median(v) for kind, v in times.items()}, num_steps


def section(rows, placements, repeats, load_start):
    lines = [
        START,
        "## Live progress bar: `progress=True` vs `progress=False` (`benchmarks/progress.py`)",
        "",
        f"{machine_line()} (at the end; {load_start:.1f} at the start); jax {jax.__version__}.",
        "",
        "The MLP of benchmark 1-4 (2,641 weights), 4 chains vmapped on one device; NUTS (max "
        "tree depth 6) on N = 100, SGLD (batch 32, thinning 1) on N = 1,000. Time of the "
        "sampling phase (end of warm-up to end of the last chunk, the bar's final sync "
        f"included), compile excluded; **median of {repeats} interleaved repeats**, the same "
        "key for every setting. 'every draw': blocks of one draw, a host call at every draw.",
        "",
        "Host calls: one per block of draws (all 4 chains in one call). 'ms per call' = "
        "(time - off) / calls, the cost of one report.",
        "",
        "| run | draws x chains | off (s) | on: block, calls | on (s) | **on / off** | ms per "
        "call | every draw: calls | every draw (s) | every draw / off | ms per call | "
        "draws identical |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        m, calls = row["medians"], row["reports"]

        def per_call(setting, m=m, calls=calls):
            return 1000 * (m[setting] - m["off"]) / calls[setting]

        lines.append(
            f"| {row['name']} | {row['num_draws']} x {row['num_chains']} | {m['off']:.3f} | "
            f"{row['every']} draws, {calls['on']} | {m['on']:.3f} | "
            f"**{m['on'] / m['off']:.3f}** | {per_call('on'):.2f} | {calls['every draw']} | "
            f"{m['every draw']:.3f} | {m['every draw'] / m['off']:.3f} | "
            f"{per_call('every draw'):.2f} | {'yes' if row['same'] else 'NO'} |"
        )
    medians, num_steps = placements
    lines += [
        "",
        "Where the callback goes (plain JAX, 2,000 steps of a 2,641-vector, 4 chains vmapped; "
        "see the script's docstring):",
        "",
        "| placement | s per run | extra us per iteration |",
        "|---|---:|---:|",
    ]
    for kind in PLACEMENTS:
        extra = (medians[kind] - medians["none"]) / num_steps * 1e6
        lines.append(f"| {kind} | {medians[kind]:.4f} | {extra:.1f} |")
    lines += [
        "",
        "Per-repeat times (off / on / every draw, s): "
        + "; ".join(
            f"{row['name']}: "
            + ", ".join(
                "/".join(f"{row['times'][s][i]:.3f}" for s in SETTINGS)
                for i in range(len(row["times"]["off"]))
            )
            for row in rows
        )
        + ".",
        "",
        END,
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    clock = SamplingClock()
    quick = args.quick
    repeats = 2 if quick else args.repeats
    rows = []
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        rows.append(
            bench(
                clock,
                "NUTS",
                posterior(100),
                bo.NUTS(max_tree_depth=6),
                num_warmup=20 if quick else 50,
                num_draws=20 if quick else 400,
                num_chains=4,
                repeats=repeats,
            )
        )
        rows.append(
            bench(
                clock,
                "SGLD",
                posterior(1000),
                bo.SGLD(step_size=1e-6, batch_size=32),
                num_warmup=100,
                num_draws=500 if quick else 4000,
                num_chains=4,
                repeats=repeats,
            )
        )
        placements = placement(repeats)
    text = section(rows, placements, repeats, load_start)
    log(text)
    if not quick:
        write_section(RESULTS, text, START, END)
        log(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
