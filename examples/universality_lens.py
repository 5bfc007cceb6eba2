"""The universality lens on teacher-student regression: does a wider student pay for its width?

    .venv/bin/python examples/universality_lens.py           # the full experiment (~15 min)
    .venv/bin/python examples/universality_lens.py --quick   # a smoke run (~2 min)

A fixed teacher (a 2 -> 4 -> 1 tanh MLP, `models/teacher_student.py`) labels inputs
x ~ N(0, I_2) with Gaussian noise sigma = 0.3. Students 2 -> width -> 1 (width 16 ... 1024, so
65 ... 4,097 parameters, 63x) with the fan-in Normal prior learn it. Two teachers: a simple one
(weights of scale 0.5: nearly linear) and a complex one (scale 2: saturated, wiggly).

For each teacher and width:

1. Regret vs n. The expected regret is a sum of instantaneous regrets,
   E R_n = sum_{t<n} E r_t with r_t = E_x KL(P_0(.|x) || M(.|x, x^t)): the excess test log-loss
   of the posterior predictive after t points. r_t is measured on the test inputs (the
   expectation over y by Gauss-Hermite quadrature) with SGLD ensembles (4 chains) on the
   first t points (t = 0 is the prior predictive), and R_n is the trapezoid sum of r_t over t
   on the grid. For the narrowest student it is cross-checked against the data-annealed SMC
   estimate of the realised regret (`bo.lens.regret`, prequential).
2. The weight of the hypothesis -log W(eps), K(theta) = E_x (f_theta(x) - f0(x))^2 / (2 sigma^2)
   on 256 fixed inputs (`bo.lens.kl_gaussian_outputs`), by multilevel splitting
   (`bo.lens.weight_curve`), and the bound chain (`bo.lens.bounds`).
3. The effective dimension at the MAP on all the points (`bo.lens.effective_dimension`).

Writes `docs/img/lens_*.png`, `examples/output/universality_lens.json` and
`runs/lens/report.html` (the HTML report of the width-256 student with the lens plots).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
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
    module = bo.builders.load_module(ROOT / "models" / "teacher_student.py")
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


def sgld_ensemble(posterior, key, cfg) -> tuple[bo.Ensemble, float]:
    """4 SGLD chains at the configured step size; if every chain turns non-finite (the step is
    too large for this width and n) the step is quartered, up to three times. The chains start
    from prior draws while the data are few (t <= 16: the posterior is still broad, and chains
    started at MAPs barely leave them) and from jittered MAPs after (the posterior is
    concentrated and prior starts are far from it). Returns the healthy chains and the step."""
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
                num_chains=4,
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


def instantaneous_regret(ensemble, test, teacher, nodes: int = 16) -> tuple[float, float]:
    """r = mean_x KL(P_0(.|x) || M(.|x)), the expected excess log-loss at the test inputs.

    The expectation over y ~ N(f0(x), sigma^2) is done by Gauss-Hermite quadrature (`nodes`
    points), so only the inputs are sampled; the stderr is over the test inputs."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)  # probabilists': weight exp(-z^2/2)
    w = w / w.sum()
    f0 = jax.vmap(teacher)(test.inputs).reshape(test.targets.shape)
    y = f0[None, :] + SIGMA * jnp.asarray(z, f0.dtype)[:, None]  # (nodes, m)
    x = jnp.tile(test.inputs, (nodes, 1))
    log_m = ensemble.predict(x).log_prob(y.reshape(-1)).reshape(nodes, -1)
    log_p0 = jax.scipy.stats.norm.logpdf(y, f0[None, :], SIGMA)
    kl = np.asarray(jnp.tensordot(jnp.asarray(w, f0.dtype), log_p0 - log_m, axes=1))
    return float(kl.mean()), float(kl.std(ddof=1) / math.sqrt(kl.size))


def cumulative(ts, r, r_se, n):
    """R_n = sum_{t<n} r_t with r interpolated between the grid points: linearly from t = 0 to
    the first positive t, then as a power law (linear in log t, log r), the shape of a
    regret rate r_t ~ c / t^a. Standard errors add (neighbouring errors are correlated)."""
    ts, r, r_se = (np.asarray(v, float) for v in (ts, r, r_se))
    grid = np.arange(n, dtype=float)
    head = grid < ts[1]
    values = np.empty_like(grid)
    values[head] = np.interp(grid[head], ts, r)
    tail = grid[~head]
    positive = np.maximum(r[1:], 1e-12)
    values[~head] = np.exp(np.interp(np.log(tail), np.log(ts[1:]), np.log(positive)))
    ses = np.interp(grid, ts, r_se)
    return float(values.sum()), float(ses.sum())


def run_one(teacher_name, width, cfg, key):
    scale = TEACHERS[teacher_name]
    problem, teacher = student_problem(width, scale, max(cfg["ns"]))
    full = problem.posterior
    test = problem.test
    result = {"teacher": teacher_name, "width": width, "num_params": full.model.num_params}
    k_prior, k_sgld, k_weight, k_map, k_ed = jax.random.split(key, 5)

    # 1. regret vs n from the instantaneous regrets
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
    curve = [cumulative(ts, rs, ses, n) for n in cfg["ns"]]
    result["n"] = list(cfg["ns"])
    result["regret"] = [c[0] for c in curve]
    result["regret_se"] = [c[1] for c in curve]

    # 2. the weight of the hypothesis and the bound chain
    start = time.perf_counter()
    probe = jax.random.normal(jax.random.key(7), (cfg["kl_points"], 2))
    probe_data = bo.Data(probe, jnp.zeros((cfg["kl_points"],)))
    on_probe = bo.Posterior(full.model, probe_data)
    kl = bo.lens.kl_gaussian_outputs(on_probe, jax.vmap(teacher)(probe), SIGMA)
    curve = bo.lens.weight_curve(
        full,
        kl,
        cfg["eps"],
        key=k_weight,
        num_particles=cfg["particles"],
        num_runs=cfg["weight_runs"],
    )
    result["eps"] = np.asarray(curve.eps).tolist()
    result["neg_log_weight"] = (-np.asarray(curve.log_weight)).tolist()
    result["neg_log_weight_se"] = np.asarray(curve.log_weight_stderr).tolist()
    result["weight_seconds"] = time.perf_counter() - start
    result["weight_collapsed"] = bool(curve.collapsed)
    chain = bo.lens.bounds(
        n=np.asarray(cfg["ns"]),
        regret=np.asarray(result["regret"]),
        regret_stderr=np.asarray(result["regret_se"]),
        weight_curve=curve,
    )
    bounds_ds = chain.to_dataset()
    result["exp_integral_bound"] = bounds_ds["exp_integral_bound"].values.tolist()
    result["resolvability_bound"] = bounds_ds["resolvability_bound"].values.tolist()
    result["eps_star"] = bounds_ds["eps_star"].values.tolist()
    result["chain_holds"] = np.asarray(chain.holds).tolist()
    log(f"  {teacher_name} w{width}: W curve {result['weight_seconds']:.1f} s; {chain}")

    # 3. effective dimension at the MAP on all the points
    fit = bo.map_estimate(full, key=k_map, optimizer=optax.adam(1e-2), num_steps=cfg["map_steps"])
    ed = bo.lens.effective_dimension(full, fit.position, key=k_ed)
    result["effective_dimension"] = float(ed.value)
    result["effective_dimension_se"] = float(ed.stderr)
    log(f"  {teacher_name} w{width}: d_eff {ed.value:.1f} ± {ed.stderr:.1f}")
    return result, ensembles, curve, chain, problem


def smc_cross_check(cfg, key):
    """Realised regret of the narrowest student by data-annealed SMC (prequential)."""
    width, n = cfg["widths"][0], cfg["smc_n"]
    problem, teacher = student_problem(width, TEACHERS["simple"], n)
    data = problem.posterior.data
    f0 = jax.vmap(teacher)(data.inputs).reshape(data.targets.shape)
    truth = jax.scipy.stats.norm.logpdf(data.targets, f0, SIGMA)
    start = time.perf_counter()
    result = bo.lens.regret(
        problem.posterior,
        key=key,
        truth=truth,
        num_particles=cfg["smc_particles"],
        num_runs=2,
    )
    return {
        "width": width,
        "n": n,
        "regret": float(result.regret[-1]),
        "regret_se": float(result.regret_stderr[-1]),
        "log_evidence": float(result.log_evidence.value),
        "reliable": bool(result.reliable),
        "seconds": time.perf_counter() - start,
    }


def plot(results, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    _panels(
        results,
        ("n", "regret", "regret_se"),
        "n",
        "expected regret R_n (nats)",
        out_dir / "lens_regret.png",
    )
    _panels(
        results,
        ("eps", "neg_log_weight", "neg_log_weight_se"),
        "eps (nats per sample)",
        "-log W(eps) (nats)",
        out_dir / "lens_weight.png",
    )


def _panels(results, fields, xlabel, ylabel, path: Path):
    """One panel per teacher, one error-bar curve per student width, log x-axis."""
    x, y, err = fields
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, name in zip(axes, TEACHERS, strict=True):
        for r in (r for r in results if r["teacher"] == name):
            label = f"width {r['width']} ({r['num_params']} params)"
            ax.errorbar(r[x], r[y], yerr=r[err], marker="o", capsize=2, label=label)
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
    print(
        "| teacher | width | weights | d_eff | R_n at n = "
        + ", ".join(str(n) for n in results[0]["n"])
        + " | -log W(eps) at eps = "
        + ", ".join(f"{e:.2g}" for e in results[0]["eps"][::3])
        + " | bound min_eps at n = "
        + str(results[0]["n"][-1])
        + " |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        regret = ", ".join(
            f"{v:.1f} ± {s:.1f}" for v, s in zip(r["regret"], r["regret_se"], strict=True)
        )
        weight = ", ".join(f"{v:.1f}" for v in r["neg_log_weight"][::3])
        print(
            f"| {r['teacher']} | {r['width']} | {r['num_params']} | "
            f"{r['effective_dimension']:.1f} ± {r['effective_dimension_se']:.1f} | {regret} | "
            f"{weight} | {r['resolvability_bound'][-1]:.1f} |"
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
            kl_points=64,
            warmup=200,
            draws=20,
            thinning=5,
            step_size=5e-5,
            map_steps=200,
            smc_n=8,
            smc_particles=64,
        )
    return dict(
        widths=(16, 64, 256, 1024),
        ts=(4, 16, 64, 256),
        ns=(4, 16, 64, 256),
        eps=np.geomspace(0.03, 5.0, 10),
        particles=64,
        weight_runs=2,
        kl_points=64,
        warmup=1000,
        draws=100,
        thinning=5,
        step_size=5e-5,
        map_steps=2000,
        smc_n=64,
        smc_particles=256,
    )


def _save(path: Path, cfg, results, smc, start) -> float:
    """Write what is measured so far (after every student, so a long run keeps its results)."""
    elapsed = time.perf_counter() - start
    payload = {
        "config": {k: np.asarray(v).tolist() for k, v in cfg.items()},
        "results": results,
        "smc_cross_check": smc,
        "seconds": elapsed,
    }
    path.write_text(json.dumps(payload, indent=1))
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--plot-only", action="store_true", help="re-plot the saved results")
    parser.add_argument("--resume", action="store_true", help="skip students already saved")
    args = parser.parse_args(argv)
    cfg = config(args.quick)
    out = ROOT / "examples" / "output"
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    saved = out / f"universality_lens{suffix}.json"
    figures = out if args.quick else ROOT / "docs" / "img"
    if args.plot_only:  # re-derive R_n from the saved r_t, re-plot, print the table
        results = json.loads(saved.read_text())["results"]
        for r in results:
            curve = [cumulative(r["t"], r["r_t"], r["r_t_se"], n) for n in r["n"]]
            r["regret"], r["regret_se"] = [c[0] for c in curve], [c[1] for c in curve]
        plot(results, figures)
        table(results)
        return
    key = jax.random.key(0)
    results, report_run = [], None
    if args.resume and saved.exists():  # keep the students already measured
        results = json.loads(saved.read_text())["results"]
    start = time.perf_counter()
    for i, name in enumerate(TEACHERS):
        widths = (
            cfg["widths"] if name == "simple" else cfg["widths"][:: max(1, len(cfg["widths"]) // 2)]
        )
        for j, width in enumerate(widths):
            if any(r["teacher"] == name and r["width"] == width for r in results):
                continue
            log(f"{name} teacher, width {width}")
            result, ensembles, curve, chain, problem = run_one(
                name, width, cfg, jax.random.fold_in(key, 100 * i + j)
            )
            results.append(result)
            _save(saved, cfg, results, None, start)
            if name == "simple" and width == cfg["widths"][-2 if len(cfg["widths"]) > 2 else -1]:
                report_run = (ensembles[max(ensembles)], problem, curve, chain)
    smc = smc_cross_check(cfg, jax.random.fold_in(key, 999))
    log(f"SMC cross-check: {smc}")
    elapsed = _save(saved, cfg, results, smc, start)
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
