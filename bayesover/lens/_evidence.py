"""`log_evidence(posterior, method, *, key)`: the log evidence log M(x^n) by five estimators.

    M(x^n) = integral w(theta) prod_i P_theta(x_i)^(1/T) d theta      (T: the temperature)

The integral is over the unconstrained coordinates of `bo.lens.Target` (its log prior includes
the Jacobians, so this is the integral over the natural space). Every sampler works on the
position raveled to one vector (`jax.flatten_util.ravel_pytree`).

- "smc": adaptive tempered SMC (BlackJAX), log M = sum of the log normalising-constant
  increments of the path w(theta) L(theta)^beta, beta: 0 -> 1.
- "prequential": data-annealed SMC, log M = sum_t log M(x_t | x^{t-1})
  (`bayesover.lens._prequential`).
- "ais": annealed importance sampling (Neal, 2001) on a fixed schedule of beta, no resampling.
- "nested": nested sampling with slice moves (BlackJAX's `nss`).
- "laplace": log p(D | theta*) + log w(theta*) + (d/2) log 2 pi - (1/2) log det H at the mode.
- "prior": naive Monte Carlo, log mean_k L(theta_k) over prior draws: the baseline that fails
  when the posterior is a rare event under the prior (its ESS says so).

Non-finite log-likelihoods (NaN, +-inf) are treated as -inf: weight zero. The tempered
samplers replace them by -1e30, so that beta * loglik stays finite at beta = 0 (the prior is
then sampled correctly) and the weight exp(-1e30 * delta beta) is zero for any real step.
Every compiled kernel is a module-level `eqx.filter_jit` function, so calls with the same
shapes and settings reuse one compile.

Caveat (NumPyro targets): `Target.sample_prior` draws through NumPyro's initialisation, which
redraws points of infinite potential energy, and `Target.log_prior` is NaN where the
likelihood is -inf. With a likelihood that is -inf on part of the prior the particles then
start from the prior truncated to the valid region and log M comes out too high by
-log w(valid). Network posteriors are not affected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from blackjax.smc import adaptive_tempered, tempered
from blackjax.smc.resampling import systematic
from jax.flatten_util import ravel_pytree
from jax.scipy.special import logsumexp
from jaxtyping import PRNGKeyArray

from bayesover.inference._optimize import minimise
from bayesover.lens._result import EvidenceResult
from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior, Posterior

METHODS = ("smc", "prequential", "ais", "nested", "laplace", "prior")
_FLOOR = -1e30  # stand-in for a non-finite log-likelihood in tempered densities

__all__ = [
    "METHODS",
    "ais_log_evidence",
    "laplace_log_evidence",
    "log_evidence",
    "nested_log_evidence",
    "prior_log_evidence",
    "smc_log_evidence",
]


def log_evidence(
    posterior: AbstractPosterior | Target,
    method: str,
    *,
    key: PRNGKeyArray,
    num_runs: int = 4,
    **options: Any,
) -> EvidenceResult:
    """The log evidence log M(x^n) of `posterior` (nats) by `method`.

    **Arguments:**

    - `posterior`: a network `bo.Posterior`, a `bo.Posterior.from_numpyro` target, or a
      `bo.lens.Target`.
    - `method`: one of "smc", "prequential", "ais", "nested", "laplace", "prior".
    - `key`: a JAX PRNG key.
    - `num_runs`: independent runs; the standard error is std(runs) / sqrt(num_runs) ("laplace":
      restarts of the optimiser, see `laplace_log_evidence`).
    - `options`: the method's settings (see `smc_log_evidence`, `ais_log_evidence`,
      `nested_log_evidence`, `laplace_log_evidence`, `prior_log_evidence` and
      `bayesover.lens._prequential.prequential_log_evidence`).

    **Returns:** an `EvidenceResult`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown `method` {method!r}; choose one of {', '.join(METHODS)}.")
    if method == "prequential":
        from bayesover.lens._prequential import prequential_log_evidence

        _check_int("num_runs", num_runs, 1)
        return prequential_log_evidence(as_target(posterior), key=key, num_runs=num_runs, **options)
    estimators: dict[str, Callable[..., EvidenceResult]] = {
        "smc": smc_log_evidence,
        "ais": ais_log_evidence,
        "nested": nested_log_evidence,
        "laplace": laplace_log_evidence,
        "prior": prior_log_evidence,
    }
    return estimators[method](posterior, key=key, num_runs=num_runs, **options)


# ------------------------------------------------------------------ shared pieces


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"`{name}` must be an int >= {low}, got {value!r}.")
    return int(value)


def _check_fraction(name: str, value: Any) -> float:
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"`{name}` must be in (0, 1), got {value!r}.")
    return float(value)


def _flat_target(target: Target, example: Any):
    """(log_prior, loglik) on raveled positions; loglik is -inf where not finite."""
    _, unravel = ravel_pytree(example)

    def log_prior(x):
        return target.log_prior(unravel(x))

    def loglik(x):
        value = target.loglikelihood(unravel(x))
        return jnp.where(jnp.isfinite(value), value, -jnp.inf)

    return log_prior, loglik


def _prior_draws(target: Target, key, num_runs: int, num: int):
    """Loop keys `(num_runs,)`, prior draws raveled to `(num_runs, num, d)` and one draw as the
    pytree template (compiled apart from the samplers, so that they share it)."""
    init_key, loop_key = jax.random.split(key)
    x, template = _prior_draws_jit(target, jax.random.split(init_key, num_runs), num)
    return jax.random.split(loop_key, num_runs), x, template


@eqx.filter_jit
def _prior_draws_jit(target, keys, num):
    def one(key):
        positions = jax.vmap(target.sample_prior)(jax.random.split(key, num))
        return jax.vmap(lambda p: ravel_pytree(p)[0])(positions), positions

    x, positions = jax.vmap(one)(keys)
    return x, jax.tree.map(lambda v: v[0, 0], positions)


def _floored(loglik):
    return lambda x: jnp.maximum(loglik(x), _FLOOR)


def _ess(log_weights):
    """(sum w)^2 / sum w^2 for unnormalised log weights."""
    return jnp.exp(2 * logsumexp(log_weights) - logsumexp(2 * log_weights))


def _weighted_variance(x, weights):
    """Per-coordinate variance of the particles `x (N, d)` under normalised `weights (N,)`,
    floored so that the HMC metric stays invertible when the particles coincide."""
    mean = weights @ x
    var = weights @ (x - mean) ** 2
    return jnp.maximum(var, 1e-10)


def _hmc_step_fn(num_integration_steps: int):
    kernel = blackjax.hmc.build_kernel()
    return partial(kernel, num_integration_steps=num_integration_steps)


def _adapt(step_size, acceptance, target_acceptance, gain=1.0):
    """Multiplicative step-size control towards `target_acceptance`."""
    acceptance = jnp.where(jnp.isfinite(acceptance), acceptance, 0.0)
    return jnp.clip(step_size * jnp.exp(gain * (acceptance - target_acceptance)), 1e-5, 5.0)


def _target_acceptance(num_integration_steps: int) -> float:
    return 0.574 if num_integration_steps == 1 else 0.65


def _result(runs, method, *, ess, min_ess, extra_collapse=None, **fields) -> EvidenceResult:
    runs = np.asarray(runs, np.float64)
    finite = bool(np.all(np.isfinite(runs)))
    reason = None
    if not finite:
        reason = "a run returned a non-finite estimate"
    elif extra_collapse is not None:
        reason = extra_collapse
    elif ess is not None and ess < min_ess:
        reason = f"the effective sample size fell to {ess:.2f} (< {min_ess:g})"
    diagnostics = dict(fields.pop("diagnostics", {}))
    if reason is not None:
        diagnostics["reason"] = reason
    return EvidenceResult.from_runs(
        runs,
        method,
        ess=None if ess is None else float(ess),
        collapsed=reason is not None,
        diagnostics=diagnostics,
        **fields,
    )


# ------------------------------------------------------------------ adaptive tempered SMC


def smc_log_evidence(
    posterior: AbstractPosterior | Target,
    *,
    key: PRNGKeyArray,
    num_runs: int = 4,
    num_particles: int = 1000,
    num_mcmc_steps: int = 10,
    num_integration_steps: int = 5,
    target_ess: float = 0.5,
    max_steps: int = 500,
    step_size: float = 0.5,
    min_ess: float | None = None,
) -> EvidenceResult:
    """Tempered SMC: log M = sum_k log mean_i L(theta_i)^(beta_k - beta_{k-1}).

    A pilot run (one more run, discarded) is `blackjax.adaptive_tempered_smc`: it picks each
    beta_k so that the incremental weights keep an ESS of `target_ess * num_particles`, and
    tunes the moves, `num_mcmc_steps` HMC steps (`num_integration_steps` leapfrog steps; 1 is
    preconditioned MALA) after a systematic resampling: the HMC metric is its particles'
    weighted variance at each stage, the step size follows the previous stage's acceptance
    rate (target 0.65, or 0.574 for one leapfrog step). The counted runs are BlackJAX's tempered
    SMC on the pilot's betas and kernels, fixed: with fixed kernels the SMC estimate of M is
    unbiased, while kernels tuned on the particles they move bias log M downwards by about
    0.2 d / num_particles nats (measured on the d >> n linear-Gaussian: -1.5 nats at d = 2000,
    256 particles). What remains is variance, and in high d it is heavy-tailed: most runs land
    a little low and a few high, so that 4 runs can look confidently low. The moves' mixing
    sets it: on that problem (256 particles, 12 runs) the per-run spread was 0.66 nats with 5
    HMC steps per stage and 0.19 with 15 (mean errors -0.005 +- 0.19 and -0.035 +- 0.056);
    raise `num_mcmc_steps` in high d.

    **Arguments:** `num_particles` >= 2 per run; `max_steps`: pilot stages before the tempering
    is declared stalled (the pilot stores `max_steps * d` metric entries); `step_size`: the
    initial (whitened) leapfrog step; `min_ess`: the result is `collapsed` when a counted
    run's ESS falls below it (default max(2, num_particles / 100)), when the pilot stalls, or
    when the mean acceptance rate is below 5% (the particles did not move).

    **Returns:** an `EvidenceResult` (`diagnostics`: `num_steps` (stages), `betas`, and per
    stage the `acceptance_rate` and `ess_per_step` of each run, the `step_size`; `pilot_log_z`).
    """
    target = as_target(posterior)
    num_runs = _check_int("num_runs", num_runs, 1)
    num_particles = _check_int("num_particles", num_particles, 2)
    num_mcmc_steps = _check_int("num_mcmc_steps", num_mcmc_steps, 1)
    num_integration_steps = _check_int("num_integration_steps", num_integration_steps, 1)
    max_steps = _check_int("max_steps", max_steps, 1)
    target_ess = _check_fraction("target_ess", target_ess)
    min_ess = max(2.0, num_particles / 100) if min_ess is None else float(min_ess)
    keys, x, template = _prior_draws(target, key, num_runs + 1, num_particles)
    out = _smc_runs(target, keys, x, template, num_mcmc_steps, num_integration_steps,
                    target_ess, max_steps, jnp.asarray(step_size, jnp.float32))  # fmt: skip
    out = jax.tree.map(np.asarray, out)
    num_steps = int(out["num_steps"])
    acceptance = out["acceptance"][:, :num_steps]
    ess_per_step = out["ess"][:, :num_steps]
    extra = None
    if not out["pilot_beta"] >= 1.0:
        extra = f"the pilot's tempering did not reach beta = 1 in {max_steps} stages"
    elif num_steps and float(np.mean(acceptance)) < 0.05:
        extra = "the mean acceptance rate fell below 5% (the particles did not move)"
    return _result(
        out["log_z"],
        "smc",
        ess=float(ess_per_step.min()) if num_steps else None,
        min_ess=min_ess,
        extra_collapse=extra,
        num_nonfinite=int(out["num_nonfinite"].sum()),
        diagnostics={
            "num_steps": num_steps,
            "betas": out["betas"][:num_steps],
            "acceptance_rate": acceptance,
            "step_size": out["step_size"][:num_steps],
            "ess_per_step": ess_per_step,
            "pilot_log_z": float(out["pilot_log_z"]),
            "num_particles": num_particles,
        },
    )


@eqx.filter_jit
def _smc_runs(target, keys, x, template, num_mcmc_steps, num_integration_steps, target_ess,
              max_steps, step_size):  # fmt: skip
    """Run 0 is the adaptive pilot; runs 1.. replay its betas and kernels."""
    log_prior, loglik = _flat_target(target, template)
    pilot = _smc_pilot(log_prior, loglik, keys[0], x[0], num_mcmc_steps=num_mcmc_steps,
                       num_integration_steps=num_integration_steps, target_ess=target_ess,
                       max_steps=max_steps, step_size=step_size)  # fmt: skip
    schedule = (pilot["betas"], pilot["step_size"], pilot["variance"], pilot["num_steps"])
    run = partial(_smc_fixed, log_prior, loglik, schedule=schedule,
                  num_mcmc_steps=num_mcmc_steps,
                  num_integration_steps=num_integration_steps)  # fmt: skip
    out = jax.vmap(run)(keys[1:], x[1:])
    out.update(num_steps=pilot["num_steps"], betas=pilot["betas"], step_size=pilot["step_size"],
               pilot_log_z=pilot["log_z"], pilot_beta=pilot["beta"])  # fmt: skip
    out["num_nonfinite"] = out["num_nonfinite"] + pilot["num_nonfinite"]
    return out


def _smc_pilot(log_prior, loglik, key, x, *, num_mcmc_steps, num_integration_steps, target_ess,
               max_steps, step_size):  # fmt: skip
    """Adaptive tempered SMC; records per stage the beta reached and the kernel used."""
    kernel = adaptive_tempered.build_kernel(
        log_prior,
        _floored(loglik),
        _hmc_step_fn(num_integration_steps),
        blackjax.hmc.init,
        systematic,
        target_ess,
    )
    target_acc = _target_acceptance(num_integration_steps)
    nonfinite0 = jnp.sum(~jnp.isfinite(jax.vmap(loglik)(x)))
    dtype = x.dtype
    buffers = {
        "betas": jnp.ones((max_steps,), dtype),
        "step_size": jnp.zeros((max_steps,), dtype),
        "variance": jnp.ones((max_steps, x.shape[1]), dtype),
    }
    init = (adaptive_tempered.init(x), key, 0, jnp.zeros((), dtype),
            step_size.astype(dtype), nonfinite0, buffers)  # fmt: skip

    def cond(carry):
        state, _, i, *_ = carry
        return (state.tempering_param < 1.0) & (i < max_steps)

    def body(carry):
        state, key, i, log_z, eps, nonfinite, buffers = carry
        key, step_key = jax.random.split(key)
        var = _weighted_variance(state.particles, state.weights)
        params = {"step_size": eps[None], "inverse_mass_matrix": var[None]}
        new_state, info = kernel(step_key, state, num_mcmc_steps, params)
        # the last stage lands on beta = 1 exactly (1 - beta + beta may round below 1)
        beta = jnp.where(new_state.tempering_param >= 1.0 - 1e-6, 1.0, new_state.tempering_param)
        new_state = new_state._replace(tempering_param=beta.astype(dtype))
        buffers = {
            "betas": buffers["betas"].at[i].set(beta),
            "step_size": buffers["step_size"].at[i].set(eps),
            "variance": buffers["variance"].at[i].set(var),
        }
        eps = _adapt(eps, jnp.mean(info.update_info.acceptance_rate), target_acc)
        bad = jnp.sum(~jnp.isfinite(jax.vmap(loglik)(new_state.particles)))
        log_z = log_z + info.log_likelihood_increment
        return new_state, key, i + 1, log_z, eps, nonfinite + bad, buffers

    state, _, num_steps, log_z, _, nonfinite, buffers = jax.lax.while_loop(cond, body, init)
    return dict(buffers, log_z=log_z, num_steps=num_steps, beta=state.tempering_param,
                num_nonfinite=nonfinite)  # fmt: skip


def _smc_fixed(log_prior, loglik, key, x, *, schedule, num_mcmc_steps, num_integration_steps):
    """Tempered SMC on a given schedule of betas and HMC kernels (no adaptation)."""
    betas, step_sizes, variances, num_steps = schedule
    kernel = tempered.build_kernel(
        log_prior,
        _floored(loglik),
        _hmc_step_fn(num_integration_steps),
        blackjax.hmc.init,
        systematic,
    )
    nonfinite0 = jnp.sum(~jnp.isfinite(jax.vmap(loglik)(x)))
    dtype = x.dtype
    max_steps = betas.shape[0]
    buffers = {"acceptance": jnp.full((max_steps,), jnp.nan, dtype),
               "ess": jnp.full((max_steps,), jnp.nan, dtype)}  # fmt: skip

    def body(i, carry):
        state, key, log_z, nonfinite, buffers = carry
        key, step_key = jax.random.split(key)
        params = {"step_size": step_sizes[i][None], "inverse_mass_matrix": variances[i][None]}
        state, info = kernel(step_key, state, num_mcmc_steps, betas[i], params)
        buffers = {
            "acceptance": buffers["acceptance"]
            .at[i]
            .set(jnp.mean(info.update_info.acceptance_rate)),
            "ess": buffers["ess"].at[i].set(1.0 / jnp.sum(state.weights**2)),
        }
        bad = jnp.sum(~jnp.isfinite(jax.vmap(loglik)(state.particles)))
        return state, key, log_z + info.log_likelihood_increment, nonfinite + bad, buffers

    init = (tempered.init(x), key, jnp.zeros((), dtype), nonfinite0, buffers)
    _, _, log_z, nonfinite, buffers = jax.lax.fori_loop(0, num_steps, body, init)
    return dict(buffers, log_z=log_z, num_nonfinite=nonfinite)


# ------------------------------------------------------------------ annealed importance sampling


def _schedule(kind: Any, num_steps: int) -> np.ndarray:
    """beta_0 = 0 < ... < beta_K = 1: "sigmoid" (Grosse et al., 2015, delta = 4), "geometric"
    (beta_k = 10^(-6 (1 - k/K)) for k >= 1), or an explicit increasing array."""
    k = np.arange(num_steps + 1) / num_steps
    if isinstance(kind, str):
        if kind == "sigmoid":
            s = 1.0 / (1.0 + np.exp(-4.0 * (2 * k - 1)))
            betas = (s - s[0]) / (s[-1] - s[0])
        elif kind == "geometric":
            betas = np.concatenate([[0.0], 10.0 ** (-6.0 * (1 - k[1:]))])
        else:
            raise ValueError(
                f"`schedule` must be 'sigmoid', 'geometric' or an array, got {kind!r}."
            )
    else:
        betas = np.asarray(kind, np.float64).reshape(-1)
        ok = betas.size >= 2 and betas[0] == 0 and betas[-1] == 1 and np.all(np.diff(betas) > 0)
        if not ok:
            raise ValueError("an explicit `schedule` must increase strictly from 0 to 1.")
    return betas


def ais_log_evidence(
    posterior: AbstractPosterior | Target,
    *,
    key: PRNGKeyArray,
    num_runs: int = 4,
    num_particles: int = 256,
    num_steps: int = 1000,
    schedule: Any = "sigmoid",
    num_mcmc_steps: int = 1,
    num_integration_steps: int = 3,
    step_size: float = 0.5,
    min_ess: float | None = None,
) -> EvidenceResult:
    """Annealed importance sampling (Neal, 2001): each of `num_particles` independent chains
    starts from the prior and, for k = 1..K, gains log weight (beta_k - beta_{k-1}) log L(theta)
    and then takes `num_mcmc_steps` HMC steps leaving w L^beta_k invariant; log M = log mean_i
    exp(log weight_i). No resampling (that is SMC): the weights carry the whole correction, and
    their ESS says whether K was enough (only if the moves mix: a chain that lags its target
    is not seen in the ESS, so give the moves enough work).

    `value` is the log-mean-exp over all `num_runs * num_particles` weights (its downward
    Jensen bias shrinks with the pooled count), `runs` the per-run estimates and `stderr` their
    std / sqrt(num_runs). The stderr does not see that bias: with heavy-tailed weights (ESS a
    few % of the particles) add steps rather than trust it.

    Why by hand: BlackJAX has no AIS; the loop is one `lax.scan` over the schedule. The kernels
    are tuned on a pilot run (one more run, discarded): its HMC metric is the particles'
    weighted variance at each beta and its step size follows the acceptance rate. The counted
    runs reuse those K kernels as fixed: a kernel tuned on the particles it moves couples each
    chain to its own weight, which biases log M (by ~0.5 nats on the d >> n linear-Gaussian).

    **Arguments:** `num_steps` K >= 1; `schedule`: "sigmoid", "geometric" or an array of betas;
    `min_ess`: below it the run is `collapsed` (default max(2, num_particles / 20): weights
    more degenerate than that have missed their heavy tail); so is a mean acceptance rate
    below 5%.
    """
    target = as_target(posterior)
    num_runs = _check_int("num_runs", num_runs, 1)
    num_particles = _check_int("num_particles", num_particles, 1)
    num_steps = _check_int("num_steps", num_steps, 1)
    num_mcmc_steps = _check_int("num_mcmc_steps", num_mcmc_steps, 1)
    num_integration_steps = _check_int("num_integration_steps", num_integration_steps, 1)
    betas = _schedule(schedule, num_steps)
    min_ess = max(2.0, num_particles / 20) if min_ess is None else float(min_ess)
    keys, x, template = _prior_draws(target, key, num_runs + 1, num_particles)
    out = _ais_runs(target, keys, x, template, jnp.asarray(betas, jnp.float32), num_mcmc_steps,
                    num_integration_steps, jnp.asarray(step_size, jnp.float32))  # fmt: skip
    out = jax.tree.map(np.asarray, out)
    acceptance = out["acceptance"]
    extra = None
    if float(np.nanmean(acceptance)) < 0.05:
        extra = "the mean acceptance rate fell below 5% (the chains did not move)"
    num_total = num_particles * num_runs
    pooled = float(logsumexp(out["lse"]) - math.log(num_total))
    pooled_ess = float(np.exp(2 * logsumexp(out["lse"]) - logsumexp(out["lse2"])))
    return _result(
        out["log_z"],
        "ais",
        value=pooled,
        ess=float(out["ess"].min()),
        min_ess=min_ess,
        extra_collapse=extra,
        num_nonfinite=int(out["num_nonfinite"].sum()),
        diagnostics={
            "ess_per_run": out["ess"],
            "pooled_ess": pooled_ess,
            "log_weight_std": out["log_weight_std"],
            "acceptance_rate": acceptance,
            "step_size": out["step_size"],
            "betas": betas,
            "pilot_log_z": float(out["pilot_log_z"]),
            "num_particles": num_particles,
        },
    )


@eqx.filter_jit
def _ais_runs(target, keys, x, template, betas, num_mcmc_steps, num_integration_steps,
              step_size):  # fmt: skip
    """Run 0 is the pilot (adaptive kernels); runs 1.. reuse its kernels, fixed."""
    log_prior, loglik = _flat_target(target, template)
    run = partial(_ais_one, log_prior, loglik, betas=betas, num_mcmc_steps=num_mcmc_steps,
                  num_integration_steps=num_integration_steps)  # fmt: skip
    pilot = run(keys[0], x[0], step_size=step_size)
    kernels = (pilot["step_size"], pilot.pop("variance"))
    out = jax.vmap(lambda k, xs: run(k, xs, kernels=kernels))(keys[1:], x[1:])
    out.pop("variance")
    out["pilot_log_z"] = pilot["log_z"]
    return out


def _ais_one(log_prior, loglik, key, x, *, betas, num_mcmc_steps, num_integration_steps,
             step_size=None, kernels=None):  # fmt: skip
    """One AIS run; adapts (pilot) when `kernels` is None, else uses `kernels` = (step sizes
    (K,), inverse mass diagonals (K, d))."""
    num_particles = x.shape[0]
    floored = _floored(loglik)
    step_fn = _hmc_step_fn(num_integration_steps)
    target_acc = _target_acceptance(num_integration_steps)
    ll = jax.vmap(loglik)(x)
    nonfinite = jnp.sum(~jnp.isfinite(ll))
    ll = jnp.maximum(ll, _FLOOR)
    dtype = x.dtype
    pairs = jnp.stack([betas[:-1], betas[1:]], axis=1).astype(dtype)
    if kernels is None:
        eps0 = step_size.astype(dtype)
        schedule = (pairs, jnp.zeros((pairs.shape[0],), dtype), jnp.zeros((pairs.shape[0], 0)))
    else:
        eps0 = jnp.zeros((), dtype)
        schedule = (pairs, kernels[0], kernels[1])

    def move(key, x, beta, eps, var):
        def logdensity(z):
            return log_prior(z) + beta * floored(z)

        def one_chain(key, position):
            state = blackjax.hmc.init(position, logdensity)

            def step(state, k):
                return step_fn(k, state, logdensity, eps, var)

            state, info = jax.lax.scan(step, state, jax.random.split(key, num_mcmc_steps))
            return state.position, jnp.mean(info.acceptance_rate)

        return jax.vmap(one_chain)(jax.random.split(key, x.shape[0]), x)

    def body(carry, inputs):
        x, ll, log_w, eps, key = carry
        pair, fixed_eps, fixed_var = inputs
        log_w = log_w + (pair[1] - pair[0]) * ll
        key, move_key = jax.random.split(key)
        if kernels is None:
            var = _weighted_variance(x, jax.nn.softmax(log_w))
        else:
            eps, var = fixed_eps, fixed_var
        x, acc = move(move_key, x, pair[1], eps, var)
        ll = jax.vmap(floored)(x)
        acc = jnp.mean(acc)
        # a gentle gain: in high d the acceptance falls off a cliff as eps grows, and a fast
        # controller oscillates across it (many steps at ~0 acceptance)
        new_eps = _adapt(eps, acc, target_acc, gain=0.2) if kernels is None else eps
        return (x, ll, log_w, new_eps, key), (acc, eps, var)

    init = (x, ll, jnp.zeros((num_particles,), dtype), eps0, key)
    (x, ll, log_w, _, _), (acceptance, eps, var) = jax.lax.scan(body, init, schedule)
    log_z = logsumexp(log_w) - jnp.log(num_particles)
    return {"log_z": log_z, "lse": logsumexp(log_w), "lse2": logsumexp(2 * log_w),
            "ess": _ess(log_w), "log_weight_std": jnp.std(log_w),
            "acceptance": acceptance, "step_size": eps, "variance": var,
            "num_nonfinite": nonfinite}  # fmt: skip


# ------------------------------------------------------------------ nested sampling


def nested_log_evidence(
    posterior: AbstractPosterior | Target,
    *,
    key: PRNGKeyArray,
    num_runs: int = 4,
    num_live: int = 500,
    num_delete: int | None = None,
    num_inner_steps: int | None = None,
    dlogz: float = 0.01,
    max_steps: int = 20000,
) -> EvidenceResult:
    """Nested sampling (Skilling, 2006) with BlackJAX's nested slice sampler (`blackjax.nss`):
    `num_live` prior draws; each step the `num_delete` lowest-likelihood points die and are
    replaced by constrained hit-and-run slice moves (directions from the live points'
    covariance) from random survivors. The prior mass shrinks as X_k ~ exp(-k / num_live), and
    log Z = log sum_dead L_i (X_{i-1} - X_i) + log (X_final mean_live L) (BlackJAX's
    integrator). The run stops when the live points could add less than `dlogz` to log Z.

    The slice directions come from the live points' covariance, so the live points must
    outnumber the dimensions: with `num_live <= 2 d` the result is marked `collapsed` (on the
    d = 200, n = 20 linear-Gaussian with 200 live points it stopped 78 nats short).

    **Arguments:** `num_live` >= 2; `num_delete`: points replaced per step (default
    num_live // 10, at least 1); `num_inner_steps`: slice steps per new point (default
    max(5, 2 d), BlackJAX's advice); `max_steps`: cap on steps (hitting it is `collapsed`).

    **Returns:** an `EvidenceResult` whose `diagnostics` hold `information` H per run (nats),
    `stderr_skilling` = sqrt(mean H / num_live / num_runs) (the usual single-run estimate,
    for comparison with the between-run `stderr`) and `num_steps`.
    """
    target = as_target(posterior)
    num_runs = _check_int("num_runs", num_runs, 1)
    num_live = _check_int("num_live", num_live, 2)
    num_delete = max(1, num_live // 10) if num_delete is None else num_delete
    num_delete = _check_int("num_delete", num_delete, 1)
    if num_delete >= num_live:
        raise ValueError(f"`num_delete` must be < num_live={num_live}, got {num_delete}.")
    max_steps = _check_int("max_steps", max_steps, 1)
    if not float(dlogz) > 0:
        raise ValueError(f"`dlogz` must be > 0, got {dlogz!r}.")
    dim = ravel_pytree(target.posterior.initial_position())[0].shape[0]
    num_inner_steps = max(5, 2 * dim) if num_inner_steps is None else num_inner_steps
    num_inner_steps = _check_int("num_inner_steps", num_inner_steps, 1)
    keys, x, template = _prior_draws(target, key, num_runs, num_live)
    out = _nested_runs(target, keys, x, template, num_delete, num_inner_steps, float(dlogz),
                       max_steps)  # fmt: skip
    out = jax.tree.map(np.asarray, out)
    information = out["information"]
    extra = None
    if num_live <= 2 * dim:
        extra = (
            f"num_live={num_live} <= 2 d = {2 * dim}: the live points cannot shape the slice "
            "directions in d dimensions (use more live points or another method)"
        )
    elif bool(np.any(out["num_steps"] >= max_steps)):
        extra = f"the run did not converge in {max_steps} steps"
    return _result(
        out["log_z"],
        "nested",
        ess=None,
        min_ess=0.0,
        extra_collapse=extra,
        num_nonfinite=int(out["num_nonfinite"].sum()),
        diagnostics={
            "information": information,
            "stderr_skilling": float(np.sqrt(np.mean(information) / num_live / num_runs)),
            "num_steps": out["num_steps"],
            "num_live": num_live,
            "num_delete": num_delete,
            "num_inner_steps": num_inner_steps,
        },
    )


@eqx.filter_jit
def _nested_runs(target, keys, x, template, num_delete, num_inner_steps, dlogz, max_steps):
    run = partial(_nested_one, target, template=template, num_delete=num_delete,
                  num_inner_steps=num_inner_steps, dlogz=dlogz, max_steps=max_steps)  # fmt: skip
    return jax.vmap(run)(keys, x)


def _live_covariance_factor(rng_key, state, info, params=None):
    """Cholesky factor of the live points' covariance, with a small ridge (1e-6 of its mean
    variance) so that it stays positive definite when the live points span too few directions.
    """
    cov = jnp.atleast_2d(jnp.cov(state.particles.position, ddof=0, rowvar=False))
    ridge = 1e-6 * jnp.mean(jnp.diag(cov)) + 1e-12
    return {"covariance_factor": jnp.linalg.cholesky(cov + ridge * jnp.eye(cov.shape[0]))}


def _log1mexp(x):
    """log(1 - exp(x)) for x < 0."""
    return jnp.where(x > -0.693, jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def _nested_one(target, loop_key, x, *, template, num_delete, num_inner_steps, dlogz,
                max_steps):  # fmt: skip
    num_live = x.shape[0]
    log_prior, loglik = _flat_target(target, template)
    algorithm = blackjax.nss(
        log_prior,
        loglik,
        num_inner_steps,
        num_delete=num_delete,
        inner_kernel_params=_live_covariance_factor,
    )
    state = algorithm.init(x)
    nonfinite = jnp.sum(~jnp.isfinite(state.particles.loglikelihood))
    # sum_i dZ_i log L_i / Z, accumulated beside BlackJAX's integrator for the information H
    mean_ll = jnp.zeros((), x.dtype)
    live_counts = jnp.arange(num_live, num_live - num_delete, -1).astype(x.dtype)

    def total(integrator):
        return jnp.logaddexp(integrator.logZ, integrator.logZ_live)

    def cond(carry):
        state, _, i, _ = carry
        remaining = total(state.integrator) - state.integrator.logZ
        return (~(remaining < dlogz)) & (i < max_steps)

    def body(carry):
        state, key, i, mean_ll = carry
        key, step_key = jax.random.split(key)
        old = state.integrator
        state, info = algorithm.step(step_key, state)
        dead = info.particles.loglikelihood
        log_x = old.logX + jnp.cumsum(-1.0 / live_counts)
        log_x_prev = jnp.concatenate([old.logX[None], log_x[:-1]])
        log_dz = dead + log_x_prev + _log1mexp(-1.0 / live_counts)
        new_log_z = state.integrator.logZ
        scale = jnp.where(jnp.isfinite(old.logZ), jnp.exp(old.logZ - new_log_z), 0.0)
        terms = jnp.where(jnp.isfinite(dead), jnp.exp(log_dz - new_log_z) * dead, 0.0)
        return state, key, i + 1, scale * mean_ll + jnp.sum(terms)

    state, _, num_steps, mean_ll = jax.lax.while_loop(cond, body, (state, loop_key, 0, mean_ll))
    integrator = state.integrator
    log_z = total(integrator)
    live = state.particles.loglikelihood
    live_log_dz = integrator.logX - jnp.log(num_live) + live
    mean_ll = jnp.exp(integrator.logZ - log_z) * mean_ll + jnp.sum(
        jnp.where(jnp.isfinite(live), jnp.exp(live_log_dz - log_z) * live, 0.0)
    )
    return {"log_z": log_z, "information": mean_ll - log_z, "num_steps": num_steps,
            "num_nonfinite": nonfinite}  # fmt: skip


# ------------------------------------------------------------------ Laplace


def laplace_log_evidence(
    posterior: AbstractPosterior | Target,
    *,
    key: PRNGKeyArray,
    num_runs: int = 1,
    optimizer: optax.GradientTransformation | None = None,
    num_steps: int = 2000,
    num_newton_steps: int = 5,
    max_dim: int = 3000,
) -> EvidenceResult:
    """The Laplace approximation at the mode theta* of the log density f (unconstrained):

        log M ~ f(theta*) + (d/2) log 2 pi - (1/2) log det H,   H = -Hessian f(theta*),

    with f = log w + (1/T) sum_i log P_theta(x_i). The mode is found by optax (`bo.map_estimate`
    for network posteriors; default adam(1e-2), `num_steps` steps), then polished by up to
    `num_newton_steps` Newton steps (kept only when they raise f). H is the full Hessian
    (`jax.hessian` on the raveled position, d <= `max_dim`); its log det and eigenvalues are
    taken in float64 on the host.

    `num_runs` restarts the optimiser from prior draws (the first from the posterior's default
    start): `value` is the estimate at the highest mode found, `runs` holds every restart's
    estimate, `stderr` is 0 (deterministic). If H is not positive definite, `collapsed=True`.
    `diagnostics`: `log_det`, `min_eigenvalue`, `log_density_at_mode`, `grad_norm`, `dim`.
    """
    target = as_target(posterior)
    num_runs = _check_int("num_runs", num_runs, 1)
    num_steps = _check_int("num_steps", num_steps, 1)
    num_newton_steps = _check_int("num_newton_steps", num_newton_steps, 0)
    start = target.posterior.initial_position()
    flat0 = ravel_pytree(start)[0]
    dim = int(flat0.shape[0])
    if dim > max_dim:
        raise ValueError(
            f"the position has d={dim} > max_dim={max_dim} coordinates: the full Hessian is "
            "too large; raise `max_dim` if memory allows."
        )
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    keys, draws, _ = _prior_draws(target, key, 1, num_runs)
    estimates, log_dets, min_eigs, modes, grad_norms = [], [], [], [], []
    for r in range(num_runs):
        init = start if r == 0 else ravel_pytree(start)[1](draws[0, r])
        if isinstance(target.posterior, Posterior):
            from bayesover.inference._optimize import map_estimate

            position = map_estimate(
                target.posterior, key=keys[r], optimizer=optimizer, num_steps=num_steps, init=init
            ).position
            x = ravel_pytree(position)[0]
        else:
            x = _optimise_flat(target, optimizer, ravel_pytree(init)[0], start, num_steps)
        x, f, grad, hess = _newton_polish(target, x, start, num_newton_steps)
        h = -np.asarray(hess, np.float64)
        h = 0.5 * (h + h.T)
        eig = np.linalg.eigvalsh(h)
        min_eig = float(eig.min())
        log_det = float(np.sum(np.log(eig))) if min_eig > 0 else float("nan")
        estimate = float(f) + 0.5 * dim * math.log(2 * math.pi) - 0.5 * log_det
        estimates.append(estimate)
        log_dets.append(log_det)
        min_eigs.append(min_eig)
        modes.append(float(f))
        grad_norms.append(float(jnp.linalg.norm(grad)))
    best = int(np.nanargmax(modes)) if np.any(np.isfinite(modes)) else 0
    value = estimates[best]
    reason = None
    if not min_eigs[best] > 0:
        reason = (
            "the Hessian of -log density at the mode is not positive definite (smallest "
            f"eigenvalue {min_eigs[best]:.3g})"
        )
    elif not math.isfinite(value):
        reason = "the log density at the mode is not finite"
    diagnostics: dict[str, Any] = {
        "log_det": log_dets[best],
        "min_eigenvalue": min_eigs[best],
        "log_density_at_mode": modes[best],
        "grad_norm": grad_norms[best],
        "dim": dim,
        "best_run": best,
        "log_density_at_modes": np.asarray(modes),
    }
    if reason is not None:
        diagnostics["reason"] = reason
    return EvidenceResult(
        value=value,
        stderr=0.0,
        runs=np.asarray(estimates, np.float64),
        method="laplace",
        ess=None,
        collapsed=reason is not None,
        diagnostics=diagnostics,
    )


@eqx.filter_jit
def _optimise_flat(target, optimizer, x, template, num_steps):
    unravel = ravel_pytree(template)[1]
    x, _ = minimise(lambda z: -target.logdensity(unravel(z)), x, optimizer, num_steps)
    return x


@eqx.filter_jit
def _newton_polish(target, x, template, num_newton_steps):
    unravel = ravel_pytree(template)[1]

    def f(z):
        return target.logdensity(unravel(z))

    def newton(x, _):
        grad, hess = jax.grad(f)(x), jax.hessian(f)(x)
        proposal = x - jnp.linalg.solve(hess, grad)
        better = jnp.isfinite(f(proposal)) & (f(proposal) >= f(x))
        return jnp.where(better, proposal, x), None

    x, _ = jax.lax.scan(newton, x, None, length=num_newton_steps)
    return x, f(x), jax.grad(f)(x), jax.hessian(f)(x)


# ------------------------------------------------------------------ naive prior Monte Carlo


def prior_log_evidence(
    posterior: AbstractPosterior | Target,
    *,
    key: PRNGKeyArray,
    num_runs: int = 4,
    num_draws: int = 10_000,
    min_ess: float | None = None,
) -> EvidenceResult:
    """Naive Monte Carlo: log M ~ log (1/K) sum_k L(theta_k), theta_k ~ w. Unbiased for M, but
    when the posterior is a rare event under the prior (d >> n, sharp likelihoods) the sum is
    dominated by a few draws and log M is underestimated by many nats; the ESS of the weights
    L(theta_k) then falls below `min_ess` (default max(2, num_draws / 100)) and the result is
    marked `collapsed`. Kept as the baseline the other estimators must beat."""
    target = as_target(posterior)
    num_runs = _check_int("num_runs", num_runs, 1)
    num_draws = _check_int("num_draws", num_draws, 1)
    min_ess = max(2.0, num_draws / 100) if min_ess is None else float(min_ess)
    _, x, template = _prior_draws(target, key, num_runs, num_draws)
    out = jax.tree.map(np.asarray, _prior_runs(target, x, template))
    return _result(
        out["log_z"],
        "prior",
        ess=float(out["ess"].min()),
        min_ess=min_ess,
        num_nonfinite=int(out["num_nonfinite"].sum()),
        diagnostics={"ess_per_run": out["ess"], "num_draws": num_draws},
    )


@eqx.filter_jit
def _prior_runs(target, x, template):
    _, loglik = _flat_target(target, template)

    def one(x):
        ll = jax.lax.map(loglik, x, batch_size=1024)
        return {"log_z": logsumexp(ll) - jnp.log(x.shape[0]), "ess": _ess(ll),
                "num_nonfinite": jnp.sum(~jnp.isfinite(ll))}  # fmt: skip

    return jax.lax.map(one, x)
