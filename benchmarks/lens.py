"""Lens estimators: error against wall time, and the cost of a W(eps) curve.

    .venv/bin/python benchmarks/lens.py           # updates its section of RESULTS.md
    .venv/bin/python benchmarks/lens.py --quick   # tiny sizes, prints only

1. SMC log evidence (`bo.lens.log_evidence(..., "smc")`, BlackJAX adaptive tempering with HMC
   moves) on the conjugate linear-Gaussian regression with d = 2000 weights and n = 100 points,
   whose exact log evidence is known: |error| and its standard error against wall time for
   several particle counts (one warm run compiles; the timed run is the next one). Plain prior
   Monte Carlo with 10^4 draws is the peer, timed the same way.
2. A W(eps) curve by multilevel splitting (`bo.lens.weight_curve`) for a 2 -> 250 -> 1
   student (1,001 weights) of a teacher network: wall time.
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
ROOT = HERE.parent


def log(*args):
    print(*args, flush=True)


def timed_twice(fn):
    fn()  # compiles
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def prior_mc(problem, key, num_draws):
    """log mean_j p(y | w_j), w_j ~ prior: the naive estimator."""
    X, y = jnp.asarray(problem.X, jnp.float32), jnp.asarray(problem.y, jnp.float32)
    w = problem.s * jax.random.normal(key, (num_draws, X.shape[1]))
    loglik = jax.scipy.stats.norm.logpdf(y, w @ X.T, problem.sigma).sum(-1)
    return float(jax.scipy.special.logsumexp(loglik) - math.log(num_draws))


def bench_smc(quick):
    d, n = (200, 20) if quick else (2000, 100)
    problem = closed_form.linear_gaussian_problem(jax.random.key(0), n, d, s=1.0, sigma=0.5)
    exact = problem.log_evidence
    posterior = problem.posterior
    rows = []
    for particles in (64, 256) if quick else (128, 512, 2048):

        def run(particles=particles):
            return bo.lens.log_evidence(
                posterior, "smc", key=jax.random.key(1), num_runs=4, num_particles=particles
            )

        result, seconds = timed_twice(run)
        rows.append((particles, result, seconds))
        log(f"SMC {particles} particles: {result} exact {exact:.2f}; {seconds:.1f} s")
    mc, mc_seconds = timed_twice(lambda: prior_mc(problem, jax.random.key(2), 10_000))
    log(f"prior MC 10^4: {mc:.2f} vs exact {exact:.2f}; {mc_seconds:.2f} s")
    return d, n, exact, rows, (mc, mc_seconds)


def bench_weight(quick):
    module = bo.builders.load_module(ROOT / "models" / "teacher_student.py")
    width = 10 if quick else 250
    problem = module.build(0, width=width, num_points=64, noise_scale=0.3, teacher_scale=0.5)
    teacher = module.teacher(0, teacher_scale=0.5)
    probe = jax.random.normal(jax.random.key(7), (64, 2))
    on_probe = bo.Posterior(problem.posterior.model, bo.Data(probe, jnp.zeros((64,))))
    kl = bo.lens.kl_gaussian_outputs(on_probe, jax.vmap(teacher)(probe), 0.3)
    eps = np.geomspace(0.03, 5.0, 10)
    particles = 32 if quick else 128

    def run():
        return bo.lens.weight_curve(
            problem.posterior, kl, eps, key=jax.random.key(3), num_particles=particles, num_runs=2
        )

    curve, seconds = timed_twice(run)
    log(f"W curve, {problem.posterior.model.num_params} weights: {seconds:.1f} s; {curve}")
    return problem.posterior.model.num_params, particles, curve, seconds


def section(smc, weight):
    d, n, exact, rows, (mc, mc_seconds) = smc
    num_params, particles, curve, w_seconds = weight
    lines = [
        START,
        "## The lens estimators (`benchmarks/lens.py`)",
        "",
        f"{machine_line()}; jax {jax.__version__}.",
        "",
        f"### SMC log evidence, linear-Gaussian regression, d = {d}, n = {n}",
        "",
        f"Exact log M = {exact:.3f} nats. Four independent runs per estimate (value = their "
        "mean, stderr = their spread / 2); the timed call is the second (the first compiles).",
        "",
        "| estimator | value | error | stderr | wall time |",
        "|---|---|---|---|---|",
    ]
    for particles, result, seconds in rows:
        lines.append(
            f"| SMC, {particles} particles x 4 runs | {result.value:.3f} | "
            f"{result.value - exact:+.3f} | {result.stderr:.3f} | {seconds:.1f} s |"
        )
    lines += [
        f"| prior Monte Carlo, 10^4 draws | {mc:.3f} | {mc - exact:+.3f} | - | "
        f"{mc_seconds:.2f} s |",
        "",
        f"### W(eps) by multilevel splitting, a {num_params:,}-weight student",
        "",
        f"{particles} particles x 2 runs, 10 values of eps from 0.03 to 5 nats: "
        f"{w_seconds:.1f} s (second call). -log W at the smallest eps: "
        f"{-float(curve.log_weight[0]):.2f} ± {float(curve.log_weight_stderr[0]):.2f} nats.",
        "",
        END,
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    smc = bench_smc(args.quick)
    weight = bench_weight(args.quick)
    text = section(smc, weight)
    if args.quick:
        log(text)
        return
    write_section(RESULTS, text, START, END)
    log(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
