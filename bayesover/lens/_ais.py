"""`ais_log_evidence`: the log evidence by annealed importance sampling (Neal, 2001)."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import PRNGKeyArray

from bayesover._checks import check_int
from bayesover.inference.samplers._moves import adapt_step_size, hmc_chain, target_acceptance
from bayesover.lens._particles import (
    FLOOR,
    effective_sample_size,
    flat_target,
    floored,
    prior_draws,
    result,
    weighted_variance,
)
from bayesover.lens._result import EvidenceResult
from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior


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
    num_runs = check_int("num_runs", num_runs, 1)
    num_particles = check_int("num_particles", num_particles, 1)
    num_steps = check_int("num_steps", num_steps, 1)
    num_mcmc_steps = check_int("num_mcmc_steps", num_mcmc_steps, 1)
    num_integration_steps = check_int("num_integration_steps", num_integration_steps, 1)
    betas = _schedule(schedule, num_steps)
    min_ess = max(2.0, num_particles / 20) if min_ess is None else float(min_ess)
    keys, x, template = prior_draws(target, key, num_runs + 1, num_particles)
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
    return result(
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
    log_prior, loglik = flat_target(target, template)
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
    floored_ll = floored(loglik)
    target_acc = target_acceptance(num_integration_steps)
    ll = jax.vmap(loglik)(x)
    nonfinite = jnp.sum(~jnp.isfinite(ll))
    ll = jnp.maximum(ll, FLOOR)
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
            return log_prior(z) + beta * floored_ll(z)

        def one_chain(key, position):
            position, acceptance = hmc_chain(
                key, position, logdensity, eps, var, num_integration_steps, num_mcmc_steps
            )
            return position, jnp.mean(acceptance)

        return jax.vmap(one_chain)(jax.random.split(key, x.shape[0]), x)

    def body(carry, inputs):
        x, ll, log_w, eps, key = carry
        pair, fixed_eps, fixed_var = inputs
        log_w = log_w + (pair[1] - pair[0]) * ll
        key, move_key = jax.random.split(key)
        if kernels is None:
            var = weighted_variance(x, jax.nn.softmax(log_w))
        else:
            eps, var = fixed_eps, fixed_var
        x, acc = move(move_key, x, pair[1], eps, var)
        ll = jax.vmap(floored_ll)(x)
        acc = jnp.mean(acc)
        # a gentle gain: in high d the acceptance falls off a cliff as eps grows, and a fast
        # controller oscillates across it (many steps at ~0 acceptance)
        new_eps = adapt_step_size(eps, acc, target_acc, gain=0.2) if kernels is None else eps
        return (x, ll, log_w, new_eps, key), (acc, eps, var)

    init = (x, ll, jnp.zeros((num_particles,), dtype), eps0, key)
    (x, ll, log_w, _, _), (acceptance, eps, var) = jax.lax.scan(body, init, schedule)
    log_z = logsumexp(log_w) - jnp.log(num_particles)
    return {"log_z": log_z, "lse": logsumexp(log_w), "lse2": logsumexp(2 * log_w),
            "ess": effective_sample_size(log_w), "log_weight_std": jnp.std(log_w),
            "acceptance": acceptance, "step_size": eps, "variance": var,
            "num_nonfinite": nonfinite}  # fmt: skip
