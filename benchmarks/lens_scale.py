"""W(eps) at scale: tempering against splitting on closed forms, and W curves of wide students.

    .venv/bin/python benchmarks/lens_scale.py           # updates its section of RESULTS.md
    .venv/bin/python benchmarks/lens_scale.py --quick   # tiny sizes, prints only

1. Closed forms: the linear-Gaussian K(w) = c ||w - w0||^2 / (2 sigma^2) under w ~ N(0, I_d),
   whose W(eps) is a noncentral chi^2 CDF (`closed_form.linear_gaussian_log_weight`), at
   d = 2,000 and d = 20,000, eps from 1e-3 to 3: `weight_curve(..., method="tempering")`
   beside today's `method="splitting"` in the same run, error in nats at every eps, wall time
   (compile included: one call each). Splitting needs one level per 0.69 nats and, with
   random-walk moves, about 3 d Metropolis steps per level, so it is run under a level cap and
   its reach is reported (the points below it are flagged, not reliable).
2. W curves of 2 -> width -> 1 students of the lens example's simple teacher (K on 512 fixed
   inputs, `kl_gaussian_outputs`), by tempering, at about 1k weights: wall time, compile
   included, stages, reliable points; beside it the times of the lens example's
   `--weight-only` run (16 to 4,096 wide: 65 to 16,385 weights), read from its saved json.
"""

from __future__ import annotations

import argparse
import json
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
START, END = "<!-- lens_scale:start -->", "<!-- lens_scale:end -->"
EXAMPLE_START, EXAMPLE_END = "<!-- lens_scale_example:start -->", "<!-- lens_scale_example:end -->"
SIGMA = 0.3


def log(*args):
    print(*args, flush=True)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def linear_gaussian(d):
    problem = closed_form.linear_gaussian_problem(jax.random.key(1), 10, d)
    w0 = jnp.asarray(problem.w0, jnp.float32)
    scale = problem.input_cov_scale / (2 * problem.sigma**2)

    def kl(position):
        return scale * jnp.sum((position["w"] - w0) ** 2)

    args = (problem.w0, problem.s, problem.sigma, problem.input_cov_scale)
    return problem.posterior, kl, args


def bench_closed_form(d, eps, tempering, splitting):
    posterior, kl, args = linear_gaussian(d)
    exact = np.array([closed_form.linear_gaussian_log_weight(e, *args) for e in eps])
    rows = []
    for method, settings in (("tempering", tempering), ("splitting", splitting)):
        curve, seconds = timed(
            lambda method=method, settings=settings: bo.lens.weight_curve(
                posterior, kl, eps, key=jax.random.key(5), method=method, **settings
            )
        )
        log(f"d = {d}, {method}: {seconds:.0f} s; {curve}")
        rows.append((method, settings, curve, seconds))
    return d, exact, rows


def bench_student(width, eps, settings):
    module = bo.builders.load_module(bo.builders.resolve_model_path("teacher_student"))
    problem = module.build(0, width=width, num_points=64, noise_scale=SIGMA, teacher_scale=0.5)
    teacher = module.teacher(0, teacher_scale=0.5)
    probe = jax.random.normal(jax.random.key(7), (512, 2))
    on_probe = bo.Posterior(problem.posterior.model, bo.Data(probe, jnp.zeros((512,))))
    kl = bo.lens.kl_gaussian_outputs(on_probe, jax.vmap(teacher)(probe), SIGMA)
    curve, seconds = timed(
        lambda: bo.lens.weight_curve(
            problem.posterior, kl, eps, key=jax.random.key(3), method="tempering", **settings
        )
    )
    num_params = problem.posterior.model.num_params
    log(f"student width {width} ({num_params} weights): {seconds:.0f} s; {curve}")
    return width, num_params, curve, seconds


def _settings(settings) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in settings.items())


def _reach(curve) -> str:
    good = curve.eps[curve.reliable]
    if not good.size:
        return "none"
    return f"{good.min():.3g} (of {int(curve.reliable.sum())}/{curve.eps.size} points)"


def closed_section(d, exact, rows, seconds):
    """One closed-form block, between its own markers (each d can be rerun alone)."""
    start, end = _markers(d)
    lines = [
        start,
        f"### Linear-Gaussian closed form, d = {d:,}",
        "",
        f"{machine_line()}; jax {jax.__version__}; {seconds / 60:.1f} min for this block. "
        "Wall times include compilation (one call each). Error = estimate - exact log W, in "
        "nats; stderr over the runs (nan: one run); a point marked * is not `reliable`.",
        "",
        "| eps | exact log W | " + " | ".join(f"{m} error ± stderr" for m, *_ in rows) + " |",
        "|---:|---:|" + "---:|" * len(rows),
    ]
    tempering = next(curve for m, _, curve, _ in rows if m == "tempering")
    refined = tempering.diagnostics["refined"]
    lines[-2] += " read-out alone (ESS) |"
    lines[-1] += "---:|"
    for g, e in enumerate(rows[0][2].eps):
        cells = []
        for _, _, curve, _ in rows:
            value = curve.log_weight[g]
            if not np.isfinite(value):
                cells.append("not reached")
                continue
            mark = "" if curve.reliable[g] else " *"
            cells.append(f"{value - exact[g]:+.2f} ± {curve.log_weight_stderr[g]:.2f}{mark}")
        read_out = tempering.diagnostics["read_out"][:, g]
        ess = tempering.diagnostics["read_out_ess"][:, g]
        cells.append(
            f"{np.mean(read_out) - exact[g]:+.2f} ({', '.join(f'{v:.1f}' for v in ess)})"
            if refined[g]
            else "same"
        )
        lines.append(f"| {e:.3g} | {exact[g]:,.1f} | " + " | ".join(cells) + " |")
    stages = tempering.diagnostics["shell_stages"][:, refined]
    lines += [
        "",
        f"Tempering annealed {int(refined.sum())} of {refined.size} points into their level "
        "sets (`refine`: their read-out ESS was below 2 `min_ess`)"
        + (f", {stages.min()}-{stages.max()} stages each" if stages.size else "")
        + "; the last column is the plain importance read-out of the same runs at those points "
        "(error of the mean over runs; ESS per run), what `refine=False` returns.",
        "",
    ]
    for method, settings, curve, wall in rows:
        lines.append(
            f"- {method}: {wall:.0f} s, {curve.num_levels} "
            f"{'stages' if method == 'tempering' else 'levels'} (longest run), reliable down "
            f"to eps = {_reach(curve)}; settings {_settings(settings)}."
        )
    lines += ["", end]
    return "\n".join(lines)


def _markers(d):
    return f"<!-- lens_scale_d{d}:start -->", f"<!-- lens_scale_d{d}:end -->"


def section(students, eps_student, student_settings):
    lines = [
        START,
        "## W(eps) at scale: tempering vs splitting (`benchmarks/lens_scale.py`)",
        "",
        f"{machine_line()}; jax {jax.__version__}. The closed-form blocks below (one per d) "
        "and this table come from separate calls of the script (`--dims`, `--widths`).",
        "",
        "### W curves of wide students (tempering)",
        "",
        f"The lens example's simple teacher, K on 512 inputs, {eps_student.size} values of eps "
        f"from {eps_student[0]:.3g} to {eps_student[-1]:.3g}; settings "
        f"{_settings(student_settings)}; wall time includes compilation.",
        "",
        "| width | weights | wall time (s) | stages | reliable points | -log W at the smallest"
        " eps | -log W at eps = 0.1 |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for width, num_params, curve, seconds in students:
        at = int(np.argmin(np.abs(np.log(curve.eps / 0.1))))
        lines.append(
            f"| {width} | {num_params:,} | {seconds:.0f} | {curve.num_levels} | "
            f"{int(curve.reliable.sum())}/{curve.eps.size} | "
            f"{-curve.log_weight[0]:.1f} ± {curve.log_weight_stderr[0]:.1f} | "
            f"{-curve.log_weight[at]:.1f} ± {curve.log_weight_stderr[at]:.1f} |"
        )
    lines += ["", END]
    return "\n".join(lines)


def example_section() -> str:
    """The lens example's W curves (wall time vs weights) and its SMC regrets, from its json."""
    example = HERE.parent / "examples" / "output" / "universality_lens.json"
    lines = [
        EXAMPLE_START,
        "### The lens example's students: W curves (tempering) and Bayes regrets (SMC)",
        "",
        "Read from `examples/output/universality_lens.json` (`python benchmarks/lens_scale.py "
        "--example-table` rewrites this table). W (`--weight-only`): 128 particles x 2 runs, 5 "
        "HMC steps of 5 leapfrog steps per stage, K on 512 inputs, 14 values of eps from 0.003 "
        "to 5. Bayes regret E R_256 (`--regret-only`): prequential SMC, 256 particles, on the "
        "data sets x runs shown, stderr across data sets. Run beside other work on the 2 cores, "
        "so the times are upper bounds.",
        "",
        "| teacher | width | weights | W wall time (s) | stages | reliable points | E R_256 (SMC) "
        "| data sets x runs | SMC wall time (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in json.loads(example.read_text())["results"]:
        if "weight_stages" in r:
            smc = ["not measured"] * 3
            if "regret" in r:
                flag = "" if r.get("smc_reliable", True) else " (flagged: ESS collapsed)"
                smc = [
                    f"{r['regret'][-1]:.1f} ± {r['regret_se'][-1]:.1f}{flag}",
                    f"{r.get('smc_datasets', len(r['smc_realised']))} x {r.get('smc_runs', 2)}",
                    f"{r['smc_seconds']:.0f}",
                ]
            lines.append(
                f"| {r['teacher']} | {r['width']} | {r['num_params']:,} | "
                f"{r['weight_seconds']:.0f} | {r['weight_stages']} | "
                f"{sum(r['weight_reliable'])}/{len(r['weight_reliable'])} | "
                + " | ".join(smc)
                + " |"
            )
    lines += ["", EXAMPLE_END]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dims", type=int, nargs="*", help="closed-form d (default 2000 20000)")
    parser.add_argument("--widths", type=int, nargs="*", help="students (default 256)")
    parser.add_argument(
        "--example-table", action="store_true", help="only rewrite the lens example's table"
    )
    args = parser.parse_args(argv)
    if args.example_table:
        write_section(RESULTS, example_section(), EXAMPLE_START, EXAMPLE_END)
        return
    eps = np.logspace(-3, 0.5, 8)
    dims = (200,) if args.quick else (args.dims if args.dims is not None else (2000, 20000))
    for d in dims:
        # d = 20,000 costs ~ 30x d = 2,000 per run on 2 CPU cores: fewer particles, one run
        small = d <= 2000
        tempering = dict(
            num_particles=500 if small else 100, num_runs=2 if small else 1, num_mcmc_steps=5
        )
        splitting = dict(
            num_particles=500 if small else 100,
            num_runs=2 if small else 1,
            max_levels=10 if small else 3,
            max_mcmc_steps=500 if small else 50,
        )
        start = time.perf_counter()
        _, exact, rows = bench_closed_form(d, eps, tempering, splitting)
        text = closed_section(d, exact, rows, time.perf_counter() - start)
        log(text)
        if not args.quick:
            write_section(RESULTS, text, *_markers(d))
    eps_student = np.geomspace(0.003, 5.0, 14)
    student_settings = dict(num_particles=128, num_runs=2, num_mcmc_steps=5)
    widths = (16,) if args.quick else (args.widths if args.widths is not None else (256,))
    if widths:
        students = [bench_student(w, eps_student, student_settings) for w in widths]
        text = section(students, eps_student, student_settings)
        log(text)
        if not args.quick:
            write_section(RESULTS, text, START, END)
    if not args.quick:
        write_section(RESULTS, example_section(), EXAMPLE_START, EXAMPLE_END)
        log(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
