"""The samplers side by side: ESS per gradient, ESS/s and test NLL at equal wall time.

Run from the repository root (about 50 minutes on a shared 2-core CPU):

    .venv/bin/python benchmarks/samplers.py            # writes its section of RESULTS.md
    .venv/bin/python benchmarks/samplers.py --quick    # tiny sizes, prints only (< 2 min)

Samplers: `bo.NUTS`, `bo.HMC`, `bo.MCLMC`, `bo.AdjustedMCLMC` and `bo.SGLD` with a cyclical
schedule (`bo.schedules.cyclical`, thinning = cycle length: one draw per cycle, at its smallest
step), all through `bo.sample`, and NumPyro's NUTS (`chain_method="vectorized"`).

Targets:

- three regression MLPs `eqx.nn.MLP(4, 1, width, depth=2, tanh)` (width^2 + 7 width + 1
  weights: widths 28, 97, 313 give 981, 10,089 and 100,161), prior N(0, 1) on every weight,
  Gaussian likelihood with fixed noise 0.1, teacher-student data (`bo.data.teacher_student`,
  x ~ N(0, I_4), the 4-16-1 tanh teacher of benchmarks/sampling.py) with a held-out test
  split. NumPyro sees the same network through `random_eqx_module(..., scope_divider="__")`
  (benchmarks/sampling.py's model). Every chain starts at a MAP estimate (what
  `bo.sample(init="map")` computes: 1,000 Adam steps from a prior draw, jittered by 0.01),
  computed outside the timing, the same starts for every sampler of a repeat;
- two posteriordb posteriors (`models/posteriordb/`, data in `../shared/validation`) on which
  tests/test_posteriordb_mclmc.py passes both MCLMC variants: eight_schools_noncentered and
  kidiq; starts: prior draws (NumPyro's `init_to_sample`). SGLD does not apply there (a NumPyro
  model has no minibatches; `bo.SGLD` rejects it) and there is no test set.

Equal wall time. Each target has a budget B (seconds, compile excluded). For each sampler the
number of draws is calibrated: a first call of one chunk compiles (a fixed `chunk_size`, so that
every later call with a multiple of it as `num_draws` reuses the compiled programs) and, with
the compile time JAX reports subtracted, measures the warm-up time and the time per chunk;
the timed runs then take as many chunks as fit in B (at least one, at most a memory cap on
the kept draws). The times actually used are reported. Repeats are interleaved (every sampler
once, then again, with new keys and starts) and the medians reported.

Timing: `bo.sample` with `progress=False`, the warm-up split from the draws by wrapping
`Progress.warmup_done` / `Progress.chunk_done` (called after the warm-up's states and each
chunk's draws are ready); NumPyro `MCMC.warmup` then `MCMC.run`, each blocked on, minus the
time JAX reports for tracing, lowering and compiling inside the call (NumPyro recompiles at
every call; `jax.monitoring` spans, as benchmarks/sampling.py does).

Metrics (all chains together):

- gradients: full-data gradient evaluations of the DRAWS phase (warm-up excluded for every
  sampler: `bo.sample` does not return the warm-up's statistics): NUTS/HMC/NumPyro the leapfrog
  steps (`n_steps`) summed (one gradient each); MCLMC two per step (BlackJAX's isokinetic
  McLachlan integrator evaluates the gradient twice per step), draws x thinning steps;
  adjusted MCLMC two per integration step, the mean `n_steps` of the kept draws times the
  steps taken (an unbiased count when thinned: `n_steps` is i.i.d. across steps);
  SGLD its minibatch gradients as full-data equivalents, steps x batch / N;
- bulk ESS (`arviz_stats.ess`, (chain, draw) arrays) of the log density of every draw
  (`posterior.logdensity` for networks; the samplers' recorded `lp` / NumPyro's
  `-potential_energy` for posteriordb) and of f(x) at 5 probe inputs x ~ N(0, I_4) (median over
  the probes); for posteriordb, where there is no f, the median ESS over the scalar parameters;
- ESS/grad and ESS/s (s = warm-up + draws, compile excluded);
- test NLL: `bo.metrics.nll(ensemble.predict(x_test).log_prob(y_test))`, the mixture
  predictive of all kept draws (NumPyro's draws wrapped in a `bo.Ensemble`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

# benchmarks/sampling.py sets a fresh persistent compilation cache and registers the compile
# clock on import; its NumPyro model and site-name helpers are reused here
import arviz_stats  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
from _sections import machine_line, write_section  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402
from sampling import (  # noqa: E402
    CLOCK,
    NOISE,
    _union_length,  # noqa: E402
    from_numpyro,
    lp_trace,
    numpyro_model,
    predictions,
    to_numpyro,
)

import bayesover as bo  # noqa: E402
from bayesover.inference import _progress  # noqa: E402
from bayesover.inference._starts import initial_positions  # noqa: E402

RESULTS = HERE / "RESULTS.md"
START, END = "<!-- samplers:start -->", "<!-- samplers:end -->"
MODEL_DIR = ROOT / "models" / "posteriordb"
NUM_PROBES = 5
# adjusted MCLMC's starting step size on the networks. Its default, 0.2 sqrt(d), makes
# BlackJAX's tuner slow there: its first pass holds L = 2 x the starting step fixed while the
# dual averaging shrinks the step, so trajectories of L / step integration steps grow long
# (measured, 981 weights, MAP starts, 100 warm-up steps, compiled: 64 s with the default,
# 0.9 s from 0.1; 500 warm-up steps: 16.9 s from 1.0, 1.6 s from 0.1).
ADJUSTED_STEP_SIZE = 0.1


def log(text):
    print(f"[{time.time() - T0:7.1f}s] {text}", file=sys.stderr, flush=True)


T0 = time.time()


# -- timing of bo.sample: warm-up and draws ---------------------------------------------------


class PhaseClock:
    """perf_counter times of `bo.sample`'s end of warm-up and of its last chunk."""

    def __init__(self):
        self.warmup_end = self.last_chunk = 0.0
        warmup_done, chunk_done = _progress.Progress.warmup_done, _progress.Progress.chunk_done
        clock = self

        def timed_warmup_done(report, num_warmup):
            clock.warmup_end = time.perf_counter()
            warmup_done(report, num_warmup)

        def timed_chunk_done(report, draws_done):
            clock.last_chunk = time.perf_counter()
            chunk_done(report, draws_done)

        _progress.Progress.warmup_done = timed_warmup_done
        _progress.Progress.chunk_done = timed_chunk_done


PHASES = PhaseClock()


def _minus_compile(lo, hi):
    return (hi - lo) - _union_length(CLOCK.spans, _wall(lo), _wall(hi))


# jax.monitoring spans are in time.time(); the phase clock in perf_counter: convert
_OFFSET = time.time() - time.perf_counter()


def _wall(t):
    return t + _OFFSET


@dataclasses.dataclass
class Run:
    warmup_s: float
    draws_s: float
    positions: Any  # unconstrained draws (chain, draw, ...) for networks; constrained for pdb
    lp: np.ndarray | None  # (chain, draw), recorded by the sampler (posteriordb)
    grads: float  # full-data gradient evaluations of the draws phase, all chains
    num_draws: int
    extra: dict

    @property
    def seconds(self):
        return self.warmup_s + self.draws_s


# -- samplers -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Spec:
    """One sampler on one target: how it is called and how its gradients are counted."""

    label: str
    sampler: Any  # a bo sampler, or None for NumPyro NUTS
    num_warmup: int
    thinning: int = 1
    chunk: int = 10  # draws per compiled chunk; num_draws is a multiple of it
    max_draws: int = 10_000  # per chain (memory)
    depth: int = 10  # NumPyro's max tree depth
    accept: float = 0.8  # NumPyro's target acceptance probability

    def describe(self):
        if self.sampler is None:
            return f"NumPyro NUTS(max_tree_depth={self.depth}, target_accept_prob={self.accept})"
        if isinstance(self.sampler, bo.SGLD):  # the repr's floats in full: shorten them
            eps, schedule = self.sampler.step_size, self.sampler.schedule
            return (
                f"SGLD(step_size={eps:.3g}, batch_size={self.sampler.batch_size}, schedule="
                f"cyclical({schedule.step_size:.3g}, cycle_length={schedule.cycle_length}))"
            )
        return re.sub(r"\s+", " ", repr(self.sampler))


def count_grads(spec, stats, num_chains, num_draws, target):
    name = type(spec.sampler).__name__
    steps = num_chains * num_draws * spec.thinning
    if name in ("NUTS", "HMC"):
        return float(np.asarray(stats["n_steps"]).sum()) * spec.thinning
    # BlackJAX's MCLMC kernels integrate with the isokinetic McLachlan scheme: two position
    # updates, so two gradient evaluations, per integration step (counted: a logdensity with a
    # jax.debug.callback in it is called 2.0 times per step, leapfrog HMC's 1.0 times)
    if name == "AdjustedMCLMC":
        return 2.0 * float(np.asarray(stats["n_steps"]).mean()) * steps
    if name == "MCLMC":
        return 2.0 * steps
    if name == "SGLD":
        return steps * spec.sampler.batch_size / target.posterior.num_data
    raise ValueError(name)


def run_bo(target, spec, seed, inits, num_draws):
    CLOCK.spans.clear()
    t0 = time.perf_counter()
    ens = bo.sample(
        target.posterior,
        spec.sampler,
        key=jax.random.key(seed),
        num_chains=target.num_chains,
        num_warmup=spec.num_warmup,
        num_draws=num_draws,
        thinning=spec.thinning,
        init=inits,
        chunk_size=spec.chunk,
        progress=False,
    )
    jax.block_until_ready(ens.params)
    warmup_s = _minus_compile(t0, PHASES.warmup_end)
    draws_s = _minus_compile(PHASES.warmup_end, PHASES.last_chunk)
    stats = {k: np.asarray(v) for k, v in ens.stats.items()}
    extra = {"step_size": float(np.nanmean(stats["step_size"]))}
    if "L" in stats:
        extra["L"] = float(np.mean(stats["L"]))
    if "n_steps" in stats:
        extra["n_steps"] = float(np.mean(stats["n_steps"]))
    if "diverging" in stats:
        extra["divergences"] = float(stats["diverging"].sum())
    if "stopped" in stats:
        extra["stopped"] = float(stats["stopped"][:, -1].sum())
    if target.kind == "net":
        positions, lp = ens.params, None
    else:
        positions, lp = ens.params, stats["lp"]
    grads = count_grads(spec, stats, target.num_chains, num_draws, target)
    return Run(warmup_s, draws_s, positions, lp, grads, num_draws, extra)


def run_numpyro(target, spec, seed, inits, num_draws):
    fn, args, kwargs = target.numpyro
    mcmc = numpyro.infer.MCMC(
        numpyro.infer.NUTS(fn, max_tree_depth=spec.depth, target_accept_prob=spec.accept),
        num_warmup=spec.num_warmup,
        num_samples=num_draws,
        num_chains=target.num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    init_params = to_numpyro(target.posterior, inits) if target.kind == "net" else inits
    CLOCK.spans.clear()
    t0 = time.perf_counter()
    mcmc.warmup(jax.random.key(seed), *args, init_params=init_params, **kwargs)
    jax.block_until_ready(mcmc.post_warmup_state)
    t1 = time.perf_counter()
    mcmc.run(
        mcmc.post_warmup_state.rng_key,
        *args,
        extra_fields=("num_steps", "diverging", "potential_energy", "adapt_state.step_size"),
        **kwargs,
    )
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    t2 = time.perf_counter()
    extra_fields = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    warmup_s, draws_s = _minus_compile(t0, t1), _minus_compile(t1, t2)
    if target.kind == "net":
        positions, lp = from_numpyro(target.posterior, samples), None
    else:
        positions, lp = samples, -extra_fields["potential_energy"]
    extra = {
        "step_size": float(np.mean(extra_fields["adapt_state.step_size"])),
        "n_steps": float(extra_fields["num_steps"].mean()),
        "divergences": float(extra_fields["diverging"].sum()),
    }
    grads = float(extra_fields["num_steps"].sum())
    return Run(warmup_s, draws_s, positions, lp, grads, num_draws, extra)


def run(target, spec, seed, inits, num_draws):
    fn = run_numpyro if spec.sampler is None else run_bo
    return fn(target, spec, seed, inits, num_draws)


# -- targets ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    name: str
    kind: str  # "net" or "pdb"
    posterior: Any
    num_chains: int
    budget: float
    repeats: int
    specs: list
    numpyro: tuple  # (model function, args, kwargs)
    starts: Any  # seed -> initial positions with a leading chain axis
    probe: Any = None
    test: Any = None
    notes: dict = dataclasses.field(default_factory=dict)

    @property
    def num_params(self):
        position = self.posterior.initial_position(jax.random.key(0))
        return sum(int(np.size(x)) for x in jax.tree.leaves(position))


TEACHER_KEY = 1000


def net_posterior(width, num_train, num_test, seed):
    teacher = eqx.nn.MLP(4, 1, 16, 1, activation=jnp.tanh, key=jax.random.key(TEACHER_KEY))
    data = bo.data.teacher_student(
        jax.random.key(seed), teacher, num_train + num_test, input_shape=4, noise_scale=NOISE
    )
    train, test = (
        data.take(jnp.arange(num_train)),
        data.take(jnp.arange(num_train, data.num_points)),
    )
    net = eqx.nn.MLP(4, 1, width, 2, activation=jnp.tanh, key=jax.random.key(0))
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(NOISE))
    return bo.Posterior(model, train), net, test


def largest_curvature(posterior, position, iterations=20):
    """lambda_max of the Hessian of -log p at `position`: power iteration on Hessian-vector
    products (jax.jvp of jax.grad)."""
    flat, unravel = ravel_pytree(position)

    def neg_lp(z):
        return -posterior.logdensity(unravel(z))

    @jax.jit
    def hvp(v):
        return jax.jvp(jax.grad(neg_lp), (flat,), (v,))[1]

    v = jax.random.normal(jax.random.key(5), flat.shape)
    value = 0.0
    for _ in range(iterations):
        w = hvp(v / jnp.linalg.norm(v))
        value = float(jnp.linalg.norm(w))
        v = w
    return value


def net_target(cfg, label, width, num_train, num_test, net_cfg):
    posterior, net, test = net_posterior(width, num_train, num_test, seed=10 + width)
    C = net_cfg["chains"]

    def starts(seed):
        keys = jax.random.split(jax.random.key(seed), C)
        return jax.block_until_ready(
            initial_positions(posterior, "map", keys, 0.01, net_cfg["map_steps"])
        )

    # SGLD's largest step size: 1 / lambda_max of -log p at a MAP start (stability needs < 2 /
    # lambda_max); the cyclical schedule starts each cycle there and decays to 0
    first = jax.tree.map(lambda x: x[0], starts(1))
    lam = largest_curvature(posterior, first)
    sgld_eps = 1.0 / lam
    cycle = net_cfg["cycle"]
    max_draws = net_cfg["max_draws"]
    depth = net_cfg["depth"]
    W, Wm = net_cfg["warmup"], net_cfg["warmup_mclmc"]
    specs = [
        Spec(
            "NUTS",
            bo.NUTS(max_tree_depth=depth),
            W,
            chunk=net_cfg["chunk_nuts"],
            max_draws=max_draws,
        ),
        Spec(
            "HMC",
            bo.HMC(num_integration_steps=net_cfg["hmc_steps"]),
            W,
            chunk=net_cfg["chunk_nuts"],
            max_draws=max_draws,
        ),
        Spec(
            "MCLMC",
            bo.MCLMC(),
            Wm,
            thinning=net_cfg["thin_mclmc"],
            chunk=net_cfg["chunk_mclmc"],
            max_draws=max_draws,
        ),
        Spec(
            "AdjustedMCLMC",
            bo.AdjustedMCLMC(step_size=ADJUSTED_STEP_SIZE),
            net_cfg["warmup_adj"],
            thinning=net_cfg["thin_adj"],
            chunk=net_cfg["chunk_mclmc"],
            max_draws=max_draws,
        ),
        Spec(
            "SGLD (cyclical)",
            bo.SGLD(
                step_size=sgld_eps,
                batch_size=net_cfg["batch"],
                schedule=bo.schedules.cyclical(sgld_eps, cycle),
            ),
            net_cfg["sgld_warmup_cycles"] * cycle,
            thinning=cycle,
            chunk=net_cfg["chunk_sgld"],
            max_draws=max_draws,
        ),
        Spec(
            "NumPyro NUTS", None, W, chunk=net_cfg["chunk_nuts"], max_draws=max_draws, depth=depth
        ),
    ]
    x, y = posterior.data.inputs, posterior.data.targets
    probe = jax.random.normal(jax.random.key(3), (NUM_PROBES, 4))
    target = Target(
        label,
        "net",
        posterior,
        C,
        net_cfg["budget"],
        net_cfg["repeats"],
        specs,
        (numpyro_model(net), (x, y), {}),
        starts,
        probe,
        test,
    )
    target.notes = {
        "width": width,
        "N": num_train,
        "N_test": num_test,
        "lambda_max": lam,
        "sgld_eps": sgld_eps,
        **net_cfg,
    }
    return target


def pdb_target(cfg, label, stem, pdb_cfg):
    module = bo.builders.load_module(MODEL_DIR / f"{stem}.py")
    problem = module.build()
    posterior = problem.posterior
    C = pdb_cfg["chains"]

    def starts(seed):
        keys = jax.random.split(jax.random.key(seed), C)
        return jax.tree.map(
            lambda *xs: jnp.stack(xs), *[posterior.initial_position(k) for k in keys]
        )

    W, Wm = pdb_cfg["warmup"], pdb_cfg["warmup_mclmc"]
    accept = pdb_cfg.get("accept", 0.8)
    md = pdb_cfg["max_draws"]
    specs = [
        Spec(
            "NUTS",
            bo.NUTS(target_acceptance_rate=accept),
            W,
            chunk=pdb_cfg["chunk_nuts"],
            max_draws=md,
        ),
        Spec(
            "HMC",
            bo.HMC(target_acceptance_rate=accept),
            W,
            chunk=pdb_cfg["chunk_nuts"],
            max_draws=md,
        ),
        Spec("MCLMC", bo.MCLMC(), Wm, chunk=pdb_cfg["chunk_mclmc"], max_draws=md),
        Spec("AdjustedMCLMC", bo.AdjustedMCLMC(), Wm, chunk=pdb_cfg["chunk_mclmc"], max_draws=md),
        Spec("NumPyro NUTS", None, W, chunk=pdb_cfg["chunk_nuts"], max_draws=md, accept=accept),
    ]
    if "samplers" in pdb_cfg:  # --quick: a subset
        specs = [s for s in specs if s.label in pdb_cfg["samplers"]]
    target = Target(
        label,
        "pdb",
        posterior,
        C,
        pdb_cfg["budget"],
        pdb_cfg["repeats"],
        specs,
        (module.model, (), dict(posterior.kwargs)),
        starts,
    )
    target.notes = dict(pdb_cfg, name=problem.name)
    return target


# -- metrics ------------------------------------------------------------------------------------


def ess(x):
    """Bulk ESS of a (chain, draw) array; NaN when a chain has stopped (NaN draws)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        return float("nan")
    return float(arviz_stats.ess(x))


def evaluate(target, run_):
    out = {
        "seconds": run_.seconds,
        "warmup_s": run_.warmup_s,
        "draws_s": run_.draws_s,
        "grads": run_.grads,
        "draws": run_.num_draws,
        **run_.extra,
    }
    if target.kind == "net":
        lp = lp_trace(target.posterior, run_.positions)
        pred = predictions(target.posterior, run_.positions["net"], target.probe)
        out["ess_lp"] = ess(lp)
        out["ess_f"] = float(np.median([ess(pred[..., j]) for j in range(pred.shape[-1])]))
        ens = bo.Ensemble(
            run_.positions, {}, {}, target.posterior.model, target.posterior.data.target_shape
        )
        test = target.test
        out["nll"] = float(bo.metrics.nll(ens.predict(test.inputs).log_prob(test.targets)))
    else:
        out["ess_lp"] = ess(run_.lp)
        scalars = []
        for v in jax.tree.leaves(run_.positions):
            v = np.asarray(v)
            scalars += [ess(c) for c in v.reshape(v.shape[0], v.shape[1], -1).transpose(2, 0, 1)]
        out["ess_f"] = float(np.median(scalars))
    for k in ("lp", "f"):
        out[f"ess_{k}_per_grad"] = out[f"ess_{k}"] / run_.grads
        out[f"ess_{k}_per_s"] = out[f"ess_{k}"] / run_.seconds
    return out


# -- the benchmark ------------------------------------------------------------------------------


def calibrate(target, spec, seed, inits):
    """The number of draws that fits the budget, from a first call of one chunk: it compiles,
    and its warm-up and chunk times with the compile time JAX reports subtracted are the
    pilot's (no separate pilot call: on a shared 2-core CPU the time goes to the measurement)."""
    t0 = time.perf_counter()
    pilot = run(target, spec, seed, inits, spec.chunk)
    cold = time.perf_counter() - t0
    per_chunk = max(pilot.draws_s, 1e-6)
    chunks = math.floor((target.budget - pilot.warmup_s) / per_chunk)
    chunks = max(1, min(chunks, spec.max_draws // spec.chunk))
    log(
        f"  {target.name} {spec.label}: cold call {cold:.1f}s, warm-up {pilot.warmup_s:.2f}s, "
        f"{per_chunk:.3f}s per chunk of {spec.chunk} -> {chunks * spec.chunk} draws"
    )
    return chunks * spec.chunk, {"cold_s": cold, "pilot_warmup_s": pilot.warmup_s}


def bench_target(target):
    log(f"{target.name}: {target.num_params:,} parameters, budget {target.budget:g}s")
    inits = target.starts(100)
    draws, cold = {}, {}
    for spec in target.specs:
        draws[spec.label], cold[spec.label] = calibrate(target, spec, 200, inits)
    results = {spec.label: [] for spec in target.specs}
    for r in range(target.repeats):
        inits = target.starts(300 + r)
        for spec in target.specs:
            out = evaluate(target, run(target, spec, 400 + r, inits, draws[spec.label]))
            results[spec.label].append(out)
            log(
                f"  {target.name} repeat {r} {spec.label}: {out['seconds']:.1f}s "
                f"({out['warmup_s']:.1f} warm-up), {out['draws']} draws, {out['grads']:.0f} grads, "
                f"ESS lp {out['ess_lp']:.1f} f {out['ess_f']:.1f}"
                + (f", NLL {out['nll']:.3f}" if "nll" in out else "")
            )
    return results, cold


# -- the report ---------------------------------------------------------------------------------


def med(rows, key):
    values = [r[key] for r in rows if key in r]
    if not values:
        return float("nan")
    finite = [v for v in values if np.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def spread(rows, key):
    values = [r[key] for r in rows if key in r and np.isfinite(r[key])]
    if len(values) < 2:
        return ""
    return f" ({min(values):.3g}-{max(values):.3g})"


def fmt(x, digits=3):
    if not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def table(target, results):
    net = target.kind == "net"
    f_name = "f(probe)" if net else "params (median)"
    head = (
        "| sampler | s (warm-up + draws) | draws / chain | grads (draws) | ESS lp | ESS "
        f"{f_name} | ESS/1k grad lp | ESS/1k grad f | ESS/s lp | ESS/s f |"
        + (" test NLL |" if net else "")
    )
    lines = [head, "|---" + "|---:" * (9 + net) + "|"]
    for spec in target.specs:
        rows = results[spec.label]
        lines.append(
            f"| {spec.label} | {med(rows, 'seconds'):.1f} ({med(rows, 'warmup_s'):.1f} + "
            f"{med(rows, 'draws_s'):.1f}) | {rows[0]['draws']:,} | {fmt(med(rows, 'grads'))} | "
            f"{fmt(med(rows, 'ess_lp'))}{spread(rows, 'ess_lp')} | {fmt(med(rows, 'ess_f'))}"
            f"{spread(rows, 'ess_f')} | {fmt(1e3 * med(rows, 'ess_lp_per_grad'))} | "
            f"{fmt(1e3 * med(rows, 'ess_f_per_grad'))} | {fmt(med(rows, 'ess_lp_per_s'))} | "
            f"{fmt(med(rows, 'ess_f_per_s'))} |"
            + (f" {med(rows, 'nll'):.3f}{spread(rows, 'nll')} |" if net else "")
        )
    return lines


def settings_lines(target, results):
    lines = []
    for spec in target.specs:
        rows = results[spec.label]
        bits = [f"warm-up {spec.num_warmup}", f"thinning {spec.thinning}"]
        for k, name in (
            ("step_size", "step size at the kept draws" if "SGLD" in spec.label else "step size"),
            ("L", "L"),
            ("n_steps", "grads/draw"),
            ("divergences", "divergences"),
            ("stopped", "stopped chains"),
        ):
            if k in rows[0]:
                bits.append(f"{name} {fmt(med(rows, k))}")
        lines.append(f"  - {spec.label}: `{spec.describe()}`; " + ", ".join(bits))
    return lines


def winner(target, results, key):
    best = max(target.specs, key=lambda s: np.nan_to_num(med(results[s.label], key), nan=-1))
    return best.label, med(results[best.label], key)


def write_report(path, targets, all_results, elapsed, load, quick):
    L = [
        START,
        "## Samplers side by side: ESS per gradient, ESS/s, test NLL at equal wall time",
        "",
    ]
    w = L.append
    w(machine_line() + (" (--quick: tiny sizes, not the benchmark)" if quick else ""))
    w("")
    w(
        f"Written by `benchmarks/samplers.py` (the whole script: {elapsed / 60:.1f} min; "
        f"load average at start / end {load[0]:.1f} / {load[1]:.1f}: other agents' work shared "
        "the 2 cores, so absolute times are inflated; the samplers of a target ran interleaved, "
        "so they shared the same load). Regenerate with "
        "`.venv/bin/python benchmarks/samplers.py`."
    )
    w("")
    w(
        "Method (details in the script's docstring): each sampler gets the same wall-clock "
        "budget per target (compile excluded; draws calibrated from a one-chunk pilot, the "
        "time actually used is reported); gradients are full-data gradient evaluations of the "
        "draws phase only (warm-up excluded for all; SGLD's minibatch gradients as full-data "
        "equivalents, steps x batch / N); ESS is `arviz_stats.ess` (bulk) over all chains, "
        '"f" the median over 5 probe inputs of f(x), "lp" the log density; ESS/s divides '
        "by warm-up + draws time. Columns are medians over the repeats, with the range in "
        "brackets. Test NLL: the mixture predictive of all kept draws, "
        "`bo.metrics.nll(ensemble.predict(x_test).log_prob(y_test))`."
    )
    w("")
    for target in targets:
        results, cold = all_results[target.name]
        n = target.notes
        w(f"### {target.name}")
        w("")
        if target.kind == "net":
            w(
                f"`eqx.nn.MLP(4, 1, {n['width']}, depth=2, tanh)`: **{target.num_params:,} "
                f"weights**, N = {n['N']} training and {n['N_test']} test points, "
                f"{target.num_chains} chains from MAP starts ({n['map_steps']} Adam steps + "
                f"jitter 0.01), budget **{target.budget:g} s** per sampler, "
                f"{target.repeats} repeat(s). NUTS (both) max tree depth {n['depth']}; HMC "
                f"{n['hmc_steps']} leapfrog steps; SGLD batch {n['batch']}, cyclical "
                f"schedule with cycle {n['cycle']} steps (exploration fraction 0.5), peak step "
                f"size 1 / lambda_max = {n['sgld_eps']:.3g} (lambda_max = {n['lambda_max']:.3g},"
                f" power iteration on the Hessian of -log p at a MAP start), warm-up "
                f"{n['sgld_warmup_cycles']} cycles. Adjusted MCLMC starts its tuner at step "
                f"size {ADJUSTED_STEP_SIZE} (its default 0.2 sqrt(d) makes the tuner slow here: "
                "see the script)."
            )
        else:
            w(
                f"posteriordb `{n['name']}`: {target.num_params} unconstrained parameters, "
                f"{target.num_chains} chains from prior draws, budget **{target.budget:g} s** "
                f"per sampler, {target.repeats} repeat(s). SGLD skipped (no minibatches in a "
                "NumPyro model); no test set."
                + (
                    f" NUTS (both) and HMC target acceptance {n['accept']} (the reference's "
                    "adapt_delta, as in tests/test_posteriordb_nuts.py)."
                    if "accept" in n
                    else ""
                )
            )
        w("")
        L.extend(table(target, results))
        w("")
        w("Settings and tuned values (medians):")
        w("")
        L.extend(settings_lines(target, results))
        w(
            "  - first call (compile + warm-up + one chunk) / its warm-up without compile, s: "
            + ", ".join(
                f"{label} {c['cold_s']:.1f} / {c['pilot_warmup_s']:.1f}"
                for label, c in cold.items()
            )
        )
        w("")
        lp_best, f_best = (
            winner(target, results, "ess_lp_per_s"),
            winner(target, results, "ess_f_per_s"),
        )
        g_best = winner(target, results, "ess_f_per_grad")
        line = (
            f"Best ESS/s: lp {lp_best[0]} ({fmt(lp_best[1])}), f {f_best[0]} ({fmt(f_best[1])}); "
            f"best ESS per gradient (f): {g_best[0]} ({fmt(1e3 * g_best[1])} per 1k)."
        )
        if target.kind == "net":
            nll_best = min(
                target.specs, key=lambda s: np.nan_to_num(med(results[s.label], "nll"), nan=1e30)
            )
            line += (
                f" Lowest test NLL: {nll_best.label} ({med(results[nll_best.label], 'nll'):.3f})."
            )
        w(line)
        w("")
    w(kept_reading(path))
    w(END)
    write_section(path, "\n".join(L), START, END)


READING_START, READING_END = "<!-- samplers:reading:start -->", "<!-- samplers:reading:end -->"


def kept_reading(path):
    """The hand-written reading of the results (between its own markers inside this section),
    kept from the file's previous version; an empty block where there was none."""
    old = path.read_text() if path.exists() else ""
    if START in old and READING_START in old and READING_END in old:
        section = old.split(START, 1)[1].split(END, 1)[0]
        if READING_START in section and READING_END in section:
            body = section.split(READING_START, 1)[1].split(READING_END, 1)[0]
            return READING_START + body + READING_END
    return READING_START + "\n" + READING_END


# -- configuration ------------------------------------------------------------------------------


def configs(quick):
    if quick:
        net = dict(
            chains=2,
            budget=1.0,
            repeats=1,
            map_steps=200,
            depth=4,
            hmc_steps=8,
            warmup=20,
            warmup_mclmc=100,
            warmup_adj=100,
            thin_mclmc=2,
            thin_adj=1,
            cycle=20,
            sgld_warmup_cycles=1,
            batch=16,
            chunk_nuts=5,
            chunk_mclmc=10,
            chunk_sgld=5,
            max_draws=200,
        )
        nets = [("MLP 1k (quick: width 8)", 8, 64, 64, net)]
        pdb = dict(
            chains=2,
            budget=1.0,
            repeats=1,
            warmup=50,
            warmup_mclmc=200,
            chunk_nuts=20,
            chunk_mclmc=50,
            max_draws=500,
        )
        pdb["samplers"] = ("MCLMC", "NumPyro NUTS")
        pdbs = [("eight_schools_noncentered", "eight_schools_noncentered", pdb)]
        return nets, pdbs
    base = dict(chains=2, map_steps=1000, hmc_steps=16, batch=32, sgld_warmup_cycles=2, cycle=200)
    nets = [
        (
            "MLP 1k",
            28,
            512,
            512,
            dict(
                base,
                budget=20.0,
                repeats=2,
                depth=8,
                warmup=100,
                warmup_mclmc=1000,
                warmup_adj=500,
                thin_mclmc=5,
                thin_adj=2,
                chunk_nuts=10,
                chunk_mclmc=50,
                chunk_sgld=10,
                max_draws=5000,
            ),
        ),
        (
            "MLP 10k",
            97,
            512,
            512,
            dict(
                base,
                budget=40.0,
                repeats=2,
                depth=7,
                warmup=100,
                warmup_mclmc=800,
                warmup_adj=400,
                thin_mclmc=10,
                thin_adj=4,
                chunk_nuts=10,
                chunk_mclmc=20,
                chunk_sgld=10,
                max_draws=1000,
            ),
        ),
        (
            "MLP 100k",
            313,
            256,
            256,
            dict(
                base,
                budget=60.0,
                repeats=1,
                depth=5,
                warmup=40,
                warmup_mclmc=300,
                warmup_adj=200,
                thin_mclmc=20,
                thin_adj=8,
                chunk_nuts=5,
                chunk_mclmc=10,
                chunk_sgld=10,
                max_draws=200,
            ),
        ),
    ]
    pdb = dict(
        chains=4,
        budget=3.0,
        repeats=3,
        warmup=500,
        warmup_mclmc=1000,
        chunk_nuts=100,
        chunk_mclmc=200,
        max_draws=20_000,
    )
    pdbs = [
        ("eight_schools_noncentered", "eight_schools_noncentered", dict(pdb, accept=0.95)),
        ("kidiq", "kidiq", dict(pdb)),
    ]
    return nets, pdbs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report path (default RESULTS.md; with --quick a temporary file)",
    )
    parser.add_argument("--only", default=None, help="comma-separated target names to run")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = (
            Path(tempfile.gettempdir()) / "bayesover-samplers-quick.md" if args.quick else RESULTS
        )
    start, load0 = time.time(), os.getloadavg()[0]
    nets, pdbs = configs(args.quick)
    targets = []
    for label, width, n, n_test, net_cfg in nets:
        if args.only is None or label in args.only.split(","):
            targets.append(net_target(None, label, width, n, n_test, net_cfg))
    for label, stem, pdb_cfg in pdbs:
        if args.only is None or label in args.only.split(","):
            targets.append(pdb_target(None, label, stem, pdb_cfg))
    all_results = {}
    for target in targets:
        all_results[target.name] = bench_target(target)
    elapsed = time.time() - start
    with open(Path(tempfile.gettempdir()) / "bayesover-samplers-results.json", "w") as f:
        json.dump({k: v for k, v in all_results.items()}, f, default=float)  # a safety copy
    write_report(args.out, targets, all_results, elapsed, (load0, os.getloadavg()[0]), args.quick)
    log(f"wrote {args.out} ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
