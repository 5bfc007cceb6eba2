"""The universality lens on teacher-student regression: does a wider student pay for its width?

    .venv/bin/python examples/universality_lens.py           # the full grid (hours on 2 cores)
    .venv/bin/python examples/universality_lens.py --resume  # go on from the saved students
    .venv/bin/python examples/universality_lens.py --quick   # a smoke run (~7 min)
    .venv/bin/python examples/universality_lens.py --weight-only  # W curves + bounds, widths
                                                    # 16-4,096, on the saved regrets
    .venv/bin/python examples/universality_lens.py --regret-only  # the Bayes regret (SMC on 8
                                                    # data sets) + bounds, on the saved W curves
    .venv/bin/python examples/universality_lens.py --deff-only --widths 4096  # d_eff at the MAP
    .venv/bin/python examples/universality_lens.py --weight-only --teachers complex --widths 256
                                                    # one student's W curve (and a new one)

A fixed teacher (a 2 -> 4 -> 1 tanh MLP, `bayesover/models/teacher_student.py`) labels inputs
x ~ N(0, I_2) with Gaussian noise sigma = 0.3. Students 2 -> width -> 1 (width 16 ... 1024, so
65 ... 4,097 parameters, 63x) with the fan-in Normal prior learn it. Two teachers: a simple one
(weights of scale 0.5: nearly linear) and a complex one (scale 2: saturated, wiggly).

For each teacher and width:

1. Regret vs n, two ways.
   - The Bayes mixture's: the expected regret E R_n = D(P_0^n || M) by data-annealed SMC
     (`bo.lens.expected_regret`, prequential): the realised regret curve R_t, t = 1..n, of
     each of a few data sets drawn from the teacher, averaged.
   - A practical SGLD ensemble's: E R_n = sum_{t<n} E r_t with r_t = E_x KL(P_0(.|x) ||
     M_SGLD(.|x, x^t)), the excess test log-loss of a 4-chain SGLD ensemble trained on the
     first t points (t = 0 is the prior predictive; `bo.lens.ensemble_regret` against the
     teacher's law, the expectation over y by Gauss-Hermite quadrature), summed over t with r
     interpolated between the grid points (`bo.lens.cumulative_regret`).
2. The weight of the hypothesis -log W(eps), K(theta) = E_x (f_theta(x) - f0(x))^2 / (2 sigma^2)
   on 512 fixed inputs x ~ N(0, I_2) (`bo.lens.kl_gaussian_outputs`; a large sample, since on a
   few inputs a wide student could match the teacher there alone and W would come out too
   large), by tempering (`bo.lens.weight_curve(..., method="tempering")`), and the bound
   chain (`bo.lens.bounds`, on the curve's reliable points) against the SMC regret. The W
   curves go up to width 4,096 (16,385 weights: about an hour on 2 CPU cores); so does the
   SMC regret (`--regret-only --widths 4096 --smc-runs 1`: about an hour), not the SGLD one.
3. The effective dimension at the MAP on all the points (`bo.lens.effective_dimension`).

Writes `docs/img/lens_*.png`, `examples/output/universality_lens.json` and
`runs/lens/report.html` (the HTML report of the width-256 student with the lens plots).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import numpyro.distributions as dist
import optax

import bayesover as bo

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIGMA = 0.3
TEACHERS = {"simple": 0.5, "complex": 2.0}


def log(*args):
    print(*args, flush=True)


def student_problem(width: int, teacher_scale: float, num_points: int):
    from bayesover.models import teacher_student as module

    problem = module.build(
        0,
        width=width,
        num_points=num_points,
        noise_scale=SIGMA,
        teacher_scale=teacher_scale,
    )
    return problem, module.teacher(0, teacher_scale=teacher_scale)


def prior_ensemble(posterior, key, num_members: int) -> bo.Ensemble:
    """Draws from the prior as an ensemble: the predictive before any data (t = 0)."""
    keys = jax.random.split(key, num_members)
    positions = jax.vmap(posterior.model.sample_prior)(keys)
    params = jax.vmap(posterior.model.constrain)(positions)
    params = jax.tree.map(lambda v: v[None], params)
    config = {"sampler_name": "prior"}
    return bo.Ensemble(params, {}, config, posterior.model, posterior.data.target_shape)


def sgld_ensemble(posterior, key, cfg, num_chains: int = 4) -> tuple[bo.Ensemble, float]:
    """`num_chains` SGLD chains (4 in this experiment) at the configured step size; if every
    chain turns non-finite (the step is too large for this width and n) the step is quartered,
    up to three times. The chains start from prior draws while the data are few (t <= 16: the
    posterior is still broad, and chains started at MAPs barely leave them) and from jittered
    MAPs after (the posterior is concentrated and prior starts are far from it). Returns the
    healthy chains and the step."""
    batch = min(32, posterior.num_data)
    width = posterior.model.params.layers[0].weight.shape[0]
    step_size = cfg["step_size"] * min(1.0, 64 / width)  # the prior's curvature grows as width
    for _ in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ensemble = bo.sample(
                posterior,
                bo.SGLD(step_size=step_size, batch_size=batch),
                key=key,
                num_chains=num_chains,
                num_warmup=cfg["warmup"],
                num_draws=cfg["draws"],
                thinning=cfg["thinning"],
                init="prior" if posterior.num_data <= 16 else "map",
                map_steps=cfg["map_steps"] // 2,
                progress=False,
            )
        if bool(np.asarray(ensemble.chain_ok()).any()):
            return ensemble.healthy(), step_size
        step_size /= 4
    raise RuntimeError(f"SGLD diverged on every chain down to step size {step_size * 4:.2g}")


def instantaneous_regret(ensemble, test, teacher) -> tuple[float, float]:
    """r = mean_x KL(P_0(.|x) || M(.|x)) at the test inputs, with its stderr over the inputs:
    `bo.lens.ensemble_regret` against the teacher's law N(f0(x), sigma^2) (the expectation
    over y by Gauss-Hermite quadrature, so only the inputs are sampled)."""
    f0 = jax.vmap(teacher)(test.inputs).reshape(test.targets.shape)
    result = bo.lens.ensemble_regret(ensemble, test, truth=dist.Normal(f0, SIGMA))
    return result.mean, result.stderr


def smc_regret(full, teacher, cfg, key) -> bo.lens.RegretResult:
    """E R_t, t = 1..n, of the Bayes mixture: prequential SMC on `smc_datasets` data sets."""
    n = max(cfg["ns"])

    def make_data(k):
        data = bo.data.teacher_student(k, teacher, n, input_shape=(2,), noise_scale=SIGMA)
        f0 = jax.vmap(teacher)(data.inputs).reshape(data.targets.shape)
        truth = jax.scipy.stats.norm.logpdf(data.targets, f0, SIGMA)
        return bo.Posterior(full.model, data), truth

    return bo.lens.expected_regret(
        make_data,
        key=key,
        num_datasets=cfg["smc_datasets"],
        num_particles=cfg["smc_particles"],
        num_runs=cfg["smc_runs"],
    )


def smc_into(result, full, teacher, cfg, key) -> None:
    """The Bayes mixture's expected regret curve (`smc_regret`) and its values at the `ns`,
    written into `result`."""
    start = time.perf_counter()
    smc = smc_regret(full, teacher, cfg, key)
    result["smc_seconds"] = time.perf_counter() - start
    result["smc_datasets"] = len(smc.datasets)
    result["smc_runs"] = cfg["smc_runs"]
    result["smc_t"] = np.asarray(smc.n).tolist()
    result["smc_regret_t"] = np.asarray(smc.regret).tolist()
    result["smc_regret_t_se"] = np.asarray(smc.regret_stderr).tolist()
    result["smc_reliable"] = not smc.collapsed
    result["smc_realised"] = [float(r.regret[-1]) for r in smc.datasets]
    at = np.asarray(cfg["ns"]) - 1
    result["regret"] = np.asarray(smc.regret)[at].tolist()
    result["regret_se"] = np.asarray(smc.regret_stderr)[at].tolist()
    log(
        f"  {result['teacher']} w{result['width']}: SMC E R_n {np.round(result['regret'], 2)} "
        f"± {np.round(result['regret_se'], 2)} over {len(smc.datasets)} data sets "
        f"({result['smc_seconds']:.0f} s, {'reliable' if result['smc_reliable'] else 'UNRELIABLE'})"
    )


def run_one(teacher_name, width, cfg, key):
    scale = TEACHERS[teacher_name]
    problem, teacher = student_problem(width, scale, max(cfg["ns"]))
    full = problem.posterior
    test = problem.test
    result = {"teacher": teacher_name, "width": width, "num_params": full.model.num_params}
    k_prior, k_sgld, k_weight, k_map, k_ed = jax.random.split(key, 5)

    # 1a. the Bayes mixture's expected regret, by prequential SMC
    smc_into(result, full, teacher, cfg, jax.random.fold_in(key, 7))

    # 1b. a 4-chain SGLD ensemble's regret, from its instantaneous regrets
    ts, rs, ses = [], [], []
    ensembles = {}
    for i, t in enumerate([0, *cfg["ts"]]):
        start = time.perf_counter()
        if t == 0:
            ensemble = prior_ensemble(full, k_prior, 400)
        else:
            posterior = bo.Posterior(full.model, full.data.take(jnp.arange(t)))
            ensemble, step = sgld_ensemble(posterior, jax.random.fold_in(k_sgld, i), cfg)
            result.setdefault("step_sizes", []).append(step)
        r, se = instantaneous_regret(ensemble, test, teacher)
        ensembles[t] = ensemble
        ts.append(t)
        rs.append(r)
        ses.append(se)
        seconds = time.perf_counter() - start
        log(f"  {teacher_name} w{width} t={t}: r_t {r:.4f} ± {se:.4f} ({seconds:.1f} s)")
    result["t"], result["r_t"], result["r_t_se"] = ts, rs, ses
    result["n"] = list(cfg["ns"])
    regret, regret_se = bo.lens.cumulative_regret(ts, rs, ses, cfg["ns"])
    result["sgld_regret"], result["sgld_regret_se"] = regret.tolist(), regret_se.tolist()

    # 2. the weight of the hypothesis and the bound chain
    curve = chain = None
    if width <= cfg["weight_max_width"]:
        curve, chain = weight_and_bounds(full, teacher, result, cfg, k_weight)
        log(f"  {teacher_name} w{width}: W curve {result['weight_seconds']:.1f} s; {chain}")
    else:
        log(f"  {teacher_name} w{width}: W curve not measured (width > weight_max_width)")

    # 3. effective dimension at the MAP on all the points
    deff_into(result, full, cfg, k_map, k_ed)
    return result, ensembles, curve, chain, problem


def deff_into(result, full, cfg, k_map, k_ed) -> None:
    """MacKay's effective dimension at the MAP of all the points, written into `result`."""
    start = time.perf_counter()
    fit = bo.map_estimate(full, key=k_map, optimizer=optax.adam(1e-2), num_steps=cfg["map_steps"])
    ed = bo.lens.effective_dimension(full, fit.position, key=k_ed)
    result["effective_dimension"] = float(ed.value)
    result["effective_dimension_se"] = float(ed.stderr)
    result["effective_dimension_seconds"] = time.perf_counter() - start
    log(
        f"  {result['teacher']} w{result['width']}: d_eff {ed.value:.1f} ± {ed.stderr:.1f} "
        f"({result['effective_dimension_seconds']:.0f} s)"
    )


def weight_and_bounds(full, teacher, result, cfg, key):
    """-log W(eps) by tempering, K on `kl_points` fixed inputs, and the bound chain against
    the SMC regret (the bounds alone where no regret was measured); the numbers go into
    `result`."""
    start = time.perf_counter()
    probe = jax.random.normal(jax.random.key(7), (cfg["kl_points"], 2))
    probe_data = bo.Data(probe, jnp.zeros((cfg["kl_points"],)))
    on_probe = bo.Posterior(full.model, probe_data)
    kl = bo.lens.kl_gaussian_outputs(on_probe, jax.vmap(teacher)(probe), SIGMA)
    curve = bo.lens.weight_curve(
        full,
        kl,
        cfg["eps"],
        key=key,
        method="tempering",
        num_particles=cfg["particles"],
        num_runs=cfg["weight_runs"],
        num_mcmc_steps=cfg["weight_mcmc_steps"],
    )
    result["eps"] = np.asarray(curve.eps).tolist()
    result["neg_log_weight"] = (-np.asarray(curve.log_weight)).tolist()
    result["neg_log_weight_se"] = np.asarray(curve.log_weight_stderr).tolist()
    result["weight_seconds"] = time.perf_counter() - start
    result["weight_collapsed"] = bool(curve.collapsed)
    result["weight_reliable"] = np.asarray(curve.reliable).tolist()
    result["weight_reasons"] = list(curve.reasons)
    result["weight_stages"] = int(curve.num_levels)
    result.pop("weight_poorly_mixed", None)  # a splitting diagnostic, from older runs
    return curve, bounds_into(result, curve, cfg)


def bounds_into(result, curve, cfg):
    """The bound chain of `curve` against the student's SMC regret (the bounds alone where
    none was measured), written into `result`."""
    has_regret = "regret" in result
    chain = bo.lens.bounds(
        n=np.asarray(cfg["ns"]),
        regret=np.asarray(result["regret"]) if has_regret else None,
        regret_stderr=np.asarray(result["regret_se"]) if has_regret else None,
        weight_curve=curve,
    )
    bounds_ds = chain.to_dataset()
    result["exp_integral_bound"] = bounds_ds["exp_integral_bound"].values.tolist()
    result["resolvability_bound"] = bounds_ds["resolvability_bound"].values.tolist()
    result["eps_star"] = bounds_ds["eps_star"].values.tolist()
    result["chain_holds"] = np.asarray(chain.holds).tolist()
    result["bounds_eps_used"] = np.asarray(chain.eps_used).tolist()
    result["n"] = list(cfg["ns"])
    return chain


def saved_curve(result) -> bo.lens.WeightCurve:
    """The W curve saved in `result` (enough of it for `bo.lens.bounds`)."""
    return bo.lens.WeightCurve(
        eps=np.asarray(result["eps"]),
        log_weight=-np.asarray(result["neg_log_weight"]),
        log_weight_stderr=np.asarray(result["neg_log_weight_se"]),
        method="tempering",
        num_levels=result["weight_stages"],
        collapsed=result["weight_collapsed"],
        reliable=np.asarray(result["weight_reliable"]),
        reasons=tuple(result["weight_reasons"]),
    )


def _picked(name: str, width: int, widths, teachers) -> bool:
    """Whether a student is among `widths` and `teachers` (an empty selection picks all)."""
    return (not widths or width in widths) and (not teachers or name in teachers)


def remeasure(cfg, results, saved: Path, start, widths, teachers, part: str) -> list:
    """Recompute one part of the saved students (those with a width in `widths` and a teacher
    in `teachers`, all if empty): `"regret"`, the Bayes mixture's expected regret
    (prequential SMC on `smc_datasets` data sets, `smc_runs` runs each) of the students that
    have one (and of W-only students whose width is in `widths`), and its bound chain
    against the saved W curve; `"deff"`,
    the effective dimension at the MAP (every student, the W-only ones included)."""
    for result in results:
        name, width = result["teacher"], result["width"]
        if not _picked(name, width, widths, teachers):
            continue
        if part == "regret" and "regret" not in result and not widths:
            continue  # a W-only student gets a regret only when its width is asked for
        problem, teacher = student_problem(width, TEACHERS[name], max(cfg["ns"]))
        teacher_index = 100 * list(TEACHERS).index(name)
        if part == "regret":
            grid = list(cfg["widths"])
            index = teacher_index + (grid.index(width) if width in grid else width)
            smc_into(
                result,
                problem.posterior,
                teacher,
                cfg,
                jax.random.fold_in(jax.random.key(2), index),
            )
            log(f"  {name} w{width}: {bounds_into(result, saved_curve(result), cfg)}")
        else:
            key = jax.random.fold_in(jax.random.key(3), teacher_index + width)
            deff_into(result, problem.posterior, cfg, *jax.random.split(key))
        _save(saved, cfg, results, start)
    return results


def weight_only(cfg, results, saved: Path, start, widths, teachers) -> list:
    """Recompute the W curve and bounds of the saved students (those with a width in `widths`
    and a teacher in `teachers`, all if empty), and add the students of `weight_widths`
    (simple teacher) and `complex_weight_widths` that have none (W and bounds only: no
    regret, no d_eff)."""
    jobs = [("simple", w) for w in cfg["weight_widths"]]
    jobs += [("complex", w) for w in cfg["complex_weight_widths"]]
    for name, width in jobs:
        if not _picked(name, width, widths, teachers):
            continue
        result = next((r for r in results if r["teacher"] == name and r["width"] == width), None)
        if result is None:
            result = {"teacher": name, "width": width}
            results.append(result)
        problem, teacher = student_problem(width, TEACHERS[name], max(cfg["ns"]))
        result["num_params"] = problem.posterior.model.num_params
        index = 100 * list(TEACHERS).index(name) + width
        k_weight = jax.random.fold_in(jax.random.key(1), index)
        _, chain = weight_and_bounds(problem.posterior, teacher, result, cfg, k_weight)
        log(f"  {name} w{width}: W curve {result['weight_seconds']:.1f} s; {chain}")
        _save(saved, cfg, results, start)
    return results


def plot(results, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    _panels(
        [r for r in results if "smc_t" in r],
        ("smc_t", "smc_regret_t", "smc_regret_t_se"),
        "n",
        "expected regret E R_n (nats)",
        out_dir / "lens_regret.png",
        dashed=("n", "sgld_regret", "sgld_regret_se"),
    )
    _panels(
        [r for r in results if "eps" in r],
        ("eps", "neg_log_weight", "neg_log_weight_se"),
        "eps (nats per sample)",
        "-log W(eps) (nats)",
        out_dir / "lens_weight.png",
    )


def _panels(results, fields, xlabel, ylabel, path: Path, dashed=None):
    """One panel per teacher, one curve with a +-1 stderr band per student width, log x-axis;
    `dashed` fields add a second, dashed error-bar curve per width in the same colour, and the
    exponential-integral bound, dotted."""
    x, y, err = fields
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, name in zip(axes, TEACHERS, strict=True):
        for r in (r for r in results if r["teacher"] == name):
            label = f"width {r['width']} ({r['num_params']} params)"
            xs, ys, es = (np.asarray(r[f]) for f in (x, y, err))
            (line,) = ax.plot(xs, ys, label=label)
            ax.fill_between(xs, ys - es, ys + es, color=line.get_color(), alpha=0.25)
            if dashed is not None and all(f in r for f in dashed):  # no SGLD at width 4,096
                dx, dy, de = (r[f] for f in dashed)
                ax.errorbar(dx, dy, yerr=de, ls="--", marker=".", color=line.get_color())
            if dashed is not None and "exp_integral_bound" in r:
                ax.plot(r["n"], r["exp_integral_bound"], ":x", color=line.get_color())
        if dashed is not None:
            ax.plot([], [], "k--", label="4-chain SGLD ensemble")
            ax.plot([], [], "k:x", label="bound -log E_w exp(-nK)")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(f"{name} teacher")
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results) -> None:
    """The measurements as a markdown table (for the docs page)."""
    measured = next(r for r in results if "eps" in r)
    ns = ", ".join(str(n) for n in results[0]["n"])
    print(
        f"| teacher | width | weights | d_eff | Bayes E R_n (SMC) at n = {ns} "
        f"| bound -log int w e^(-nK) at n = {ns} | SGLD-ensemble R_n at n = {ns} "
        "| -log W(eps) at eps = " + ", ".join(f"{e:.2g}" for e in measured["eps"][::3]) + " |"
    )
    print("|---|---|---|---|---|---|---|---|")

    def pm(values, errors):
        return ", ".join(f"{v:.1f} ± {s:.1f}" for v, s in zip(values, errors, strict=True))

    for r in results:
        if "eps" in r:
            flags = r.get("weight_reliable", [True] * len(r["eps"]))
            weight = ", ".join(
                f"{v:.1f}{'' if ok else '*'}"
                for v, ok in zip(r["neg_log_weight"][::3], flags[::3], strict=True)
            )
            bound = ", ".join(f"{v:.1f}" for v in r["exp_integral_bound"])
        else:
            weight = bound = "not measured"
        d_eff = (
            f"{r['effective_dimension']:.1f} ± {r['effective_dimension_se']:.1f}"
            if "effective_dimension" in r
            else "not measured"
        )
        regret = pm(r["regret"], r["regret_se"]) if "regret" in r else "not measured"
        sgld = pm(r["sgld_regret"], r["sgld_regret_se"]) if "sgld_regret" in r else "not measured"
        print(
            f"| {r['teacher']} | {r['width']} | {r['num_params']} | {d_eff} | {regret} | "
            f"{bound} | {sgld} | {weight} |"
        )


def config(quick: bool) -> dict:
    if quick:
        return dict(
            widths=(16, 64),
            ts=(4, 16),
            ns=(4, 16),
            eps=np.geomspace(0.05, 5.0, 6),
            particles=64,
            weight_runs=2,
            weight_mcmc_steps=3,
            weight_max_width=64,
            weight_widths=(16, 64),
            complex_weight_widths=(16, 64),
            kl_points=64,
            warmup=200,
            draws=20,
            thinning=5,
            step_size=5e-5,
            map_steps=200,
            smc_datasets=2,
            smc_particles=64,
            smc_runs=2,
        )
    return dict(
        widths=(16, 64, 256, 1024),
        ts=(4, 16, 64, 256),
        ns=(4, 16, 64, 256),
        eps=np.geomspace(0.003, 5.0, 14),
        particles=128,
        weight_runs=2,
        weight_mcmc_steps=5,
        weight_max_width=4096,
        weight_widths=(16, 64, 256, 1024, 4096),  # W and bounds; the regret stops at 1,024
        complex_weight_widths=(16, 64, 256, 1024),  # the full runs stop at 64
        kl_points=512,
        warmup=1000,
        draws=100,
        thinning=5,
        step_size=5e-5,
        map_steps=2000,
        smc_datasets=8,  # the stderr of E R_n is the spread across data sets / sqrt(8)
        smc_particles=256,
        smc_runs=2,  # SMC runs per data set (their mean is the data set's regret)
    )


def _save(path: Path, cfg, results, start) -> float:
    """Write what is measured so far (after every student, so a long run keeps its results)."""
    elapsed = time.perf_counter() - start
    payload = {
        "config": {k: np.asarray(v).tolist() for k, v in cfg.items()},
        "results": results,
        "seconds": elapsed,
    }
    path.write_text(json.dumps(payload, indent=1))
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--plot-only", action="store_true", help="re-plot the saved results")
    parser.add_argument("--resume", action="store_true", help="skip students already saved")
    parser.add_argument(
        "--weight-only",
        action="store_true",
        help="recompute the W curves and bounds on the saved students, add `weight_widths` "
        "and `complex_weight_widths`",
    )
    parser.add_argument(
        "--regret-only",
        action="store_true",
        help="recompute the Bayes regret (SMC, `smc_datasets` data sets) and bounds of the saved "
        "students",
    )
    parser.add_argument(
        "--deff-only",
        action="store_true",
        help="recompute the effective dimension of the saved students (W-only ones included)",
    )
    parser.add_argument(
        "--smc-runs", type=int, default=None, help="SMC runs per data set (default 2)"
    )
    parser.add_argument(
        "--widths",
        type=int,
        nargs="*",
        default=(),
        help="with --weight-only, --regret-only or --deff-only: only these widths",
    )
    parser.add_argument(
        "--teachers",
        nargs="*",
        choices=list(TEACHERS),
        default=(),
        help="with --weight-only, --regret-only or --deff-only: only these teachers",
    )
    args = parser.parse_args(argv)
    cfg = config(args.quick)
    if args.smc_runs is not None:
        if args.smc_runs < 1:
            parser.error(f"--smc-runs must be >= 1, got {args.smc_runs}")
        cfg["smc_runs"] = args.smc_runs
    out = ROOT / "examples" / "output"
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    saved = out / f"universality_lens{suffix}.json"
    figures = out if args.quick else ROOT / "docs" / "img"
    if args.plot_only:  # re-derive R_n from the saved r_t, re-plot, print the table
        results = json.loads(saved.read_text())["results"]
        for r in (r for r in results if "r_t" in r):
            regret, regret_se = bo.lens.cumulative_regret(r["t"], r["r_t"], r["r_t_se"], r["n"])
            r["sgld_regret"], r["sgld_regret_se"] = regret.tolist(), regret_se.tolist()
        plot(results, figures)
        table(results)
        return
    if args.weight_only or args.regret_only or args.deff_only:  # on the saved students
        if args.weight_only:
            results = json.loads(saved.read_text())["results"] if saved.exists() else []
            weight_only(cfg, results, saved, time.perf_counter(), args.widths, args.teachers)
        else:
            results = json.loads(saved.read_text())["results"]
            part = "regret" if args.regret_only else "deff"
            remeasure(cfg, results, saved, time.perf_counter(), args.widths, args.teachers, part)
        plot(results, figures)
        table(results)
        return
    key = jax.random.key(0)
    results, report_run = [], None
    if args.resume and saved.exists():  # keep the students already measured
        results = json.loads(saved.read_text())["results"]
    start = time.perf_counter()
    # the simple teacher at every width, the complex one at the two narrowest (its W curve
    # needs many more splitting levels); the widest student (the slowest) last, so a run cut
    # short still has both teachers
    widths = list(cfg["widths"])
    jobs = [("simple", w) for w in widths[:-1]] + [("complex", w) for w in widths[:2]]
    jobs.append(("simple", widths[-1]))
    for name, width in jobs:
        if any(r["teacher"] == name and r["width"] == width for r in results):
            continue
        log(f"{name} teacher, width {width}")
        index = 100 * list(TEACHERS).index(name) + widths.index(width)
        result, ensembles, curve, chain, problem = run_one(
            name, width, cfg, jax.random.fold_in(key, index)
        )
        results.append(result)
        _save(saved, cfg, results, start)
        if name == "simple" and width == widths[-2 if len(widths) > 2 else -1]:
            report_run = (ensembles[max(ensembles)], problem, curve, chain)
    elapsed = _save(saved, cfg, results, start)
    plot(results, figures)
    if report_run is not None:
        ensemble, problem, curve, chain = report_run
        tree = bo.to_datatree(ensemble, problem.posterior, test=problem.test, name="SGLD")
        tree = bo.lens.attach(tree, curve, chain)
        bo.report(
            tree,
            ROOT / "runs" / f"lens{suffix}" / "report.html",
            title="The universality lens: teacher-student",
        )
    log(f"done in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
