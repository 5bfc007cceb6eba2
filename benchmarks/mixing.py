"""The demo's SG-MCMC against the demo's NUTS: wall time to pass the function-space diagnostics.

    .venv/bin/python benchmarks/mixing.py           # updates its section of RESULTS.md
    .venv/bin/python benchmarks/mixing.py --quick   # tiny sizes, prints only

The bundled default model (`regression_mlp`: a 10-16-1 tanh MLP, 193 weights, N = 354) and the
demo's runs (`bayesover.cli._main.DEMO_PLAN`, built by `demo_run_args`), with the demo's keys:

1. NUTS (4 chains, 300 warm-up + 300 draws) against three SG-MCMC runs of 4 chains from MAP
   starts: the old demo's SGLD (constant step 0.05/N, batch 32, 2,000 warm-up steps + 200 draws
   thinned by 25); the new demo's cyclical pSGLD (peak 0.02/N, cycles of 50, batch 128, 1,000
   warm-up steps + 400 draws, one per cycle); and plain SGLD on the same cycles (peak 0.3/N).
   Wall time of `_run` as the demo calls it (MAP starts included), cold (it compiles: what
   `bayesover demo` costs) and warm (the same call again: compile excluded); the chains that
   stopped (overflowed); then the largest rank R-hat and the smallest bulk ESS over f at the 10
   probe inputs and the log-likelihood (`bo.diagnose` of the chains that did not stop), and
   the test NLL. The repeats are interleaved (NUTS, old, ..., NUTS, ...), each with its own key.
2. Many chains, cheaply: the demo's pSGLD with 4, 16 and 64 vmapped chains at the same total
   number of kept draws (1,600): fewer cycles per chain, the same warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np
from _sections import machine_line, write_section

from bayesover.cli._main import _run, _tree, demo_run_args
from bayesover.cli.builders import load_problem
from bayesover.diagnostics._verdict import diagnose

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- mixing:start -->", "<!-- mixing:end -->"
OLD_SGLD = dict(
    warmup=2000, draws=200, thinning=25, cycle_length=None, batch_size=32, step_size=None
)


def runs(quick: bool) -> dict[str, tuple[str, argparse.Namespace]]:
    """name -> (sampler, arguments of `_run`)."""
    small = dict(warmup=100, draws=40) if quick else {}
    cyclic = dict(warmup=200, draws=40, thinning=20, cycle_length=20) if quick else {}
    old = dict(OLD_SGLD, warmup=100, draws=40) if quick else OLD_SGLD
    return {
        "NUTS (demo)": ("nuts", demo_run_args("nuts", **small)),
        "SGLD, constant step (old demo)": ("sgld", demo_run_args("psgld", **old)),
        "SGLD, cyclical, peak 0.3/N": ("sgld", demo_run_args("psgld", **cyclic)),
        "pSGLD, cyclical, peak 0.02/N (demo)": ("psgld", demo_run_args("psgld", **cyclic)),
    }


def function_space(tree) -> tuple[float, float]:
    """(largest R-hat, smallest bulk ESS) over f at the probe inputs and the log-likelihood."""
    table = diagnose(tree).table
    names = [n for n in table.index if str(n).startswith("f[")] + ["log_lik"]
    rows = table.loc[names]
    return float(rows["r_hat"].max()), float(rows["ess_bulk"].min())


def timed(problem, sampler, args, key):
    start = time.perf_counter()
    ensemble = _run(problem, sampler, args, key)
    jax.block_until_ready(ensemble.params)
    return ensemble, time.perf_counter() - start


def measure(problem, sampler, args, key) -> dict:
    """One cold call (compiles) and one warm call; diagnostics of the warm one."""
    _, cold = timed(problem, sampler, args, key)
    ensemble, warm = timed(problem, sampler, args, key)
    tree = _tree(problem, ensemble.healthy(), sampler)
    rhat, ess = function_space(tree)
    nll = float(tree["predictive_metrics"].to_dataset()["nll"])
    stopped = float((~np.asarray(ensemble.chain_ok())).sum())
    return dict(cold=cold, warm=warm, rhat=rhat, ess=ess, nll=nll, stopped=stopped)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes; print, write nothing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    began, load_start = time.time(), os.getloadavg()[0]
    problem = load_problem("regression_mlp", seed=0)
    plan = runs(args.quick)

    # 1. interleaved repeats; a fresh jit cache per call is not possible, so "cold" is the first
    # call of each repeat's new key (same shapes: only the first repeat really compiles)
    results: dict[str, list[dict]] = {name: [] for name in plan}
    for r in range(args.repeats):
        for index, (name, (sampler, run_args)) in enumerate(plan.items()):
            key = jax.random.fold_in(jax.random.key(r), index)
            results[name].append(measure(problem, sampler, run_args, key))
            m = results[name][-1]
            print(
                f"[1] repeat {r} {name}: cold {m['cold']:.1f}s warm {m['warm']:.1f}s "
                f"R-hat {m['rhat']:.3f} ESS {m['ess']:.0f} nll {m['nll']:.4f}",
                file=sys.stderr,
                flush=True,
            )

    # 2. chains 4 -> 16 -> 64 at 1,600 kept draws in all
    total = 160 if args.quick else 1600
    chain_rows = []
    for chains in (4, 16, 64):
        extra = dict(warmup=200, thinning=20, cycle_length=20) if args.quick else {}
        run_args = demo_run_args("psgld", chains=chains, draws=total // chains, **extra)
        m = measure(problem, "psgld", run_args, jax.random.key(100 + chains))
        chain_rows.append((chains, total // chains, m))
        print(f"[2] {chains} chains: {m}", file=sys.stderr, flush=True)

    med = {
        name: {k: statistics.median(m[k] for m in ms) for k in ms[0]}
        for name, ms in results.items()
    }
    for name, ms in results.items():  # only the first call of a configuration compiles
        med[name]["cold"] = ms[0]["cold"]
    nuts = med["NUTS (demo)"]
    lines = [
        START,
        "## The demo's SG-MCMC mixes (`benchmarks/mixing.py`)",
        "",
        f"{machine_line()} (at the end; {load_start:.1f} at the start; other agents shared the "
        f"CPU, so absolute times are inflated: read the ratios); jax {jax.__version__}; the "
        f"script ran {(time.time() - began) / 60:.1f} min.",
        "",
        f"Model `regression_mlp` (193 weights, N = {problem.posterior.num_data}); the demo's "
        "runs as `bayesover demo` makes them (`bayesover.cli._main.DEMO_PLAN`, MAP starts). "
        f"Medians of {args.repeats} interleaved repeats, each with its own key. Cold: the very "
        "first call (repeat 0), compile included (what the demo pays); warm: the call again. "
        "R-hat (rank) and ESS (bulk) are the worst over f at the 10 probe inputs and the "
        "log-likelihood, of the chains that did not stop (`Ensemble.healthy()`).",
        "",
        "| run | settings | cold (s) | warm (s) | warm / NUTS's | stopped chains (all repeats) "
        "| max R-hat | min ESS bulk | test NLL |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (sampler, run_args) in plan.items():
        m = med[name]
        settings = f"{run_args.chains} chains, {run_args.warmup} + {run_args.draws}"
        if sampler != "nuts":
            cycle = run_args.cycle_length
            settings += f" x {run_args.thinning}, batch {run_args.batch_size}, " + (
                f"cycles of {cycle}" if cycle else "constant step"
            )
        lines.append(
            f"| {name} | {settings} | {m['cold']:.1f} | {m['warm']:.1f} | "
            f"{m['warm'] / nuts['warm']:.2f} | {sum(r['stopped'] for r in results[name]):.0f} | "
            f"{m['rhat']:.3f} | {m['ess']:.0f} | "
            f"{m['nll']:.4f} |"
        )
    spread = {
        name: ", ".join(f"{m['rhat']:.3f}/{m['ess']:.0f}" for m in ms)
        for name, ms in results.items()
    }
    lines += [
        "",
        "Per repeat (max R-hat / min ESS bulk): "
        + "; ".join(f"{name}: {v}" for name, v in spread.items())
        + ".",
        "",
        f"Many chains (the demo's cyclical pSGLD, {total:,} kept draws in all, the demo's "
        "warm-up per chain):",
        "",
        "| chains | draws per chain | cold (s) | warm (s) | stopped chains | max R-hat | min ESS "
        "bulk | test NLL |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for chains, draws, m in chain_rows:
        lines.append(
            f"| {chains} | {draws} | {m['cold']:.1f} | {m['warm']:.1f} | {m['stopped']:.0f} | "
            f"{m['rhat']:.3f} | {m['ess']:.0f} | {m['nll']:.4f} |"
        )
    lines += [
        "",
        "A stopped chain (an iterate that overflowed, `stats['stopped']`) has NaN draws and is "
        "left out of R-hat, ESS and NLL; `bo.diagnose` of the whole run reports it as a "
        "failed check.",
    ]

    def verdict(m):
        ok = m["rhat"] < 1.01 and m["ess"] > 400
        return "passes" if ok else "fails"

    new, old = med["pSGLD, cyclical, peak 0.02/N (demo)"], med["SGLD, constant step (old demo)"]
    lines += [
        "",
        f"Reading (medians): the demo's cyclical pSGLD {verdict(new)} the function-space "
        f"thresholds (R-hat < 1.01, ESS bulk > 400) in {new['warm'] / nuts['warm']:.2f}x the "
        f"warm wall time of the demo's NUTS ({new['cold'] / nuts['cold']:.2f}x cold), which "
        f"{verdict(nuts)} them; the old constant-step SGLD {verdict(old)} them. The SG-MCMC "
        "bias, which mixing diagnostics cannot see, is bounded in tests/test_demo_psgld.py.",
        END,
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        write_section(RESULTS, text, START, END)


if __name__ == "__main__":
    main()
