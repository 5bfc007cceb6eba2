"""`laplace_log_evidence`: the log evidence by the Laplace approximation at the mode."""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray

from bayesover._checks import check_int
from bayesover.inference._optimize import map_estimate, minimise
from bayesover.lens._particles import prior_draws
from bayesover.lens._result import EvidenceResult
from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior, Posterior


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
    num_runs = check_int("num_runs", num_runs, 1)
    num_steps = check_int("num_steps", num_steps, 1)
    num_newton_steps = check_int("num_newton_steps", num_newton_steps, 0)
    start = target.posterior.initial_position()
    flat0 = ravel_pytree(start)[0]
    dim = int(flat0.shape[0])
    if dim > max_dim:
        raise ValueError(
            f"the position has d={dim} > max_dim={max_dim} coordinates: the full Hessian is "
            "too large; raise `max_dim` if memory allows."
        )
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    keys, draws, _ = prior_draws(target, key, 1, num_runs)
    estimates, log_dets, min_eigs, modes, grad_norms = [], [], [], [], []
    for r in range(num_runs):
        init = start if r == 0 else ravel_pytree(start)[1](draws[0, r])
        if isinstance(target.posterior, Posterior):
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
