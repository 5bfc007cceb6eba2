"""Lens estimators: error against wall time, and the cost of a W(eps) curve.

    .venv/bin/python benchmarks/lens.py           # updates its section of RESULTS.md
    .venv/bin/python benchmarks/lens.py --quick   # tiny sizes, prints only

1. SMC log evidence (`bo.lens.log_evidence(..., "smc")`, BlackJAX adaptive tempering with HMC
   moves) on the conjugate linear-Gaussian regression with d = 2000 weights and n = 100 points,
   whose exact log evidence is known: |error| and its standard error against wall time for
   several particle counts. Plain prior Monte Carlo with 10^4 draws is the peer. A run costs
   minutes on 2 cores, so each count is timed once, compile included; the compile time is
   measured once, at the smallest count, as first call minus second call.
2. A W(eps) curve by multilevel splitting (`bo.lens.weight_curve`) for a 2 -> 250 -> 1
   student (1,001 weights) of a teacher network, with the settings of the lens example
   (`examples/universality_lens.py`): wall time, compile included.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _sections import machine_line, write_section

import bayesover as bo
from bayesover.lens import closed_form

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- lens:start -->", "<!-- lens:end -->"


def log(*args):
    print(*args, flush=True)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def timed_twice(fn):
    """(result, first call's seconds, second call's seconds): the difference is the compile."""
    _, first = timed(fn)
    result, second = timed(fn)
    return result, first, second


def prior_mc(problem, key, num_draws):
    """log mean_j p(y | w_j), w_j ~ prior: the naive estimator."""
    X, y = jnp.asarray(problem.X, jnp.float32), jnp.asarray(problem.y, jnp.float32)
    w = problem.s * jax.random.normal(key, (num_draws, X.shape[1]))
    loglik = jax.scipy.stats.norm.logpdf(y, w @ X.T, problem.sigma).sum(-1)
    return float(jax.scipy.special.logsumexp(loglik) - math.log(num_draws))


def bench_smc(quick, counts):
    d, n = (200, 20) if quick else (2000, 100)
    problem = closed_form.linear_gaussian_problem(jax.random.key(0), n, d, s=1.0, sigma=0.5)
    exact = problem.log_evidence
    posterior = problem.posterior
    rows, compile_seconds = [], None
    for particles in counts:

        def run(particles=particles):
            return bo.lens.log_evidence(
                posterior, "smc", key=jax.random.key(1), num_runs=4, num_particles=particles
            )

        if compile_seconds is None:
            result, first, seconds = timed_twice(run)
            compile_seconds = first - seconds
        else:
            result, seconds = timed(run)
        rows.append((particles, result, seconds))
        log(f"SMC {particles} particles: {result} exact {exact:.2f}; {seconds:.1f} s")
    mc, _, mc_seconds = timed_twice(lambda: prior_mc(problem, jax.random.key(2), 10_000))
    log(f"prior MC 10^4: {mc:.2f} vs exact {exact:.2f}; {mc_seconds:.2f} s")
    return d, n, exact, rows, compile_seconds, (mc, mc_seconds)


def bench_weight(quick):
    module = bo.builders.load_module(bo.builders.resolve_model_path("teacher_student"))
    width = 10 if quick else 250
    problem = module.build(0, width=width, num_points=64, noise_scale=0.3, teacher_scale=0.5)
    teacher = module.teacher(0, teacher_scale=0.5)
    num_inputs = 64 if quick else 512
    probe = jax.random.normal(jax.random.key(7), (num_inputs, 2))
    on_probe = bo.Posterior(problem.posterior.model, bo.Data(probe, jnp.zeros((num_inputs,))))
    kl = bo.lens.kl_gaussian_outputs(on_probe, jax.vmap(teacher)(probe), 0.3)
    settings = dict(
        eps=np.geomspace(0.003, 5.0, 14),
        num_particles=64,
        num_runs=2,
        max_mcmc_steps=200 if quick else 1000,
    )

    def run():
        return bo.lens.weight_curve(problem.posterior, kl, key=jax.random.key(3), **settings)

    curve, seconds = timed(run)
    log(f"W curve, {problem.posterior.model.num_params} weights: {seconds:.1f} s; {curve}")
    return problem.posterior.model.num_params, num_inputs, settings, curve, seconds


def _flag(curve) -> str:
    """What the curve's own diagnostics say, for the sentence after its numbers."""
    if curve.collapsed:
        return f" (flagged UNRELIABLE: {curve.diagnostics.get('reason', 'collapsed')})"
    if curve.diagnostics.get("poorly_mixed", False):
        return " (flagged: the Metropolis moves mixed poorly at some levels)"
    return ""


def section(smc, weight):
    d, n, exact, rows, compile_seconds, (mc, mc_seconds) = smc
    num_params, num_inputs, settings, curve, w_seconds = weight
    lines = [
        START,
        "## The lens estimators (`benchmarks/lens.py`)",
        "",
        f"{machine_line()}; jax {jax.__version__}.",
        "",
        f"### SMC log evidence, linear-Gaussian regression, d = {d}, n = {n}",
        "",
        f"Exact log M = {exact:.3f} nats. Four independent runs per estimate plus the pilot "
        "run (value = the runs' mean, stderr = their spread / 2), default settings (10 HMC "
        "steps per stage). Compile time, measured at the smallest count as first call minus "
        f"second call, is {compile_seconds:.1f} s: the first row is that second call, the "
        "larger counts were called once and include about that much compile.",
        "",
        "| estimator | value | error | stderr | wall time | time / prior MC's |",
        "|---|---|---|---|---|---|",
    ]
    for particles, result, seconds in rows:
        lines.append(
            f"| SMC, {particles} particles x 4 runs | {result.value:.3f} | "
            f"{result.value - exact:+.3f} | {result.stderr:.3f} | {seconds:.1f} s | "
            f"{seconds / mc_seconds:,.0f}x |"
        )
    lines += [
        f"| prior Monte Carlo, 10^4 draws | {mc:.3f} | {mc - exact:+.3f} | - | "
        f"{mc_seconds:.2f} s | 1x |",
        "",
        f"### W(eps) by multilevel splitting, a {num_params:,}-weight student",
        "",
        f"{settings['num_particles']} particles x {settings['num_runs']} runs, "
        f"{len(settings['eps'])} values of eps from {settings['eps'][0]:.3g} to "
        f"{settings['eps'][-1]:.3g} nats, K on {num_inputs} inputs, at most "
        f"{settings['max_mcmc_steps']} Metropolis steps per level (the lens example's "
        f"settings): {w_seconds:.1f} s, compile included. -log W at the smallest eps: "
        f"{-float(curve.log_weight[0]):.2f} ± {float(curve.log_weight_stderr[0]):.2f} nats"
        f"{_flag(curve)}.",
        "",
        END,
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--particles", type=int, nargs="+", help="SMC particle counts (default 128 512 2048)"
    )
    args = parser.parse_args(argv)
    counts = args.particles or ((64, 256) if args.quick else (128, 512, 2048))
    smc = bench_smc(args.quick, counts)
    weight = bench_weight(args.quick)
    text = section(smc, weight)
    if args.quick:
        log(text)
        return
    write_section(RESULTS, text, START, END)
    log(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
