"""Side-by-side timings of bayesover's samplers against hand-written baselines.

Run from the repository root (about ten minutes on a quiet 2-core CPU):

    .venv/bin/python benchmarks/sampling.py              # writes benchmarks/RESULTS.md
    .venv/bin/python benchmarks/sampling.py --quick      # tiny sizes: a smoke test only

One Bayesian network for everything: `eqx.nn.MLP(4, 1, width_size=48, depth=2, tanh)`, i.e.
4*48+48 + 48*48+48 + 48+1 = 2,641 weights, prior N(0, 1) on every weight, Gaussian likelihood
with fixed noise 0.1, on teacher-student regression data (a small random tanh MLP teacher,
x ~ N(0, I_4)). Full-batch samplers (NUTS) see N = 100 points; SG-MCMC sees N = 1,000 points.

Benchmarks (ratios are measured side by side, in the same process, repeats interleaved):

1. `bo.NUTS` through `bo.sample` (1 chain) vs a hand-written BlackJAX loop
   (`blackjax.window_adaptation` + the `blackjax.nuts` kernel in a `jax.lax.scan`), the same
   warm-up and draw counts, the same keys, initial point and log density.
2. `bo.NUTS` vs NumPyro's NUTS (`random_eqx_module(..., scope_divider="__")`, same priors and
   likelihood, `chain_method="vectorized"`, the same initial points): ESS per second of the
   log-density trace and of the predictions at a few probe inputs.
3. `bo.SGLD` steps per second vs a plain optax SGD loop over the same minibatch indices.
4. Chains 1 -> 4 -> 16 (SGLD and NUTS): time per step (transition) per chain.

Compile time is excluded, for both sides of every comparison: each configuration is called
once untimed (it compiles; that cold compile time is reported separately), then timed
`--repeats` times with new seeds and initial points. `bo.sample` and the hand-written loops
reuse their compiled programs on later calls; NumPyro's `MCMC.run` traces, lowers and compiles
again at every call (even on the same `MCMC` object), so from every timed call the time JAX
reports for tracing, lowering and compiling inside it (`jax.monitoring` time spans, their
union) is subtracted. A fresh persistent compilation cache (a temporary folder) keeps NumPyro's
recompiles short; it does not change the run time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="bo-bench-jax-cache-"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

import arviz_stats  # noqa: E402
import blackjax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import optax  # noqa: E402
from _sections import cpu_name  # noqa: E402
from blackjax.adaptation.base import get_filter_adapt_info_fn  # noqa: E402
from blackjax.sgmcmc import diffusions  # noqa: E402
from numpyro.contrib.module import random_eqx_module  # noqa: E402

import bayesover as bo  # noqa: E402

HERE = Path(__file__).resolve().parent
NOISE = 0.1
SCOPE = "net__"

# -- timing -----------------------------------------------------------------------------------

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class CompileClock:
    """Collects the time spans JAX reports for tracing, lowering and XLA compilation."""

    def __init__(self):
        self.spans: list[tuple[float, float]] = []
        jax.monitoring.register_event_time_span_listener(self._record)

    def _record(self, event, start_time, end_time, **kwargs):
        if event in _COMPILE_EVENTS:
            self.spans.append((start_time, end_time))

    def time(self, fn):
        """Run `fn()`, block on its result; return (result, wall seconds, compile seconds)."""
        self.spans.clear()
        start = time.time()
        result = fn()
        jax.block_until_ready(result)
        end = time.time()
        return result, end - start, _union_length(self.spans, start, end)


def _union_length(spans, lo, hi):
    total, reach = 0.0, lo
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in spans):
        if b <= reach:
            continue
        total += b - max(a, reach)
        reach = b
    return total


CLOCK = CompileClock()


class Timing:
    """One configuration: a cold first call (compiles, untimed), then timed repeats."""

    def __init__(self):
        self.run: list[float] = []
        self.compile_in_timed: list[float] = []
        self.cold_compile = float("nan")
        self.extra: dict[str, list[float]] = {}

    def cold(self, fn):
        """The first call: it compiles; only its compile time is kept. Returns its result."""
        result, _, compile_time = CLOCK.time(fn)
        self.cold_compile = compile_time
        return result

    def timed(self, fn):
        """A timed call: wall time minus any compile time JAX reports inside it."""
        result, wall, compile_time = CLOCK.time(fn)
        self.run.append(wall - compile_time)
        self.compile_in_timed.append(compile_time)
        return result

    def note(self, **extra):
        for k, v in extra.items():
            self.extra.setdefault(k, []).append(float(v))

    @property
    def median(self):
        return statistics.median(self.run)

    def med(self, name):
        return statistics.median(self.extra[name])


# -- the network ------------------------------------------------------------------------------


def make_net(key):
    return eqx.nn.MLP(4, 1, 48, 2, activation=jnp.tanh, key=key)


def make_data(num_points, seed):
    teacher = eqx.nn.MLP(4, 1, 16, 1, activation=jnp.tanh, key=jax.random.key(1000))
    return bo.data.teacher_student(
        jax.random.key(seed), teacher, num_points, input_shape=4, noise_scale=NOISE
    )


def make_posterior(net, data):
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(NOISE))
    return bo.Posterior(model, data)


def stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def prior_positions(posterior, seed, num_chains):
    keys = jax.random.split(jax.random.key(seed), num_chains)
    return stack([posterior.initial_position(k) for k in keys])


def predictions(posterior, nets, probe):
    """f(probe) for draws `nets` with leading (chain, draw) axes -> (chain, draw, probe)."""
    model = posterior.model

    def one(net):
        return jax.vmap(lambda x: model.apply(net, x)[0])(probe)

    return np.asarray(jax.jit(jax.vmap(jax.vmap(one)))(nets))


def lp_trace(posterior, positions):
    return np.asarray(jax.jit(jax.vmap(jax.vmap(posterior.logdensity)))(positions))


# -- baselines --------------------------------------------------------------------------------


def blackjax_nuts_loop(logdensity, num_warmup, num_draws, max_tree_depth):
    """Hand-written BlackJAX NUTS: window adaptation, then the kernel in a scan. Keys derived
    as `bo.sample` derives them for chain 0, so both runs start from the same randomness."""
    kernel = blackjax.nuts.build_kernel()

    def run(key, position):
        chain_key = jax.random.split(key, 1)[0]
        warmup_key = jax.random.fold_in(chain_key, 1)
        sample_key = jax.random.fold_in(chain_key, 2)
        adaptation = blackjax.window_adaptation(
            blackjax.nuts,
            logdensity,
            max_num_doublings=max_tree_depth,
            initial_step_size=1.0,
            target_acceptance_rate=0.8,
            adaptation_info_fn=get_filter_adapt_info_fn(),
        )
        (result, _) = adaptation.run(warmup_key, position, num_warmup)
        step_size = result.parameters["step_size"]
        inverse_mass_matrix = result.parameters["inverse_mass_matrix"]

        def body(state, i):
            state, info = kernel(
                jax.random.fold_in(sample_key, i),
                state,
                logdensity,
                step_size,
                inverse_mass_matrix,
                max_num_doublings=max_tree_depth,
            )
            return state, (state.position, info.num_integration_steps, info.is_divergent)

        _, (positions, n_steps, diverging) = jax.lax.scan(body, result.state, jnp.arange(num_draws))
        return positions, n_steps, diverging

    return jax.jit(run)


def sgd_loop(posterior, step_size, *, permute=None, noise=False):
    """A plain optax SGD loop: the same minibatch estimate, a scan over given indices.

    Diagnostic variants (not baselines): `permute=(data_key, batch_size)` recomputes each
    step's indices from a fresh permutation of all N points, as `bo.SGLD` does; `noise=True`
    makes it a hand-written SGLD loop: BlackJAX's overdamped Langevin step (the one `bo.SGLD`
    uses) instead of the optax update, the noise sqrt(2 eps) xi drawn as one flat vector.
    """
    optimizer = optax.sgd(step_size)
    langevin = diffusions.overdamped_langevin()

    def loss(position, indices):
        return -posterior.logdensity_estimate(position, posterior.data.take(indices))

    def indices_at(t, given):
        if permute is None:
            return given
        data_key, batch_size = permute
        per_epoch = posterior.num_data // batch_size
        epoch, within = jnp.divmod(t, per_epoch)
        key = jax.random.fold_in(jax.random.wrap_key_data(data_key), epoch)
        order = jax.random.permutation(key, posterior.num_data)
        return jax.lax.dynamic_slice(order, (within * batch_size,), (batch_size,))

    def run(position, indices):
        noise_key = jax.random.key(0)

        def step(carry, xs):
            position, opt_state = carry
            t, idx = xs
            grads = jax.grad(loss)(position, indices_at(t, idx))
            if noise:
                ascent = jax.tree.map(jnp.negative, grads)
                key = jax.random.fold_in(noise_key, t)
                return (langevin(key, position, ascent, step_size), opt_state), None
            updates, opt_state = optimizer.update(grads, opt_state, position)
            return (optax.apply_updates(position, updates), opt_state), None

        xs = (jnp.arange(indices.shape[0]), indices)
        (position, _), _ = jax.lax.scan(step, (position, optimizer.init(position)), xs)
        return position

    return jax.jit(run)


def sgld_indices(num_data, batch_size, num_steps, data_key):
    """The minibatch indices `bo.SGLD` draws (epoch-wise permutations without replacement)."""
    per_epoch = num_data // batch_size
    num_epochs = -(-num_steps // per_epoch)
    base = jax.random.wrap_key_data(data_key)
    orders = jax.vmap(
        lambda e: jax.random.permutation(jax.random.fold_in(base, e), num_data)[
            : per_epoch * batch_size
        ]
    )(jnp.arange(num_epochs))
    return orders.reshape(-1, batch_size)[:num_steps]


def numpyro_model(net):
    def model(x, y):
        module = random_eqx_module("net", net, prior=dist.Normal(0.0, 1.0), scope_divider="__")
        numpyro.sample("y", dist.Normal(jax.vmap(module)(x)[:, 0], NOISE), obs=y)

    return model


def _leaf_names(params):
    paths, _ = jax.tree_util.tree_flatten_with_path(params)
    return [SCOPE + jax.tree_util.keystr(p)[1:] for p, _ in paths]


def to_numpyro(posterior, positions):
    """bayesover positions -> NumPyro site dict (prior N(0, 1): the same coordinates)."""
    leaves = jax.tree.leaves(positions["net"])
    return dict(zip(_leaf_names(posterior.model.params), leaves, strict=True))


def from_numpyro(posterior, sites):
    """NumPyro site dict (leading axes kept) -> bayesover position pytree."""
    params = posterior.model.params
    leaves = [sites[name] for name in _leaf_names(params)]
    return {
        "net": jax.tree.unflatten(jax.tree.structure(params), leaves),
        "prior": {},
        "likelihood": {},
    }


# -- the benchmarks ---------------------------------------------------------------------------


def nuts_run(posterior, num_chains, num_warmup, num_draws, depth, seed, init):
    return bo.sample(
        posterior,
        bo.NUTS(max_tree_depth=depth),
        key=jax.random.key(seed),
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_draws=num_draws,
        init=init,
        progress=False,
    )


def sgld_run(posterior, cfg, num_chains, num_steps, seed, init):
    thinning = cfg.sgld_thinning
    return bo.sample(
        posterior,
        bo.SGLD(step_size=cfg.sgld_step_size, batch_size=cfg.batch_size),
        key=jax.random.key(seed),
        num_chains=num_chains,
        num_warmup=0,
        num_draws=num_steps // thinning,
        thinning=thinning,
        init=init,
        progress=False,
    )


def one_position(posterior, seed):
    return jax.tree.map(lambda x: x[0], prior_positions(posterior, seed, 1))


def bench_nuts_vs_blackjax(cfg, posterior, log):
    W, D, depth = cfg.nuts_warmup, cfg.nuts_draws, cfg.depth
    loop = blackjax_nuts_loop(posterior.logdensity, W, D, depth)
    bo_t, bj_t = Timing(), Timing()
    init = one_position(posterior, 199)
    bo_t.cold(lambda: nuts_run(posterior, 1, W, D, depth, 99, init))
    bj_t.cold(lambda: loop(jax.random.key(99), init))
    log(f"  [1] cold compile: bo {bo_t.cold_compile:.1f}s, blackjax {bj_t.cold_compile:.1f}s")
    for r in range(cfg.repeats_nuts1):
        seed, init = 100 + r, one_position(posterior, 200 + r)
        ens = bo_t.timed(
            lambda seed=seed, init=init: nuts_run(posterior, 1, W, D, depth, seed, init)
        )
        bo_t.note(
            n_steps=np.asarray(ens.stats["n_steps"]).sum(),
            n_steps_mean=np.asarray(ens.stats["n_steps"]).mean(),
            divergences=np.asarray(ens.stats["diverging"]).sum(),
        )
        out = bj_t.timed(lambda seed=seed, init=init: loop(jax.random.key(seed), init))
        bj_t.note(n_steps=np.asarray(out[1]).sum(), divergences=np.asarray(out[2]).sum())
        log(
            f"  [1] repeat {r}: bo {bo_t.run[-1]:.2f}s ({bo_t.extra['n_steps'][-1]:.0f} "
            f"leapfrog steps in the draws), blackjax {bj_t.run[-1]:.2f}s "
            f"({bj_t.extra['n_steps'][-1]:.0f})"
        )
    return {"bo": bo_t, "blackjax": bj_t}


def bench_nuts_vs_numpyro(cfg, posterior, net, probe, log):
    W, D, depth, C = cfg.ess_warmup, cfg.ess_draws, cfg.depth, 2
    model = numpyro_model(net)
    x, y = posterior.data.inputs, posterior.data.targets

    # The two log densities must agree up to a constant.
    offsets = []
    for seed in (1, 2):
        p = one_position(posterior, seed)
        u = numpyro.infer.util.potential_energy(model, (x, y), {}, to_numpyro(posterior, p))
        offsets.append(float(posterior.logdensity(p)) + float(u))
    assert abs(offsets[0] - offsets[1]) < 1e-3 * max(1.0, abs(offsets[0])), offsets

    def run_numpyro(seed, inits):
        mcmc = numpyro.infer.MCMC(
            numpyro.infer.NUTS(model, max_tree_depth=depth, target_accept_prob=0.8),
            num_warmup=W,
            num_samples=D,
            num_chains=C,
            chain_method="vectorized",
            progress_bar=False,
        )
        mcmc.run(
            jax.random.key(seed),
            x,
            y,
            init_params=to_numpyro(posterior, inits),
            extra_fields=("num_steps", "diverging", "adapt_state.step_size"),
        )
        return mcmc.get_samples(group_by_chain=True), mcmc.get_extra_fields(group_by_chain=True)

    def diagnose(timing, positions, n_steps, diverging, step_size):
        lp = lp_trace(posterior, positions)
        pred = predictions(posterior, positions["net"], probe)
        ess_lp, ess_pred = float(arviz_stats.ess(lp)), float(np.median(arviz_stats.ess(pred)))
        timing.note(
            ess_lp=ess_lp,
            ess_pred=ess_pred,
            ess_lp_per_s=ess_lp / timing.run[-1],
            ess_pred_per_s=ess_pred / timing.run[-1],
            n_steps=np.asarray(n_steps).mean(),
            divergences=np.asarray(diverging).sum(),
            step_size=np.asarray(step_size).mean(),
        )

    bo_t, np_t = Timing(), Timing()
    inits = prior_positions(posterior, 299, C)
    bo_t.cold(lambda: nuts_run(posterior, C, W, D, depth, 399, inits))
    np_t.cold(lambda: run_numpyro(399, inits))
    log(f"  [2] cold compile: bo {bo_t.cold_compile:.1f}s, numpyro {np_t.cold_compile:.1f}s")
    for r in range(cfg.first_repeat, cfg.first_repeat + cfg.repeats_ess):
        seed, inits = 400 + r, prior_positions(posterior, 300 + r, C)
        ens = bo_t.timed(
            lambda seed=seed, inits=inits: nuts_run(posterior, C, W, D, depth, seed, inits)
        )
        diagnose(
            bo_t, ens.params, ens.stats["n_steps"], ens.stats["diverging"], ens.stats["step_size"]
        )
        samples, extra = np_t.timed(lambda seed=seed, inits=inits: run_numpyro(seed, inits))
        diagnose(
            np_t,
            from_numpyro(posterior, samples),
            extra["num_steps"],
            extra["diverging"],
            extra["adapt_state.step_size"],
        )
        log(
            f"  [2] repeat {r}: bo {bo_t.run[-1]:.1f}s, ESS lp {bo_t.extra['ess_lp'][-1]:.1f} "
            f"pred {bo_t.extra['ess_pred'][-1]:.1f}; numpyro {np_t.run[-1]:.1f}s "
            f"(+{np_t.compile_in_timed[-1]:.1f}s recompiling), ESS lp "
            f"{np_t.extra['ess_lp'][-1]:.1f} pred {np_t.extra['ess_pred'][-1]:.1f}"
        )
    return {"bo": bo_t, "numpyro": np_t, "logdensity_offsets": offsets}


def bench_sgld_vs_sgd(cfg, posterior, log):
    steps = cfg.sgld_steps

    def data_key_for(seed):
        # bo.SGLD's data key for chain 0: key_data(fold_in(chain_key, 0))
        chain_key = jax.random.split(jax.random.key(seed), 1)[0]
        return jax.random.key_data(jax.random.fold_in(chain_key, 0))

    def indices_for(seed):
        return jax.block_until_ready(
            sgld_indices(posterior.num_data, cfg.batch_size, steps, data_key_for(seed))
        )

    eps = cfg.sgld_step_size
    loops = {
        "sgd": sgd_loop(posterior, eps),
        # diagnostics: what the SGD loop costs with each of SGLD's extra pieces of work
        "sgd_permute": sgd_loop(posterior, eps, permute=(data_key_for(499), cfg.batch_size)),
        "sgd_noise": sgd_loop(posterior, eps, noise=True),
    }
    times = {name: Timing() for name in ("bo", *loops)}
    init = one_position(posterior, 599)
    indices = indices_for(499)
    times["bo"].cold(lambda: sgld_run(posterior, cfg, 1, steps, 499, init))
    for name, loop in loops.items():
        times[name].cold(lambda loop=loop: loop(init, indices))
    log(
        f"  [3] cold compile: bo {times['bo'].cold_compile:.1f}s, "
        f"sgd {times['sgd'].cold_compile:.1f}s"
    )
    for r in range(cfg.repeats):
        seed, init = 500 + r, one_position(posterior, 600 + r)
        ens = times["bo"].timed(
            lambda seed=seed, init=init: sgld_run(posterior, cfg, 1, steps, seed, init)
        )
        assert bool(np.all(np.asarray(ens.chain_ok()))), "SGLD chain stopped: lower the step size"
        indices = indices_for(seed)
        for name, loop in loops.items():
            times[name].timed(lambda loop=loop, init=init, indices=indices: loop(init, indices))
        log(
            f"  [3] repeat {r}: steps/s "
            + ", ".join(f"{name} {steps / t.run[-1]:,.0f}" for name, t in times.items())
        )
    return times


def bench_chains(cfg, nuts_posterior, sgld_posterior, log, r1=None):
    results = {"sgld": {}, "nuts": {}}
    for C in cfg.chains:
        t = Timing()
        t.cold(
            lambda C=C: sgld_run(
                sgld_posterior,
                cfg,
                C,
                cfg.chain_sgld_steps,
                799,
                prior_positions(sgld_posterior, 699, C),
            )
        )
        for r in range(cfg.repeats):
            inits = prior_positions(sgld_posterior, 700 + r, C)
            t.timed(
                lambda C=C, r=r, inits=inits: sgld_run(
                    sgld_posterior, cfg, C, cfg.chain_sgld_steps, 800 + r, inits
                )
            )
        results["sgld"][C] = t
        log(f"  [4] SGLD {C} chains: {t.median:.2f}s for {cfg.chain_sgld_steps} steps/chain")
    W, D = cfg.chain_nuts_warmup, cfg.chain_nuts_draws
    for C in cfg.chains:
        if C == 1 and r1 is not None and (W, D) == (cfg.nuts_warmup, cfg.nuts_draws):
            results["nuts"][C] = r1["bo"]  # the same configuration, measured in benchmark 1
            log(f"  [4] NUTS 1 chain: from benchmark 1, {r1['bo'].median:.2f}s")
            continue
        t = Timing()
        t.cold(
            lambda C=C: nuts_run(
                nuts_posterior, C, W, D, cfg.depth, 999, prior_positions(nuts_posterior, 899, C)
            )
        )
        for r in range(cfg.repeats):
            inits = prior_positions(nuts_posterior, 900 + r, C)
            ens = t.timed(
                lambda C=C, r=r, inits=inits: nuts_run(
                    nuts_posterior, C, W, D, cfg.depth, 1000 + r, inits
                )
            )
            t.note(n_steps_mean=np.asarray(ens.stats["n_steps"]).mean())
        results["nuts"][C] = t
        log(f"  [4] NUTS {C} chains: {t.median:.2f}s (cold compile {t.cold_compile:.1f}s)")
    return results


# -- the report -------------------------------------------------------------------------------


def machine_details():
    cpu = cpu_name()
    import arviz

    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "devices": ", ".join(str(d) for d in jax.devices()),
        "python": platform.python_version(),
        "versions": (
            f"jax {jax.__version__}, blackjax {blackjax.__version__}, numpyro "
            f"{numpyro.__version__}, equinox {eqx.__version__}, optax {optax.__version__}, "
            f"arviz {arviz.__version__}, arviz_stats {arviz_stats.__version__}, "
            f"bayesover {bo.__version__}"
        ),
    }


def goal(ok):
    return "met" if ok else "**missed**"


def write_report(path, cfg, machine, load, elapsed, r1, r2, r3, r4, num_params):
    L = []
    w = L.append
    w("# Sampling benchmarks")
    w("")
    w(
        f"Written by `benchmarks/sampling.py` on {machine['date']}; the whole script ran "
        f"{elapsed / 60:.1f} min. Regenerate with `.venv/bin/python benchmarks/sampling.py`."
    )
    if cfg.quick:
        w("")
        w("**Quick mode (`--quick`): tiny sizes, a smoke test; these numbers mean nothing.**")
    w("")
    w("## Machine")
    w("")
    w(
        f"- CPU: {machine['cpu']} (`/proc/cpuinfo`), {machine['cores']} cores; JAX devices: "
        f"{machine['devices']}"
    )
    w(f"- Python {machine['python']}; {machine['versions']}")
    w(
        f"- Load average (1 min) at start / end: {load[0]:.1f} / {load[1]:.1f}. A load above the "
        "core count means other work shared the CPU: absolute times are then inflated and noisy; "
        "the ratios, measured side by side with repeats interleaved, are the numbers to read."
    )
    w("")
    w("## Set-up")
    w("")
    w(
        f"- Network: `eqx.nn.MLP(4, 1, width_size=48, depth=2, activation=tanh)`, {num_params:,} "
        f"weights, prior N(0, 1) on every weight, Gaussian likelihood with fixed noise {NOISE}."
    )
    w(
        f"- Data: teacher-student regression (`bo.data.teacher_student`, x ~ N(0, I_4), a "
        f"4-16-1 tanh teacher); N = {cfg.n_full} for NUTS (full batch), N = {cfg.n_sg} for "
        f"SG-MCMC (batch size {cfg.batch_size})."
    )
    w(
        f"- Each number is the **median of {cfg.repeats} repeats** ({cfg.repeats_nuts1} for "
        f"benchmark 1, {cfg.repeats_ess} for benchmark 2); "
        "each repeat has new seeds and initial points, the same for both sides of a comparison."
    )
    w(
        "- **Compile time is excluded, for both sides.** Every configuration is called once "
        "untimed (its cold compile time is reported), then timed. `bo.sample` and the "
        "hand-written loops reuse their compiled programs; NumPyro's `MCMC.run` lowers and "
        "compiles again at every call, so from each timed call the time JAX reports for "
        "tracing, lowering and compiling inside it (`jax.monitoring` spans) is subtracted "
        "(zero for the others). Results are blocked on (`jax.block_until_ready`)."
    )
    w("")

    # 1
    bo_t, bj = r1["bo"], r1["blackjax"]
    ratio1 = bo_t.median / bj.median
    w("## 1. `bo.NUTS` vs hand-written BlackJAX NUTS (1 chain)")
    w("")
    w(
        f"{cfg.nuts_warmup} warm-up + {cfg.nuts_draws} draws, max tree depth {cfg.depth}, "
        "`blackjax.window_adaptation` (diagonal mass matrix) then the `blackjax.nuts` kernel in a "
        "`jax.lax.scan`; the same keys (derived as `bo.sample` derives them), initial point and "
        "log density (`posterior.logdensity` on the same position pytree)."
    )
    w("")
    w("| | run time (s) | leapfrog steps in the draws | divergences | cold compile (s) |")
    w("|---|---:|---:|---:|---:|")
    w(
        f"| `bo.sample(..., bo.NUTS(max_tree_depth={cfg.depth}), num_chains=1)` | "
        f"{bo_t.median:.2f} | {bo_t.med('n_steps'):.0f} | {bo_t.med('divergences'):.0f} | "
        f"{bo_t.cold_compile:.1f} |"
    )
    w(
        f"| hand-written BlackJAX loop | {bj.median:.2f} | {bj.med('n_steps'):.0f} | "
        f"{bj.med('divergences'):.0f} | {bj.cold_compile:.1f} |"
    )
    w("")
    per_step = ratio1 / (bo_t.med("n_steps") / bj.med("n_steps"))
    w(
        f"**Wall-time ratio bo / BlackJAX: {ratio1:.2f}** (goal <= 1.10: {goal(ratio1 <= 1.10)}); "
        f"per leapfrog step of the draws {per_step:.2f}; cold compile time ratio "
        f"{bo_t.cold_compile / bj.cold_compile:.1f}."
    )
    if ratio1 > 1.10:
        w("")
        w(
            "Where the rest goes: `bo.sample` checks the initial point, records per-draw "
            "statistics and copies each chunk of draws to the host; one chain per device is "
            "not vmapped (`bayesover.inference._sharding.over_chains`)."
        )
    w("")

    # 2
    b, n = r2["bo"], r2["numpyro"]
    ratio_lp = b.med("ess_lp_per_s") / n.med("ess_lp_per_s")
    ratio_pred = b.med("ess_pred_per_s") / n.med("ess_pred_per_s")
    w("## 2. `bo.NUTS` vs NumPyro NUTS: ESS per second (2 chains)")
    w("")
    w(
        f"{cfg.ess_warmup} warm-up + {cfg.ess_draws} draws per chain, 2 chains, max tree depth "
        f"{cfg.depth} and target acceptance 0.8 for both. NumPyro: `random_eqx_module(..., "
        'scope_divider="__")` with prior N(0, 1) and the same likelihood, `chain_method='
        '"vectorized"` (bayesover vmaps its chains on one device too), the same initial points. '
        "The two log densities differ by a constant only (log p_bo + U_numpyro at two points: "
        f"{r2['logdensity_offsets'][0]:.4f}, {r2['logdensity_offsets'][1]:.4f}). ESS: "
        "`arviz_stats.ess` (bulk) on (chain, draw) arrays of the log density (`posterior."
        f"logdensity` of every draw, for both) and of f(x) at {cfg.num_probes} probe inputs "
        "(median over the probes). ESS/s divides by the run time (warm-up + draws, compile "
        f"excluded); the ratio is of the medians over {cfg.repeats_ess} repeats, each repeat "
        "pairing both samplers on the same seed and initial points."
    )
    w("")
    w(
        "| | run time (s) | mean leapfrog steps / draw | divergences | ESS log density | "
        "ESS/s log density | ESS f(probe) | ESS/s f(probe) | cold compile (s) |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, t in (("`bo.NUTS`", b), ("NumPyro NUTS", n)):
        w(
            f"| {name} | {t.median:.1f} | {t.med('n_steps'):.0f} | {t.med('divergences'):.0f} | "
            f"{t.med('ess_lp'):.1f} | {t.med('ess_lp_per_s'):.2f} | {t.med('ess_pred'):.1f} | "
            f"{t.med('ess_pred_per_s'):.2f} | {t.cold_compile:.1f} |"
        )
    w("")
    w(
        f"**ESS/s ratio bo / NumPyro: log density {ratio_lp:.2f}, predictions {ratio_pred:.2f}** "
        f"(goal >= 1.0: {goal(ratio_lp >= 1.0)} / {goal(ratio_pred >= 1.0)}). Run-time ratio "
        f"bo / NumPyro {b.median / n.median:.2f}."
    )
    w("")
    paired_lp = np.divide(b.extra["ess_lp_per_s"], n.extra["ess_lp_per_s"])
    paired_pred = np.divide(b.extra["ess_pred_per_s"], n.extra["ess_pred_per_s"])
    pooled_lp = (sum(b.extra["ess_lp"]) / sum(b.run)) / (sum(n.extra["ess_lp"]) / sum(n.run))
    pooled_pred = (sum(b.extra["ess_pred"]) / sum(b.run)) / (sum(n.extra["ess_pred"]) / sum(n.run))
    w(
        f"Spread over the {cfg.repeats_ess} paired repeats, ratio bo / NumPyro of ESS/s: log "
        f"density {', '.join(f'{v:.2f}' for v in sorted(paired_lp))}; predictions "
        f"{', '.join(f'{v:.2f}' for v in sorted(paired_pred))}. Pooled (all repeats' ESS over "
        f"all their run time): log density {pooled_lp:.2f}, predictions {pooled_pred:.2f}. "
        "Per-repeat run times, bo: "
        f"{', '.join(f'{v:.1f}' for v in b.run)} s; NumPyro: "
        f"{', '.join(f'{v:.1f}' for v in n.run)} s."
    )
    if min(ratio_lp, ratio_pred) < 1.0:
        w("")
        if b.median <= n.median:
            w(
                "Likely reason for the miss: not speed (bo's run time is the shorter one, at "
                "the same leapfrog steps per draw) but the ESS estimate itself, which varies "
                "by a factor of about 2 between repeats at this run length."
            )
        else:
            w(
                "Likely reason for the miss: vmapped BlackJAX NUTS runs its chains in lock-step "
                "with batched `cond`s (both branches evaluated); NumPyro's vectorised NUTS does "
                "less work per leapfrog step."
            )
    w("")

    # 3
    t = r3
    sps = {k: cfg.sgld_steps / v.median for k, v in t.items()}
    ratio3 = sps["bo"] / sps["sgd"]
    w("## 3. `bo.SGLD` vs a plain optax SGD loop (1 chain)")
    w("")
    w(
        f"{cfg.sgld_steps:,} steps, batch size {cfg.batch_size}, N = {cfg.n_sg}, step size "
        f"{cfg.sgld_step_size:g}; bo keeps every {cfg.sgld_thinning}th draw. The SGD loop "
        "(`optax.sgd` in a `jax.lax.scan`) runs over the same minibatch indices (precomputed, "
        "epoch-wise permutations as `bo.SGLD` draws them) with the gradient of the same "
        "minibatch estimate (`Posterior.logdensity_estimate`). Two diagnostic variants of the "
        "SGD loop add one of SGLD's extra costs each."
    )
    w("")
    w("| | steps / s | run time (s) | cold compile (s) |")
    w("|---|---:|---:|---:|")
    rows = (
        ("bo", "`bo.sample(..., bo.SGLD)`"),
        ("sgd", "optax SGD loop (baseline)"),
        ("sgd_permute", "diagnostic: SGD + a permutation of all N indices per step"),
        ("sgd_noise", "diagnostic: hand-written SGLD (Langevin step, precomputed indices)"),
    )
    for key, label in rows:
        w(f"| {label} | {sps[key]:,.0f} | {t[key].median:.2f} | {t[key].cold_compile:.1f} |")
    w("")
    ceiling = sps["bo"] / sps["sgd_noise"]
    w(
        f"**Steps/s ratio bo.SGLD / SGD: {ratio3:.2f}** (goal >= 0.8: {goal(ratio3 >= 0.8)}); "
        f"bo.SGLD / hand-written SGLD of the same noise: **{ceiling:.2f}**."
    )
    w("")
    w(
        "Where the gap to SGD goes: every SGLD step draws a Gaussian vector the size of the "
        "network (threefry on CPU costs about as much as this net's minibatch gradient), so the "
        "hand-written SGLD row is the ceiling of any SGLD here, and bo.SGLD runs at the ratio "
        "above of it. bo.SGLD draws each epoch's permutation once (`SGMCMCState.order`), so it "
        "does not pay the per-step permutation of the diagnostic row."
    )
    w("")

    # 4
    w("## 4. Chains 1 -> 4 -> 16 (one device, chains vmapped)")
    w("")
    w(
        f"SGLD: {cfg.chain_sgld_steps:,} steps per chain (N = {cfg.n_sg}, batch "
        f"{cfg.batch_size}, thinning {cfg.sgld_thinning}). NUTS: {cfg.chain_nuts_warmup} "
        f"warm-up + {cfg.chain_nuts_draws} draws per chain, max tree depth {cfg.depth}, "
        f"N = {cfg.n_full} (the 1-chain row is benchmark 1's `bo.NUTS`). Time per step per chain "
        "= run time (compile excluded) / steps per chain / chains; for NUTS a step is a "
        "transition (a warm-up step or a draw)."
    )
    w("")
    w(
        "| sampler | chains | run time (s) | ms per step per chain | per-chain speed-up vs 1 chain "
        "| mean leapfrog steps / draw | cold compile (s) |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|")
    for name, res, steps in (
        ("SGLD", r4["sgld"], cfg.chain_sgld_steps),
        ("NUTS", r4["nuts"], cfg.chain_nuts_warmup + cfg.chain_nuts_draws),
    ):
        base = res[cfg.chains[0]].median / steps / cfg.chains[0]
        for C, t in res.items():
            per = t.median / steps / C
            lf = f"{t.med('n_steps_mean'):.0f}" if "n_steps_mean" in t.extra else ""
            w(
                f"| {name} | {C} | {t.median:.2f} | {1e3 * per:.3f} | {base / per:.2f}x | {lf} | "
                f"{t.cold_compile:.1f} |"
            )
    w("")
    w(
        f"On {machine['cores']} cores a batch of chains is one program: per-chain cost falls "
        "only as far as batching makes the arithmetic denser. Vmapped NUTS chains run in "
        "lock-step (each draw waits for the longest trajectory of the batch); with several "
        "devices `bo.sample` gives each device its own block of chains instead."
    )
    w("")
    text = "\n".join(L)
    # Keep the sections other benchmark scripts own (between their marker lines).
    if path.exists():
        old = path.read_text()
        for name in re.findall(r"<!-- (\w+):start -->", old):
            start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
            if end in old:
                text += "\n" + old[old.index(start) : old.index(end) + len(end)] + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# -- main -------------------------------------------------------------------------------------


class Config:
    def __init__(self, quick, repeats):
        self.quick = quick
        self.repeats = repeats
        self.repeats_nuts1 = max(7, repeats)  # benchmark 1 is cheap and its goal tight
        self.repeats_ess = max(5, repeats)  # ESS estimates are noisy: more repeats
        self.first_repeat = 0  # benchmark 2's repeat r uses seed 400 + r, initial points 300 + r
        self.num_probes = 5
        self.depth = 8
        self.n_full = 100
        self.n_sg = 1000
        self.batch_size = 32
        self.sgld_step_size = 1e-6
        self.chains = (1, 4, 16)
        if quick:
            self.depth = 4
            self.nuts_warmup, self.nuts_draws = 5, 5
            self.ess_warmup, self.ess_draws = 10, 10
            self.sgld_steps, self.sgld_thinning = 1000, 100
            self.chain_sgld_steps = 500
            self.chain_nuts_warmup, self.chain_nuts_draws = 5, 5
        else:
            self.nuts_warmup, self.nuts_draws = 50, 150
            self.ess_warmup, self.ess_draws = 300, 500
            self.sgld_steps, self.sgld_thinning = 40_000, 100
            self.chain_sgld_steps = 4_000
            self.chain_nuts_warmup, self.chain_nuts_draws = 20, 20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement (>= 3)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report path (default benchmarks/RESULTS.md; "
        "with --quick a file in the temporary folder, so real results are never overwritten)",
    )
    parser.add_argument(
        "--only", default="1234", help="which benchmarks to run, e.g. '12' (report needs all)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1 (the report's medians want >= 3)")
    if args.out is None:
        args.out = (
            Path(tempfile.gettempdir()) / "bayesover-RESULTS-quick.md"
            if args.quick
            else HERE / "RESULTS.md"
        )
    cfg = Config(args.quick, args.repeats)
    start, load0 = time.time(), os.getloadavg()[0]

    def log(text):
        print(f"[{time.time() - start:6.1f}s] {text}", file=sys.stderr, flush=True)

    net = make_net(jax.random.key(0))
    full = make_posterior(net, make_data(cfg.n_full, seed=1))
    sg = make_posterior(net, make_data(cfg.n_sg, seed=2))
    teacher_probe = jax.random.normal(jax.random.key(3), (cfg.num_probes, 4))
    num_params = full.model.num_params
    log(f"network: {num_params} weights; N = {cfg.n_full} (NUTS), {cfg.n_sg} (SG-MCMC)")

    r1 = r2 = r3 = r4 = None
    if "1" in args.only:
        log("[1] bo.NUTS vs hand-written BlackJAX NUTS")
        r1 = bench_nuts_vs_blackjax(cfg, full, log)
    if "2" in args.only:
        log("[2] bo.NUTS vs NumPyro NUTS (ESS/s)")
        r2 = bench_nuts_vs_numpyro(cfg, full, net, teacher_probe, log)
    if "3" in args.only:
        log("[3] bo.SGLD vs optax SGD")
        r3 = bench_sgld_vs_sgd(cfg, sg, log)
    if "4" in args.only:
        log("[4] chains 1 -> 4 -> 16")
        r4 = bench_chains(cfg, full, sg, log, r1)
    elapsed = time.time() - start
    if None in (r1, r2, r3, r4):
        log("not all benchmarks ran: RESULTS.md not written")
        return
    write_report(
        args.out,
        cfg,
        machine_details(),
        (load0, os.getloadavg()[0]),
        elapsed,
        r1,
        r2,
        r3,
        r4,
        num_params,
    )
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
