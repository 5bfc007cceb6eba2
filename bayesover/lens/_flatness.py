"""Flatness at a point: the curvature spectrum, the effective dimension, the learning coefficient.

Near a minimum theta0 the per-sample KL is K ~ (1/2) delta^T F delta, so the KL ball
{K <= eps} is wide along flat directions (small eigenvalues) and its prior mass W(eps) large.
Two summaries of that, for any `bo.Posterior` or NumPyro target:

- `effective_dimension`: d_eff = sum_i lambda_i / (lambda_i + alpha) = tr H (H + alpha)^-1
  (MacKay 1992), lambda_i the eigenvalues of the Hessian (or Gauss-Newton matrix) H of the
  negative log-likelihood, alpha the prior precision, by stochastic Lanczos quadrature (Ubaru,
  Chen and Saad 2017): a network's Hessian is never formed, only Hessian-vector products.
- `learning_coefficient`: the local learning coefficient lambda-hat of Lau, Furman, Wang,
  Murfet and Wei (singular learning theory), from SGLD on a localised tempered posterior.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray, PyTree

from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior, Posterior

# ---------------------------------------------------------------------------- Lanczos machinery


def lanczos(matvec: Callable[[Array], Array], v0: Array, num_steps: int) -> tuple[Array, ...]:
    """`num_steps` Lanczos steps with full re-orthogonalisation from `v0` (traceable).

    **Returns:** `(alpha, beta, Q)`: the tridiagonal T's diagonal `(m,)` and off-diagonal
    `(m - 1,)`, and the orthonormal Krylov basis `Q (m, d)` (T = Q H Q^T). On breakdown (an
    invariant subspace found) the remaining vectors are zero, which gives T zero rows whose Ritz
    values carry zero quadrature weight.
    """
    d = v0.shape[0]
    v = v0 / jnp.linalg.norm(v0)

    def step(carry, i):
        Q, v, v_prev, b_prev = carry
        Q = Q.at[i].set(v)
        w = matvec(v)
        a = jnp.vdot(v, w)
        w = w - a * v - b_prev * v_prev
        w = w - Q.T @ (Q @ w)  # twice is enough (Kahan, Parlett)
        w = w - Q.T @ (Q @ w)
        b = jnp.linalg.norm(w)
        alive = b > 1e-6 * jnp.maximum(jnp.abs(a), 1e-30)
        v_next = jnp.where(alive, w / jnp.where(alive, b, 1.0), 0.0)
        return (Q, v_next, v, jnp.where(alive, b, 0.0)), (a, jnp.where(alive, b, 0.0))

    init = (jnp.zeros((num_steps, d), v.dtype), v, jnp.zeros_like(v), jnp.zeros((), v.dtype))
    (Q, _, _, _), (alpha, beta) = jax.lax.scan(step, init, jnp.arange(num_steps))
    return alpha, beta[:-1], Q


def _tridiagonal(alpha: Array, beta: Array) -> Array:
    return jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1)


def ritz(alpha: Array, beta: Array) -> tuple[Array, Array, Array]:
    """Ritz values `(m,)`, quadrature weights (squared first components of T's eigenvectors,
    summing to 1) and T's eigenvectors `(m, m)`."""
    values, vectors = jnp.linalg.eigh(_tridiagonal(alpha, beta))
    return values, vectors[0] ** 2, vectors


def top_eigenpairs(
    matvec: Callable[[Array], Array], d: int, *, key: PRNGKeyArray, k: int, num_steps: int
) -> tuple[Array, Array]:
    """The `k` largest eigenpairs of a symmetric operator on R^d by Lanczos (`num_steps >= k`
    steps, clipped to d; exact up to rounding when `num_steps >= d`).

    **Returns:** eigenvalues `(k,)` descending and eigenvectors `(k, d)` (rows).
    """
    steps = min(max(num_steps, k), d)
    v0 = jax.random.normal(key, (d,))
    alpha, beta, Q = lanczos(matvec, v0, steps)
    values, _, vectors = ritz(alpha, beta)
    order = jnp.argsort(-values)[:k]
    return values[order], (Q.T @ vectors[:, order]).T


# ---------------------------------------------------------------------------- curvature


def curvature_matvec(
    target: Target, position: PyTree, curvature: str = "hessian"
) -> Callable[[Array], Array]:
    """v -> H v on flat vectors, H the Hessian (`"hessian"`) or the generalised Gauss-Newton
    matrix J^T (d^2 loss / d out^2) J (`"ggn"`, network posteriors only) of the negative
    (tempered) log-likelihood -(1/T) sum_i log P_theta(x_i) at `position`."""
    flat, unravel = ravel_pytree(position)
    if curvature == "hessian":

        def nll(x):
            return -target.loglikelihood(unravel(x))

        grad = jax.grad(nll)
        return lambda v: jax.jvp(grad, (flat,), (v,))[1]
    if curvature != "ggn":
        raise ValueError(f"`curvature` must be 'hessian' or 'ggn', got {curvature!r}.")
    posterior = target.posterior
    if not isinstance(posterior, Posterior):
        raise ValueError("`curvature='ggn'` needs a network bo.Posterior (it needs outputs).")
    model, data = posterior.model, posterior.data
    hyper = model.constrain(position)["likelihood"]

    def outputs(x):
        net = model.constrain(unravel(x))["net"]
        return jax.vmap(lambda xi: model.apply(net, xi))(data.inputs)

    def loss(out):
        lp = jax.vmap(lambda o, y: model.likelihood.log_prob(o, y, hyper))(out, data.targets)
        return -jnp.sum(lp) / target.temperature

    out, out_vjp = jax.vjp(outputs, flat)
    loss_grad = jax.grad(loss)

    def matvec(v):
        jv = jax.jvp(outputs, (flat,), (v,))[1]
        hjv = jax.jvp(loss_grad, (out,), (jv,))[1]
        return out_vjp(hjv)[0]

    return matvec


def prior_precision_vector(target: Target, position: PyTree) -> Array:
    """Per-coordinate prior precision at `position` (flat): 1/scale^2 for the weights of a
    network leaf with a Normal prior (scale at the position's hyperparameters), 1 elsewhere
    (other priors, hyperparameters, NumPyro targets)."""
    flat, unravel = ravel_pytree(position)
    posterior = target.posterior
    if not isinstance(posterior, Posterior):
        return jnp.ones_like(flat)
    model = posterior.model
    _, hyper = model._hyper_log_prob(position["prior"])
    leaves = jax.tree.leaves(position["net"])
    precisions = []
    for d, leaf in zip(model._leaf_distributions(hyper), leaves, strict=True):
        if isinstance(d, dist.Normal):
            scale = jnp.broadcast_to(jnp.asarray(d.scale, flat.dtype), leaf.shape)
            precisions.append(1.0 / scale**2)
        else:
            precisions.append(jnp.ones_like(leaf))
    net = jax.tree.unflatten(jax.tree.structure(position["net"]), precisions)
    ones = jax.tree.map(jnp.ones_like, position)
    return ravel_pytree({**ones, "net": net})[0]


# ---------------------------------------------------------------------------- effective dimension


@dataclasses.dataclass(frozen=True)
class EffectiveDimension:
    """d_eff = sum_i lambda_i / (lambda_i + alpha) by stochastic Lanczos quadrature (host).

    **Fields:** `value`, `stderr` (across probes), `quadrature_error` (the change from half the
    Lanczos steps to all of them: raise `lanczos_steps` if it is not small against `stderr`),
    `num_params` d, `prior_precision` (alpha; None
    when per-coordinate, in which case the spectrum is of the prior-whitened A^-1/2 H A^-1/2 and
    alpha = 1 on it), `ritz_values` and `ritz_weights` `(num_probes, lanczos_steps)` (the
    spectral density is d * mean over probes of sum_j weight_j delta(lambda - value_j)),
    `top_eigenvalues` (descending; the first few are accurate), `curvature`.
    """

    value: float
    stderr: float
    quadrature_error: float
    num_params: int
    prior_precision: float | None
    ritz_values: np.ndarray
    ritz_weights: np.ndarray
    top_eigenvalues: np.ndarray
    curvature: str

    def spectral_density(self, grid: Any, width: float) -> np.ndarray:
        """The Gaussian-smoothed eigenvalue density (integrates to d) on `grid`."""
        grid = np.asarray(grid, np.float64)[:, None, None]
        kernel = np.exp(-0.5 * ((grid - self.ritz_values) / width) ** 2)
        kernel /= width * math.sqrt(2 * math.pi)
        return self.num_params * np.mean(np.sum(self.ritz_weights * kernel, axis=2), axis=1)

    def trace(self, f: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
        """tr f(H) by the same quadrature, with its stderr across probes."""
        per_probe = self.num_params * np.sum(self.ritz_weights * f(self.ritz_values), axis=1)
        return float(np.mean(per_probe)), _stderr(per_probe)

    def __str__(self) -> str:
        return (
            f"d_eff = {self.value:.2f} ± {self.stderr:.2f} (quadrature ± "
            f"{self.quadrature_error:.2f}) of d = {self.num_params} "
            f"({self.curvature}, top eigenvalue {self.top_eigenvalues[0]:.3g})"
        )


def _stderr(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    return float(np.std(values, ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan


@eqx.filter_jit
def _slq(target, position, curvature, scale, probes, num_steps):
    matvec = curvature_matvec(target, position, curvature)
    whitened = lambda v: scale * matvec(scale * v)  # noqa: E731

    half = max(num_steps // 2, 1)

    def one(v):
        alpha, beta, _ = lanczos(whitened, v, num_steps)
        values, weights, _ = ritz(alpha, beta)
        # the leading half of T is the quadrature of half the steps: its change is the error
        half_values, half_weights, _ = ritz(alpha[:half], beta[: half - 1])
        return values, weights, half_values, half_weights

    return jax.lax.map(one, probes)


def effective_dimension(
    posterior: AbstractPosterior | Target,
    position: PyTree,
    *,
    key: PRNGKeyArray,
    prior_precision: Any = None,
    num_probes: int = 10,
    lanczos_steps: int = 60,
    curvature: str = "hessian",
) -> EffectiveDimension:
    """The curvature spectrum and MacKay's effective dimension at `position`.

    d_eff = tr H (H + alpha)^-1 = sum_i lambda_i / (lambda_i + alpha), H the Hessian (or GGN) of
    -(1/T) sum_i log P_theta(x_i). Stochastic Lanczos quadrature: for Rademacher probes v_l,
    tr f(H) ~ (d / L) sum_l sum_j tau_lj^2 f(theta_lj), theta_lj the Ritz values of `lanczos_steps`
    Lanczos steps from v_l and tau_lj the first components of T's eigenvectors; `stderr` is the
    spread across probes / sqrt(L). With a per-coordinate precision A (a network whose leaves have
    different Normal scales, or an array `prior_precision`) the spectrum is of A^-1/2 H A^-1/2.
    Negative Ritz values (a saddle, or rounding) count as 0 in d_eff. The quadrature converges
    like exp(-2 m sqrt(alpha / lambda_max)) for a positive spectrum: an ill-conditioned H
    needs m ~ sqrt(lambda_max / alpha) steps (see `quadrature_error`); an indefinite one more.

    **Arguments:**

    - `posterior`: a network `bo.Posterior` or NumPyro target; `position` an unconstrained position.
    - `key`: draws the probes.
    - `prior_precision`: alpha, a number or a position-shaped pytree; default 1/scale^2 of the
      leaves' Normal priors at the position, 1 for everything else.
    - `num_probes`, `lanczos_steps` (clipped to d): SLQ sizes.
    - `curvature`: `"hessian"` or `"ggn"` (network posteriors only).
    """
    target = as_target(posterior)
    flat, _ = ravel_pytree(position)
    d = int(flat.shape[0])
    if not isinstance(num_probes, int) or num_probes < 1:
        raise ValueError(f"`num_probes` must be a positive int, got {num_probes!r}.")
    if not isinstance(lanczos_steps, int) or lanczos_steps < 1:
        raise ValueError(f"`lanczos_steps` must be a positive int, got {lanczos_steps!r}.")
    if prior_precision is None:
        precision = prior_precision_vector(target, position)
    elif np.ndim(prior_precision) == 0 and not isinstance(prior_precision, dict):
        precision = jnp.full((d,), float(prior_precision))
    else:
        precision = ravel_pytree(prior_precision)[0]
    if precision.shape != (d,) or not bool(jnp.all(precision > 0)):
        raise ValueError("`prior_precision` must be > 0 (a number or a position-shaped pytree).")
    isotropic = bool(jnp.all(precision == precision[0]))
    alpha = float(precision[0]) if isotropic else 1.0
    scale = jnp.ones((d,)) if isotropic else 1.0 / jnp.sqrt(precision)
    probes = jax.random.rademacher(key, (num_probes, d), dtype=flat.dtype)
    out = _slq(target, position, curvature, scale, probes, min(lanczos_steps, d))
    values, weights, half_values, half_weights = (np.asarray(a, np.float64) for a in out)

    def quadrature(values, weights):
        positive = np.clip(values, 0.0, None)
        return d * np.sum(weights * positive / (positive + alpha), axis=1)

    per_probe = quadrature(values, weights)
    half = quadrature(half_values, half_weights)
    return EffectiveDimension(
        value=float(np.mean(per_probe)),
        stderr=_stderr(per_probe),
        quadrature_error=float(abs(np.mean(per_probe) - np.mean(half))),
        num_params=d,
        prior_precision=alpha if isotropic else None,
        ritz_values=values,
        ritz_weights=weights,
        top_eigenvalues=np.sort(values[0])[::-1].copy(),
        curvature=curvature,
    )


# ---------------------------------------------------------------------------- learning coefficient


@dataclasses.dataclass(frozen=True)
class LearningCoefficient:
    """The local learning coefficient lambda-hat (host).

    **Fields:** `value` (mean over chains), `stderr` (std over chains / sqrt(num_chains)),
    `chain_values` `(num_chains,)`, `trace` `(num_steps,)`: n beta* (L_n(w_t) - L_n(w*)) at every
    step, averaged over chains (the minibatch estimate of L_n when `batch_size` is set),
    `beta` (beta* = 1 / log n), `num_data`, `loss_at_center` L_n(w*), `diverged` (a chain turned
    non-finite: reduce `step_size`).
    """

    value: float
    stderr: float
    chain_values: np.ndarray
    trace: np.ndarray
    beta: float
    num_data: int
    loss_at_center: float
    diverged: bool

    def __str__(self) -> str:
        text = f"lambda-hat = {self.value:.3f} ± {self.stderr:.3f} (n = {self.num_data})"
        return text + (" [DIVERGED: reduce step_size]" if self.diverged else "")


@eqx.filter_jit
def _llc_chains(target, center, keys, num_steps, num_burnin, step_size, gamma, beta, batch_size):
    flat0, unravel = ravel_pytree(center)
    n = target.num_data
    posterior = target.posterior

    def mean_loss(x, indices):
        if batch_size is None:
            return -jnp.mean(target.pointwise_loglikelihood(unravel(x)))
        assert isinstance(posterior, Posterior)
        batch = posterior.data.take(indices)
        values = posterior.pointwise_loglikelihood(unravel(x), batch)
        return -jnp.mean(values.reshape(values.shape[0], -1).sum(axis=1))

    loss_center = -jnp.mean(target.pointwise_loglikelihood(center))

    def log_density(x, indices):
        loss = mean_loss(x, indices)
        return -n * beta * loss - 0.5 * gamma * jnp.sum((x - flat0) ** 2), loss

    def chain(key):
        def step(x, k):
            k_batch, k_noise = jax.random.split(k)
            size = 1 if batch_size is None else batch_size
            indices = jax.random.choice(k_batch, n, (size,), replace=False)
            (_, loss), grad = jax.value_and_grad(log_density, has_aux=True)(x, indices)
            noise = jax.random.normal(k_noise, x.shape, x.dtype)
            x_new = x + 0.5 * step_size * grad + jnp.sqrt(step_size) * noise
            return x_new, loss

        _, losses = jax.lax.scan(step, flat0, jax.random.split(key, num_steps))
        return losses

    losses = jax.vmap(chain)(keys)
    draws = n * beta * (losses - loss_center)
    return draws, loss_center, jnp.mean(draws[:, num_burnin:], axis=1)


def learning_coefficient(
    posterior: AbstractPosterior | Target,
    position: PyTree,
    *,
    key: PRNGKeyArray,
    num_chains: int = 4,
    num_steps: int = 2000,
    num_burnin: int | None = None,
    step_size: float = 1e-4,
    localization: float = 1.0,
    batch_size: int | None = None,
) -> LearningCoefficient:
    """The local learning coefficient at a local minimum w* = `position` (Lau et al.):

        lambda-hat = n beta* (E_w^beta*[L_n(w)] - L_n(w*)),   beta* = 1 / log n,

    L_n(w) = -(1/n) sum_i log P_w(x_i) (untempered), the expectation under the localised tempered
    posterior  p(w) ~ exp(-n beta* L_n(w) - (gamma/2) ||w - w*||^2)  (no prior: the localisation
    replaces it), sampled by SGLD in the unconstrained coordinates,
    w <- w + (step/2) grad log p(w) + sqrt(step) xi, with L_n on a minibatch when `batch_size`
    is set (network posteriors), from w* for `num_steps` steps, the first `num_burnin`
    (default a quarter) dropped.

    For a regular model lambda = d/2; for a singular one it is smaller. It is the exponent of the
    weight of the hypothesis at small eps: W(eps) ~ c eps^lambda (-log eps)^(m-1) (Watanabe), so
    lambda is the slope d log W / d log eps as eps -> 0 (the multiplicity m adds a log factor).

    Why its own SGLD loop, not `bo.SGLD`: the target is neither a bayesover posterior (no prior,
    a localising Gaussian centred at w*, temperature 1/beta*) nor restricted to networks; the loop
    is a dozen lines on `Target`, for network and NumPyro targets alike.

    **Arguments:** `num_chains`, `num_steps`, `step_size` (keep step * n beta* * curvature << 1),
    `localization` gamma, `batch_size` (None: full batch).
    """
    target = as_target(posterior)
    n = target.num_data
    if n < 2:
        raise ValueError("the learning coefficient needs at least 2 data points (beta* = 1/log n).")
    for name, value in (("num_chains", num_chains), ("num_steps", num_steps)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
    num_burnin = num_steps // 4 if num_burnin is None else num_burnin
    if not isinstance(num_burnin, int) or not 0 <= num_burnin < num_steps:
        raise ValueError(f"`num_burnin` must be an int in [0, num_steps), got {num_burnin!r}.")
    if not (step_size > 0 and localization >= 0):
        raise ValueError("`step_size` must be > 0 and `localization` >= 0.")
    if batch_size is not None:
        if not isinstance(target.posterior, Posterior):
            raise ValueError("`batch_size` needs a network bo.Posterior (NumPyro: full batch).")
        if not isinstance(batch_size, int) or not 1 <= batch_size <= n:
            raise ValueError(f"`batch_size` must be an int in [1, {n}], got {batch_size!r}.")
    beta = 1.0 / math.log(n)
    keys = jax.random.split(key, num_chains)
    draws, loss_center, chain_values = _llc_chains(
        target,
        position,
        keys,
        num_steps,
        num_burnin,
        float(step_size),
        float(localization),
        beta,
        batch_size,
    )
    draws, chain_values = np.asarray(draws, np.float64), np.asarray(chain_values, np.float64)
    diverged = not bool(np.all(np.isfinite(draws)))
    return LearningCoefficient(
        value=float(np.mean(chain_values)),
        stderr=_stderr(chain_values),
        chain_values=chain_values,
        trace=np.mean(draws, axis=0),
        beta=beta,
        num_data=n,
        loss_at_center=float(loss_center),
        diverged=diverged,
    )
