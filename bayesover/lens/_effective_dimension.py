"""`effective_dimension`: the curvature spectrum and MacKay's effective dimension at a point.

d_eff = sum_i lambda_i / (lambda_i + alpha) = tr H (H + alpha)^-1 (MacKay 1992), lambda_i the
eigenvalues of the Hessian (or Gauss-Newton matrix) H of the negative log-likelihood, alpha the
prior precision, by stochastic Lanczos quadrature (Ubaru, Chen and Saad 2017).
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
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray, PyTree

from bayesover._checks import check_int
from bayesover.lens._curvature import curvature_matvec, prior_precision_vector
from bayesover.lens._lanczos import lanczos, ritz
from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior


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
    num_probes = check_int("num_probes", num_probes, 1)
    lanczos_steps = check_int("lanczos_steps", lanczos_steps, 1)
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
