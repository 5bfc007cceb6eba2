"""`nested_log_evidence`: the log evidence by nested sampling (BlackJAX's `nss`)."""

from __future__ import annotations

from functools import partial

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray

from bayesover._checks import check_int
from bayesover.lens._particles import flat_target, prior_draws, result
from bayesover.lens._result import EvidenceResult
from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior


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
    num_runs = check_int("num_runs", num_runs, 1)
    num_live = check_int("num_live", num_live, 2)
    num_delete = max(1, num_live // 10) if num_delete is None else num_delete
    num_delete = check_int("num_delete", num_delete, 1)
    if num_delete >= num_live:
        raise ValueError(f"`num_delete` must be < num_live={num_live}, got {num_delete}.")
    max_steps = check_int("max_steps", max_steps, 1)
    if not float(dlogz) > 0:
        raise ValueError(f"`dlogz` must be > 0, got {dlogz!r}.")
    dim = ravel_pytree(target.posterior.initial_position())[0].shape[0]
    num_inner_steps = max(5, 2 * dim) if num_inner_steps is None else num_inner_steps
    num_inner_steps = check_int("num_inner_steps", num_inner_steps, 1)
    keys, x, template = prior_draws(target, key, num_runs, num_live)
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
    return result(
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
    log_prior, loglik = flat_target(target, template)
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
