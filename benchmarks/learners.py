"""Practical learners against the Bayes mixture: regret on the lens example's simple teacher.

    .venv/bin/python benchmarks/learners.py           # updates its section of RESULTS.md
    .venv/bin/python benchmarks/learners.py --quick   # a smoke run (< 2 min), prints only

The teacher, students, prior, noise (sigma = 0.3) and held-out test inputs are those of
`examples/universality_lens.py` (simple teacher, weights of scale 0.5), students of width 16,
64 and 256. On each of a few data sets D of n points drawn from the teacher:

- Bayes mixture: the realised regret R_n(D) = log P_0(y^n | x^n) - log M(y^n | x^n) by
  prequential SMC (`lens.smc_regret`, the example's `bo.lens.expected_regret` call: 256
  particles, 2 runs). Its expectation over data sets is E R_n = D(P_0^n || M).
- Practical learner L: R_n^L(D) = sum_{t<n} r_t(D), r_t(D) = E_x KL(P_0(.|x) || M_L(.|x, D_t))
  on the held-out inputs, where M_L(.|x, D_t) is the learner's mixture predictive after
  training on the first t points of D (`lens.instantaneous_regret`, Gauss-Hermite over y);
  r_t is measured at t in {0, ts} (t = 0: the prior predictive, 400 prior draws) and summed by
  `bo.lens.cumulative_regret` (linear from 0 to ts[0], a power law after), as the example
  does. Its expectation over data sets is the learner's E R_n (prequential: the summed
  expected excess log-loss of the learner refitted at each t).

- Bayes mixture measured like the learners: the same sum for the posterior by `bo.NUTS` (4
  chains) at each t, so that the comparison is paired data set by data set without SMC's
  realised y-noise.

All are estimates of expectations over the same data sets (the learners and NUTS train on the
very points SMC scores; checked), so each ratio E R_n^L / E R_n^Bayes is taken with its stderr
across data sets (paired, by the delta method).

Learners, each run once with the largest member count C and the longest step budget per
(data set, t); k-member ensembles are disjoint blocks of k of the C chains (r_t averaged over
up to 4 blocks), shorter budgets the draws within the first s sampling steps (the chains are
Markov with fixed settings after warm-up, so a prefix is a shorter run):

- SGLD ensemble: `lens.sgld_ensemble` (the example's settings: step 5e-5 * min(1, 64 /
  width), batch 32, 1,000 warm-up steps, prior starts for t <= 16, else MAP starts), s
  sampling steps, 5 draws per chain evenly over them.
- Langevin ensemble: `bo.deep_ensemble(..., then_sample=bo.MCLMC())`: 1,000 Adam steps per
  member, then MCLMC with 400 tuning steps and s sampling steps, 5 draws per chain.
- Deep ensemble: `bo.deep_ensemble` alone, s Adam(1e-2) full-batch steps (one run per s).
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _sections import machine_line, write_section

import bayesover as bo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
import universality_lens as lens  # noqa: E402

RESULTS = HERE / "RESULTS.md"
START, END = "<!-- learners:start -->", "<!-- learners:end -->"
LEARNERS = ("SGLD ensemble", "Langevin ensemble", "deep ensemble")
STEP_NAMES = {
    "SGLD ensemble": "SGLD sampling steps",
    "Langevin ensemble": "MCLMC sampling steps",
    "deep ensemble": "Adam steps",
}


def config(quick: bool) -> dict:
    if quick:
        return dict(
            widths=(16,),
            ts=(8,),
            ns=(8,),
            datasets=2,
            smc_particles=64,
            num_test=64,
            chains=(1, 4),
            per_chain=5,
            sgld_warmup=100,
            sgld_map_steps=100,
            sgld_step_size=5e-5,
            sgld_steps=(100, 200),
            langevin_map_steps=100,
            mclmc_tuning=100,
            langevin_steps=(50, 100),
            deep_steps=(50, 200),
            nuts_warmup=30,
            nuts_draws=10,
        )
    return dict(
        widths=(16, 64, 256),
        ts=(4, 16, 64),
        ns=(16, 64),
        datasets=3,
        smc_particles=256,
        num_test=256,
        chains=(1, 4, 16),
        per_chain=5,
        sgld_warmup=1000,
        sgld_map_steps=1000,
        sgld_step_size=5e-5,
        sgld_steps=(500, 2000, 8000),
        langevin_map_steps=1000,
        mclmc_tuning=400,
        langevin_steps=(50, 200, 800),
        deep_steps=(250, 1000, 4000),
        nuts_warmup=150,
        nuts_draws=50,
    )


def smc_datasets(teacher, key, num_datasets: int, n: int) -> list[bo.Data]:
    """The data sets `lens.smc_regret(..., key)` scores (`bo.lens.expected_regret` splits its key
    per data set, then into a data key and a regret key); `main` checks them against the SMC's
    recorded log P_0(y^t)."""
    out = []
    for k in jax.random.split(key, num_datasets):
        key_data, _ = jax.random.split(k)
        out.append(
            bo.data.teacher_student(key_data, teacher, n, input_shape=(2,), noise_scale=lens.SIGMA)
        )
    return out


def check_datasets(datasets, smc, teacher) -> None:
    for data, result in zip(datasets, smc.datasets, strict=True):
        f0 = jax.vmap(teacher)(data.inputs).reshape(data.targets.shape)
        loglik = np.cumsum(np.asarray(jax.scipy.stats.norm.logpdf(data.targets, f0, lens.SIGMA)))
        if not np.allclose(loglik, result.truth_loglik, rtol=1e-4, atol=1e-3):
            raise RuntimeError("the learners' data sets are not the ones SMC scored")


def draw_index(steps: int, thinning: int, per_chain: int) -> np.ndarray:
    """Indices of `per_chain` draws evenly spread over the first `steps` sampling steps of a
    chain saved every `thinning` steps (the last one at step `steps`)."""
    saved = steps // thinning
    every = saved // per_chain
    return np.arange(saved)[every - 1 :: every][:per_chain]


def blocks(num_chains: int, k: int) -> list[np.ndarray]:
    """Disjoint blocks of k chains: up to 4, and at most 32 chains in all (k = 64: one)."""
    count = min(num_chains // k, 4, max(1, 32 // k))
    return [np.arange(j * k, (j + 1) * k) for j in range(count)]


def score(ensemble, test, teacher, chains, draws=None) -> dict[int, tuple[float, float]]:
    """{k: (r, stderr)}: the instantaneous regret of k-chain sub-ensembles, averaged over
    disjoint blocks (the stderr, over the test inputs, is the blocks' mean: conservative)."""
    out = {}
    for k in chains:
        found = blocks(ensemble.num_chains, k)
        if not found:
            continue
        values = [
            lens.instantaneous_regret(ensemble.subset(chains=b, draws=draws), test, teacher)
            for b in found
        ]
        out[k] = (float(np.mean([v[0] for v in values])), float(np.mean([v[1] for v in values])))
    return out


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    jax.block_until_ready(jax.tree.leaves(result.params))
    return result, time.perf_counter() - start


def train(name, posterior, key, cfg):
    """The learner's run with the largest member count; returns [(steps, ensemble, draws)] and
    the wall time (one entry per step budget; for the deep ensemble one run, and time, each)."""
    num = max(cfg["chains"])
    per = cfg["per_chain"]
    if name == "deep ensemble":
        runs, seconds = [], []
        for steps in cfg["deep_steps"]:
            ensemble, s = timed(
                lambda st=steps: bo.deep_ensemble(posterior, num, None, st, key=key)
            )
            runs.append((steps, ensemble, None))
            seconds.append(s)
        return runs, seconds
    grid = cfg["sgld_steps"] if name == "SGLD ensemble" else cfg["langevin_steps"]
    thinning = grid[0] // per
    if name == "SGLD ensemble":
        settings = {
            "step_size": cfg["sgld_step_size"],
            "warmup": cfg["sgld_warmup"],
            "draws": grid[-1] // thinning,
            "thinning": thinning,
            "map_steps": 2 * cfg["sgld_map_steps"],  # the example halves it
        }
        (ensemble, _step), s = _timed_pair(
            lambda: lens.sgld_ensemble(posterior, key, settings, num_chains=num)
        )
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ensemble, s = timed(
                lambda: bo.deep_ensemble(
                    posterior,
                    num,
                    None,
                    cfg["langevin_map_steps"],
                    key=key,
                    then_sample=bo.MCLMC(),
                    num_warmup=cfg["mclmc_tuning"],
                    num_draws=grid[-1] // thinning,
                    thinning=thinning,
                )
            )
    runs = [(steps, ensemble, draw_index(steps, thinning, per)) for steps in grid]
    return runs, [s]


def nuts_ensemble(posterior, key, cfg):
    """The posterior by NUTS (4 chains): the Bayes mixture measured like the learners."""
    return bo.sample(
        posterior,
        bo.NUTS(),
        key=key,
        num_chains=4,
        num_warmup=cfg["nuts_warmup"],
        num_draws=cfg["nuts_draws"],
        progress=False,
    )


def _timed_pair(fn):
    start = time.perf_counter()
    ensemble, step = fn()
    jax.block_until_ready(jax.tree.leaves(ensemble.params))
    return (ensemble, step), time.perf_counter() - start


def run_width(width, cfg, key, log):
    """Everything at one width: the Bayes reference and every learner's R_n per data set."""
    problem, teacher = lens.student_problem(width, lens.TEACHERS["simple"], cfg["num_test"])
    full, test = problem.posterior, problem.test
    n = max(cfg["ns"])
    smc_cfg = {"ns": (n,), "smc_datasets": cfg["datasets"], "smc_particles": cfg["smc_particles"]}
    smc_key = jax.random.fold_in(key, 7)
    start = time.perf_counter()
    smc = lens.smc_regret(full, teacher, smc_cfg, smc_key)
    smc_seconds = time.perf_counter() - start
    datasets = smc_datasets(teacher, smc_key, cfg["datasets"], n)
    check_datasets(datasets, smc, teacher)
    at = np.asarray(cfg["ns"]) - 1
    bayes = np.stack([np.asarray(r.regret)[at] for r in smc.datasets])  # (D, len(ns))
    log(f"w{width}: Bayes E R_n {bayes.mean(0).round(2)} ({smc_seconds:.0f} s)")

    r0, se0 = lens.instantaneous_regret(lens.prior_ensemble(full, key, 400), test, teacher)
    ts = [0, *cfg["ts"]]
    # curves[name][(steps, k)] = per data set, list of (r, se) over ts
    curves = {name: {} for name in LEARNERS}
    rates = {name: {} for name in LEARNERS}
    seconds = {name: [] for name in LEARNERS}
    chains_ok = {name: max(cfg["chains"]) for name in LEARNERS}
    nuts = {"regret": [], "r_t": [], "seconds": [], "divergences": 0}
    for d, data in enumerate(datasets):
        per_t = {name: {} for name in LEARNERS}
        wall = {name: None for name in LEARNERS}
        nuts_r, nuts_se, nuts_s = [r0], [se0], 0.0
        for i, t in enumerate(cfg["ts"]):
            posterior = bo.Posterior(full.model, data.take(jnp.arange(t)))
            nuts_key = jax.random.fold_in(key, 1000 * d + 10 * i + 9)
            ensemble, s = timed(nuts_ensemble, posterior, nuts_key, cfg)
            r, se = lens.instantaneous_regret(ensemble, test, teacher)
            nuts_r.append(r)
            nuts_se.append(se)
            nuts_s += s
            nuts["divergences"] += int(np.sum(np.asarray(ensemble.stats["diverging"])))
            log(f"w{width} d{d} t={t} NUTS: {s:.1f} s, r_t {r:.4f}")
            for j, name in enumerate(LEARNERS):
                learner_key = jax.random.fold_in(key, 1000 * d + 10 * i + j)
                runs, s = train(name, posterior, learner_key, cfg)
                scored = time.perf_counter()
                wall[name] = np.add(wall[name], s) if wall[name] is not None else np.asarray(s)
                for steps, ensemble, draws in runs:
                    chains_ok[name] = min(chains_ok[name], ensemble.num_chains)
                    for k, value in score(ensemble, test, teacher, cfg["chains"], draws).items():
                        per_t[name].setdefault((steps, k), []).append(value)
                log(
                    f"w{width} d{d} t={t} {name}: train {np.sum(s):.1f} s, "
                    f"score {time.perf_counter() - scored:.1f} s"
                )
            log(f"w{width} data set {d} t={t} done")
        regret, _ = bo.lens.cumulative_regret(ts, nuts_r, nuts_se, np.asarray(cfg["ns"]))
        nuts["regret"].append(regret)
        nuts["r_t"].append(nuts_r)
        nuts["seconds"].append(nuts_s)
        for name in LEARNERS:
            seconds[name].append(wall[name])
            for config_key, values in per_t[name].items():
                if len(values) != len(cfg["ts"]):
                    continue  # a block count missing at some t (chains lost)
                rs = [r0] + [v[0] for v in values]
                ses = [se0] + [v[1] for v in values]
                regret, _ = bo.lens.cumulative_regret(ts, rs, ses, np.asarray(cfg["ns"]))
                curves[name].setdefault(config_key, []).append(regret)
                rates[name].setdefault(config_key, []).append(rs)
    return {
        "width": width,
        "num_params": full.model.num_params,
        "bayes": bayes,
        "smc_seconds": smc_seconds,
        "smc_reliable": not smc.collapsed,
        "r0": r0,
        "learners": {
            name: {ck: np.stack(v) for ck, v in curves[name].items() if len(v) == len(datasets)}
            for name in LEARNERS
        },
        "r_t": rates,
        "nuts": {**nuts, "regret": np.stack(nuts["regret"])},
        "seconds": seconds,
        "chains_ok": chains_ok,
    }


def mean_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, np.float64)
    if values.shape[0] < 2:
        return values.mean(0), np.full(values.shape[1:], np.nan)
    return values.mean(0), values.std(0, ddof=1) / math.sqrt(values.shape[0])


def ratio(learner: np.ndarray, bayes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mean(L) / mean(B) over data sets, with the delta-method stderr of the paired data sets:
    se = std(L_d - rho B_d) / sqrt(D) / mean(B)."""
    rho = learner.mean(0) / bayes.mean(0)
    d = learner.shape[0]
    if d < 2:
        return rho, np.full(rho.shape, np.nan)
    resid = learner - rho * bayes
    return rho, resid.std(0, ddof=1) / math.sqrt(d) / bayes.mean(0)


def steps_grid(name, cfg):
    return {
        "SGLD ensemble": cfg["sgld_steps"],
        "Langevin ensemble": cfg["langevin_steps"],
        "deep ensemble": cfg["deep_steps"],
    }[name]


def reference(result, which: str) -> np.ndarray:
    """(D, len(ns)) per-data-set Bayes R_n: "SMC" (realised, prequential SMC) or "NUTS" (the
    NUTS posterior ensemble, summed like the learners)."""
    return result["bayes"] if which == "SMC" else result["nuts"]["regret"]


def reached(result, name, which, index=-1):
    """The cheapest (members x steps, then fewer members) configuration with ratio <= 1.10
    against `which` at n = ns[index], else None; and the best ratio with its configuration.
    Rows: (members x steps, members, steps, ratio, stderr)."""
    rows = []
    for (steps, k), values in result["learners"][name].items():
        rho, se = ratio(values[:, index], reference(result, which)[:, index])
        rows.append((k * steps, k, steps, float(rho), float(se)))
    within = sorted(r for r in rows if r[3] <= 1.10)
    best = min(rows, key=lambda r: abs(r[3] - 1.0))
    return (within[0] if within else None), best


def cell(result, name, steps, k, index=-1) -> str:
    """ "ratio vs SMC ± se / ratio vs NUTS ± se (learner E R_n)"."""
    values = result["learners"][name].get((steps, k))
    if values is None:
        return "n/a"
    parts = []
    for which in ("SMC", "NUTS"):
        rho, se = ratio(values[:, index], reference(result, which)[:, index])
        parts.append(f"{rho:.2f} ± {se:.2f}")
    return " / ".join(parts) + f" ({values[:, index].mean():.1f})"


def members_needed(results, name, cfg) -> str:
    """Per width: the fewest members whose ratio vs NUTS is <= 1.10 at every step budget, and
    the span of the ratio over the step budgets at the most members."""
    parts = []
    for r in results:
        rho = {
            ck: float(ratio(v[:, -1], reference(r, "NUTS")[:, -1])[0])
            for ck, v in r["learners"][name].items()
        }
        grid = steps_grid(name, cfg)
        ks = [k for k in cfg["chains"] if all(rho.get((s, k), np.inf) <= 1.10 for s in grid)]
        top = [rho[(s, max(cfg["chains"]))] for s in grid if (s, max(cfg["chains"])) in rho]
        need = f"{ks[0]} member{'s' if ks and ks[0] > 1 else ''}" if ks else "not within the grid"
        parts.append(
            f"width {r['width']}: {need}; {max(cfg['chains'])} members span "
            f"{min(top):.2f}-{max(top):.2f} over the step budgets"
        )
    return "; ".join(parts)


def reading(results, cfg) -> list[str]:
    """The measured reading: each learner's ratios at the most and fewest members (longest
    budget) and at the shortest budget (most members), per width; which widths reach 10%."""
    top, low = max(cfg["chains"]), min(cfg["chains"])
    n_max = cfg["ns"][-1]
    out = [f"Reading (n = {n_max}; ratios vs SMC / vs the NUTS ensemble, ± stderr):"]
    for r in results:
        rho, se = ratio(reference(r, "NUTS")[:, -1], reference(r, "SMC")[:, -1])
        out.append(
            f"- Width {r['width']}: the NUTS posterior ensemble, measured like the learners, "
            f"has {rho:.2f} ± {se:.2f} times the SMC regret."
        )
    for name in LEARNERS:
        grid = steps_grid(name, cfg)
        parts = [
            f"width {r['width']}: {cell(r, name, grid[-1], top)} with {top} members, "
            f"{cell(r, name, grid[-1], low)} with {low}, {cell(r, name, grid[0], top)} with "
            f"{top} members and {grid[0]} steps"
            for r in results
        ]
        verdicts = []
        for which in ("SMC", "NUTS"):
            hits = [str(r["width"]) for r in results if reached(r, name, which)[0] is not None]
            verdicts.append(f"vs {which} at width(s) {', '.join(hits) if hits else 'none'}")
        out.append(
            f"- {name} ({grid[-1]} {STEP_NAMES[name]}): "
            + "; ".join(parts)
            + f". Within 10%: {'; '.join(verdicts)}."
        )
        out.append(f"  Against NUTS (paired): {members_needed(results, name, cfg)}.")
    out.append(
        "- Caveats: SMC's is the realised regret of each data set (its own y-noise, which the "
        "expected-KL sums of the learners and of NUTS do not have), through evidence "
        "estimates (a log-evidence estimate is biased low, so that regret is, if anything, "
        "too high); the learners' and NUTS's sums interpolate r_t between the grid points by "
        f"one rule; {cfg['datasets']} data sets make the stderrs rough; a ratio below 1 is "
        "possible (the Bayes mixture is optimal on average over the prior's teachers, not for "
        "one teacher)."
    )
    return out


def render(results, cfg, seconds, loads, machine) -> str:
    ns = cfg["ns"]
    n_max = ns[-1]
    lines = [
        START,
        "## Practical learners vs the Bayes mixture: regret (`benchmarks/learners.py`)",
        f"{machine}; load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the "
        "end (2 cores shared with other agents' runs: wall times are inflated, ratios of "
        f"regrets are not). Whole run {seconds / 60:.1f} min.",
        "",
        "Set-up: the lens example's simple teacher (2 -> 4 -> 1 tanh, weights of scale 0.5, "
        f"sigma = 0.3), students 2 -> width -> 1 with the fan-in Normal prior; {cfg['datasets']} "
        f"data sets of n = {n_max} points, {cfg['num_test']} held-out test inputs (the "
        "example's). **Bayes, SMC** (the reference the example uses): the realised regret "
        "R_n = log P_0(y^n) - log M(y^n) of each data set by prequential SMC "
        f"({cfg['smc_particles']} particles, 2 runs; the example's `smc_regret`). **Learners**: "
        "R_n = sum_{t<n} r_t, r_t = E_x KL(P_0(.|x) || M_L(.|x, D_t)) on the test inputs "
        "(Gauss-Hermite over y) for the learner's mixture trained on the first t points of the "
        f"same data set, measured at t = 0 (prior, 400 draws), "
        f"{', '.join(map(str, cfg['ts']))} and summed by `bo.lens.cumulative_regret` (linear "
        "to the first grid point, power law after), as the example does. **Bayes, NUTS**: the "
        f"same sum for the posterior by `bo.NUTS` (4 chains, {cfg['nuts_warmup']} warm-up, "
        f"{cfg['nuts_draws']} draws each) at each t: the Bayes mixture measured exactly like "
        "the learners, paired data set by data set. All estimate E R_n; ratio = mean learner "
        "R_n / mean Bayes R_n over the data sets, ± the paired delta-method stderr across "
        f"data sets. Members: one run of {max(cfg['chains'])} chains per (data set, t); "
        "k-member ensembles are disjoint blocks of k chains (r_t averaged over up to 4 "
        "blocks); a shorter step budget s uses the draws of the first s sampling steps "
        f"({cfg['per_chain']} draws per chain evenly over them). SGLD: the example's "
        "`sgld_ensemble` (step 5e-5 min(1, 64/width), batch 32, "
        f"{cfg['sgld_warmup']} warm-up steps, prior starts for t <= 16, MAP starts "
        f"({cfg['sgld_map_steps']} Adam steps) after). Langevin: "
        f"`bo.deep_ensemble(..., {cfg['langevin_map_steps']}, then_sample=bo.MCLMC())`, "
        f"{cfg['mclmc_tuning']} MCLMC tuning steps, then s steps. Deep: "
        "`bo.deep_ensemble` with s full-batch Adam(1e-2) steps (a run per s). Seeds fixed "
        "(`jax.random.key(0)`, folded per width, data set, t and learner).",
        "",
        f"The Bayes mixture, E R_n at n = {', '.join(map(str, ns))} (± stderr across data sets):",
        "",
        "| width | weights | SMC | NUTS ensemble | NUTS / SMC at n = "
        f"{n_max} | SMC s (all data sets) | NUTS s per data set (median) | NUTS divergences |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        smc_cells, nuts_cells = (
            ", ".join(f"{v:.2f} ± {s:.2f}" for v, s in zip(*mean_se(ref), strict=True))
            for ref in (reference(r, "SMC"), reference(r, "NUTS"))
        )
        rho, se = ratio(reference(r, "NUTS")[:, -1], reference(r, "SMC")[:, -1])
        unreliable = "" if r["smc_reliable"] else " (an SMC run collapsed)"
        lines.append(
            f"| {r['width']} | {r['num_params']} | {smc_cells}{unreliable} | {nuts_cells} | "
            f"{rho:.2f} ± {se:.2f} | {r['smc_seconds']:.0f} | "
            f"{np.median(r['nuts']['seconds']):.0f} | {r['nuts']['divergences']} |"
        )
    for name in LEARNERS:
        lines += [
            "",
            f"**{name}**: ratio E R_{n_max}(learner) / E R_{n_max}(Bayes) vs SMC / vs NUTS, ± "
            f"stderr (learner E R_{n_max} in brackets), by {STEP_NAMES[name]} (rows) and "
            "members (columns); wall time: the training of the run (all members, longest "
            "budget; for the deep ensemble the run of that budget) summed over the t grid, per "
            "data set, median over data sets (the first data set's includes compilation).",
            "",
            "| width | steps | "
            + " | ".join(f"{k} members" for k in cfg["chains"])
            + " | wall s |",
            "|---|---|" + "---|" * len(cfg["chains"]) + "---|",
        ]
        for r in results:
            wall = np.median(np.stack(r["seconds"][name]), axis=0)
            for i, steps in enumerate(steps_grid(name, cfg)):
                cells = [cell(r, name, steps, k) for k in cfg["chains"]]
                time_cell = f"{wall[i]:.0f}" if wall.size > 1 else f"{float(wall[0]):.0f} (one run)"
                lines.append(
                    f"| {r['width']} | {steps} | " + " | ".join(cells) + f" | {time_cell} |"
                )
    lines += [
        "",
        f"Within 10% of the Bayes regret (ratio <= 1.10 at n = {n_max}): the cheapest "
        "configuration (fewest members x steps) that reaches it, else the ratio nearest 1 in "
        f"the grid (marked 'not reached'); the ratio at n = {ns[0]} of that configuration "
        "beside it.",
        "",
        f"| learner | width | reference | reached? | members | steps | ratio at n = {n_max} | "
        f"ratio at n = {ns[0]} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in LEARNERS:
        for r in results:
            for which in ("SMC", "NUTS"):
                hit, best = reached(r, name, which)
                row = hit or best
                first = r["learners"][name][(row[2], row[1])][:, 0]
                rho0, se0 = ratio(first, reference(r, which)[:, 0])
                status = "yes" if hit else "not reached (nearest 1 shown)"
                lines.append(
                    f"| {name} | {r['width']} | {which} | {status} | {row[1]} | {row[2]} | "
                    f"{row[3]:.2f} ± {row[4]:.2f} | {float(rho0):.2f} ± {float(se0):.2f} |"
                )
    lines += ["", *reading(results, cfg), "", END]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes; prints only")
    parser.add_argument("--widths", type=int, nargs="+", help="override the widths")
    parser.add_argument("--datasets", type=int, help="override the number of data sets")
    parser.add_argument("--save", help="pickle the per-data-set regrets to this path")
    parser.add_argument("--render", help="re-render the section from a --save pickle")
    args = parser.parse_args(argv)
    if args.render:  # the same measurement, the tables and reading written again
        with open(args.render, "rb") as f:
            saved = pickle.load(f)
        text = render(saved["results"], saved["config"], *saved["run"])
        write_section(RESULTS, text, START, END)
        print(text)
        return
    cfg = config(args.quick)
    if args.widths:
        cfg["widths"] = tuple(args.widths)
    if args.datasets:
        cfg["datasets"] = args.datasets
    key = jax.random.key(0)
    load_start = os.getloadavg()[0]
    start = time.perf_counter()

    def log(*parts):
        print(f"[{time.perf_counter() - start:6.0f} s]", *parts, flush=True)

    results = []
    for width in cfg["widths"]:  # the section is rewritten after each width
        results.append(run_width(width, cfg, jax.random.fold_in(key, width), log))
        run = (time.perf_counter() - start, (load_start, os.getloadavg()[0]), machine_line())
        text = render(results, cfg, *run)
        if args.save:
            with open(args.save, "wb") as f:
                pickle.dump({"config": cfg, "results": results, "run": run}, f)
        if not args.quick:
            write_section(RESULTS, text, START, END)
            log(f"wrote {RESULTS} (widths {[r['width'] for r in results]})")
    print(text)


if __name__ == "__main__":
    main()
