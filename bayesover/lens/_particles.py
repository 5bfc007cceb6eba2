"""What the particle estimators of the log evidence share: raveled targets, prior draws, weights.

Every sampler of `bo.lens.log_evidence` works on the position raveled to one vector
(`jax.flatten_util.ravel_pytree`). Non-finite log-likelihoods (NaN, +-inf) are treated as -inf:
weight zero. The tempered samplers replace them by `FLOOR` = -1e30, so that beta * loglik stays
finite at beta = 0 (the prior is then sampled correctly) and the weight exp(-1e30 * delta beta)
is zero for any real step.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.special import logsumexp

from bayesover.lens._result import EvidenceResult
from bayesover.lens._target import Target

FLOOR = -1e30  # stand-in for a non-finite log-likelihood in tempered densities


def flat_target(target: Target, example: Any):
    """(log_prior, loglik) on raveled positions; loglik is -inf where not finite."""
    _, unravel = ravel_pytree(example)

    def log_prior(x):
        return target.log_prior(unravel(x))

    def loglik(x):
        value = target.loglikelihood(unravel(x))
        return jnp.where(jnp.isfinite(value), value, -jnp.inf)

    return log_prior, loglik


def prior_draws(target: Target, key, num_runs: int, num: int):
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


def floored(loglik):
    return lambda x: jnp.maximum(loglik(x), FLOOR)


def effective_sample_size(log_weights):
    """(sum w)^2 / sum w^2 for unnormalised log weights."""
    return jnp.exp(2 * logsumexp(log_weights) - logsumexp(2 * log_weights))


def weighted_variance(x, weights):
    """Per-coordinate variance of the particles `x (N, d)` under normalised `weights (N,)`,
    floored so that the HMC metric stays invertible when the particles coincide."""
    mean = weights @ x
    var = weights @ (x - mean) ** 2
    return jnp.maximum(var, 1e-10)


def result(runs, method, *, ess, min_ess, extra_collapse=None, **fields) -> EvidenceResult:
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
