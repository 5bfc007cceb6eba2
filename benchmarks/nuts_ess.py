"""`bo.NUTS` against NumPyro's NUTS in ESS per second, with enough repeats to see past the noise.

Run from the repository root (about 30 minutes on a quiet 2-core CPU):

    .venv/bin/python benchmarks/nuts_ess.py                  # updates its section of RESULTS.md
    .venv/bin/python benchmarks/nuts_ess.py --append         # more repeats, added to the saved
    .venv/bin/python benchmarks/nuts_ess.py --quick          # tiny sizes: a smoke test only

Every repeat's numbers are saved in `benchmarks/nuts_ess.json`; `--append` runs new repeats
(new seeds: repeat r uses seed 400 + r) and reports on all of them, so the interval narrows
across runs (and machines: the ratios are paired within a repeat).

The comparison is benchmark 2 of `benchmarks/sampling.py` (same network, data, priors,
likelihood, initial points, compile time excluded for both) run with longer chains and more
paired repeats. Each repeat pairs the two samplers on the same seed and initial points, so the
statistic is the paired log ratio r_i = log(ESS/s of bo) - log(ESS/s of NumPyro). Its mean over
n repeats has a Student-t 95% interval m +- t_{0.975, n-1} s / sqrt(n); the ratio exp(m) is
"ahead outside noise" when the whole interval lies above 0 (ratio 1), "behind" when below, and
"not resolved" otherwise. The interval is written by hand because it is two lines of
`scipy.stats.t`; nothing in the pinned stack reports paired ratios of ESS/s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np
import sampling  # benchmarks/ is on sys.path when run as a script
from _sections import cpu_name, machine_line, write_section
from scipy import stats

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SAVED = HERE / "nuts_ess.json"
START, END = "<!-- nuts_ess:start -->", "<!-- nuts_ess:end -->"


class Config:
    def __init__(self, quick: bool, repeats: int, draws: int, warmup: int, probes: int):
        self.depth = 4 if quick else 8
        self.ess_warmup = 10 if quick else warmup
        self.ess_draws = 10 if quick else draws
        self.repeats_ess = repeats
        self.num_probes = probes
        self.n_full = 100
        self.first_repeat = 0

    def signature(self) -> dict:
        """What makes repeats comparable (the number of repeats does not)."""
        keys = ("depth", "ess_warmup", "ess_draws", "num_probes", "n_full")
        return {k: getattr(self, k) for k in keys}


def paired_interval(log_ratios: list[float]) -> tuple[float, float, float, float]:
    """Mean, standard deviation and the Student-t 95% interval of the paired log ratios."""
    x = np.asarray(log_ratios)
    n = len(x)
    m, s = float(x.mean()), float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * s / math.sqrt(n)
    return m, s, m - half, m + half


def verdict(lo: float, hi: float) -> str:
    if lo > 0:
        return "**ahead, outside noise**"
    if hi < 0:
        return "**behind, outside noise**"
    return "**not resolved** (the interval contains 1)"


def records(result: dict, first_repeat: int) -> list[dict]:
    """One dict per repeat: its index and, for "bo" and "numpyro", the run time and the
    noted numbers (ESS of the log density and of the predictions, step size, ...)."""
    sides = {"bo": result["bo"], "numpyro": result["numpyro"]}
    n = len(result["bo"].run)
    return [
        {
            "repeat": first_repeat + i,
            "date": f"{datetime.datetime.now():%Y-%m-%d}",
            "cpu": cpu_name(),
            **{
                side: {"run": t.run[i], **{k: v[i] for k, v in t.extra.items()}}
                for side, t in sides.items()
            },
        }
        for i in range(n)
    ]


def report(cfg: Config, saved: list[dict], elapsed: float, load: tuple[float, float]) -> str:
    bo = {k: [r["bo"][k] for r in saved] for k in saved[0]["bo"]}
    numpyro = {k: [r["numpyro"][k] for r in saved] for k in saved[0]["numpyro"]}
    n = len(saved)
    rows, summary = [], []
    for name, label in (("ess_lp", "log density"), ("ess_pred", "predictions f(probe)")):
        per_s = [
            (b / tb) / (p / tp)
            for b, tb, p, tp in zip(bo[name], bo["run"], numpyro[name], numpyro["run"], strict=True)
        ]
        ess_ratio = [b / p for b, p in zip(bo[name], numpyro[name], strict=True)]
        m, s, lo, hi = paired_interval([math.log(r) for r in per_s])
        pooled = (sum(bo[name]) / sum(bo["run"])) / (sum(numpyro[name]) / sum(numpyro["run"]))
        rows.append(
            f"| {label} | {math.exp(m):.2f} | {math.exp(lo):.2f} - {math.exp(hi):.2f} | "
            f"{s:.2f} | {statistics.median(per_s):.2f} | {pooled:.2f} | "
            f"{statistics.geometric_mean(ess_ratio):.2f} | {verdict(lo, hi)} |"
        )
        summary.append(
            f"- {label}, per repeat: " + ", ".join(f"{r:.2f}" for r in sorted(per_s)) + "."
        )
    run_ratio = statistics.geometric_mean(
        [b / p for b, p in zip(bo["run"], numpyro["run"], strict=True)]
    )

    def col(values, fmt):
        return ", ".join(format(v, fmt) for v in values)

    dates = sorted({f"{r['date']} ({r['cpu']})" for r in saved})
    lines = [
        START,
        "## `bo.NUTS` vs NumPyro NUTS: ESS/s with paired repeats (`benchmarks/nuts_ess.py`)",
        "",
        machine_line() + f" at the start, {os.getloadavg()[0]:.1f} at the end; this run took "
        f"{elapsed / 60:.1f} min. Repeats from: {'; '.join(dates)}. Regenerate with "
        "`.venv/bin/python benchmarks/nuts_ess.py` (add repeats with `--append`).",
        "",
        f"Benchmark 2 of `benchmarks/sampling.py` (the 2,641-weight tanh MLP, N = {cfg.n_full}, "
        f"prior N(0, 1), noise 0.1) with longer chains and more repeats: {cfg.ess_warmup} "
        f"warm-up + {cfg.ess_draws} draws x 2 chains (vectorized on one device for both), max "
        f"tree depth {cfg.depth}, target acceptance 0.8, **{n} paired repeats** (same seed and "
        f"initial points for both sides of a pair; new ones per pair). ESS: `arviz_stats.ess` "
        f"(bulk) of the log density and of f(x) at {cfg.num_probes} probe inputs (median over "
        "probes). Compile time excluded for both (NumPyro's recompiles are subtracted with JAX's "
        "own compile-time spans). The ratio is the geometric mean of the per-repeat ESS/s ratios, "
        "its interval the Student-t 95% interval of the mean log ratio.",
        "",
        "| ESS/s of | ratio bo / NumPyro | 95% interval | sd of log ratio | median ratio | pooled "
        "ratio | ESS-per-draw ratio | verdict (goal >= 1) |",
        "|---|---:|---|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"Run-time ratio bo / NumPyro (geometric mean): {run_ratio:.2f}; leapfrog steps per "
        f"draw on average, bo / NumPyro: {_mean_known(bo['n_steps'])} / "
        f"{_mean_known(numpyro['n_steps'])}.",
        "",
        *summary,
        f"- run times (s), bo: {col(bo['run'], '.1f')}; NumPyro: {col(numpyro['run'], '.1f')}.",
        f"- adapted step sizes (mean over the 2 chains), bo: {col(bo['step_size'], '.4f')}; "
        f"NumPyro: {col(numpyro['step_size'], '.4f')}.",
        f"- divergences in the draws, bo: {col(bo['divergences'], '.0f')}; NumPyro: "
        f"{col(numpyro['divergences'], '.0f')}.",
        f"- load average at the start / end of this run: {load[0]:.1f} / {load[1]:.1f}.",
        END,
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--repeats", type=int, default=12, help="paired repeats (>= 3)")
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up steps per chain")
    parser.add_argument("--probes", type=int, default=10, help="probe inputs for f(x)")
    parser.add_argument("--out", type=Path, default=None, help="report path")
    parser.add_argument(
        "--append", action="store_true", help="add the new repeats to the saved ones"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.repeats < 3 and not args.append):
        parser.error("--repeats must be >= 3 (the interval needs a spread), >= 1 with --append")
    out = args.out or (Path("/tmp/bayesover-nuts-ess-quick.md") if args.quick else RESULTS)
    store = Path("/tmp/bayesover-nuts-ess-quick.json") if args.quick else SAVED
    cfg = Config(args.quick, args.repeats, args.draws, args.warmup, args.probes)
    saved: list[dict] = []
    if args.append and store.exists():
        payload = json.loads(store.read_text())
        if payload["config"] != cfg.signature():
            parser.error(f"--append: the saved repeats in {store} ran another configuration")
        saved = payload["repeats"]
    cfg.first_repeat = 1 + max((r["repeat"] for r in saved), default=-1)
    start, load0 = time.time(), os.getloadavg()[0]

    def log(text):
        print(f"[{time.time() - start:6.1f}s] {text}", file=sys.stderr, flush=True)

    net = sampling.make_net(jax.random.key(0))
    posterior = sampling.make_posterior(net, sampling.make_data(cfg.n_full, seed=1))
    probe = jax.random.normal(jax.random.key(3), (cfg.num_probes, 4))
    result = sampling.bench_nuts_vs_numpyro(cfg, posterior, net, probe, log)
    saved += records(result, cfg.first_repeat)
    write_json(store, {"config": cfg.signature(), "repeats": saved})
    text = report(cfg, saved, time.time() - start, (load0, os.getloadavg()[0]))
    write_section(out, text, START, END)
    print(text)
    log(f"wrote {out} and {store}")


def _mean_known(values) -> str:
    """The mean of the recorded values (repeats reconstructed from a log lack some)."""
    known = [v for v in values if v is not None]
    return f"{statistics.mean(known):.0f} (from {len(known)} repeats)" if known else "not kept"


def write_json(path: Path, payload: dict) -> None:
    """Written to a temporary file and renamed: never half-written."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


if __name__ == "__main__":
    main()
