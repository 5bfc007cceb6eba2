"""K(theta): the per-sample KL divergence from the truth, as a function of a position.

    K(theta) = D(P_theta0 || P_theta)    (supervised: E_x D(P_theta0(. | x) || P_theta(. | x)))

`kl_from_sample` estimates it on a FIXED large sample z_1..z_m from the truth (the same sample
for every theta, so K is a deterministic, smooth function of theta and its level sets are what
the weight curve measures):

    K_m(theta) = (1/m) sum_i [log P_theta0(z_i) - log P_theta(z_i)].

`kl_gaussian_outputs` is the exact-in-y variant for a network with a Gaussian likelihood of
known scale: (1/m) sum_i ||f_theta(x_i) - f0(x_i)||^2 / (2 sigma^2) (no noise from sampled
targets). Any user function `position -> K` (an exact KL) is accepted wherever a K is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior, Posterior

KL = Callable[[PyTree], Float[Array, ""]]


class SampleKL(eqx.Module):
    """K_m(position) = mean_i [truth_loglik_i - log P_position(z_i)] on a fixed truth sample."""

    target: Target
    truth_loglik: Float[Array, " m"]

    def __call__(self, position: PyTree) -> Float[Array, ""]:
        return jnp.mean(self.truth_loglik - self.target.pointwise_loglikelihood(position))


class GaussianOutputKL(eqx.Module):
    """K(position) = mean_i ||f_position(x_i) - f0(x_i)||^2 / (2 sigma^2)."""

    posterior: Posterior
    teacher_outputs: Array
    sigma: float = eqx.field(static=True)

    def __call__(self, position: PyTree) -> Float[Array, ""]:
        net = self.posterior.constrain(position)["net"]
        outputs = jax.vmap(lambda x: self.posterior.model.apply(net, x))(self.posterior.data.inputs)
        diff = outputs.reshape(self.teacher_outputs.shape) - self.teacher_outputs
        squared = jnp.sum(diff.reshape(diff.shape[0], -1) ** 2, axis=1)
        return jnp.mean(squared) / (2 * self.sigma**2)


def kl_from_sample(posterior: AbstractPosterior | Target, truth_loglik: Any) -> SampleKL:
    """K(theta) estimated on a fixed sample from the truth.

    **Arguments:**

    - `posterior`: a network `bo.Posterior` or NumPyro target built on the truth sample
      (typically large, m >> n; only its data and likelihood are used, never its prior).
    - `truth_loglik`: `(m,)` values log P_theta0(z_i) of the truth at that sample (supervised:
      log P_theta0(y_i | x_i)).

    **Returns:** a `SampleKL`, a callable `position -> K`.
    """
    target = as_target(posterior)
    values = jnp.asarray(truth_loglik, jnp.float32).reshape(-1)
    if values.shape[0] != target.num_data:
        raise ValueError(
            f"`truth_loglik` has {values.shape[0]} values but the posterior has "
            f"{target.num_data} data points; give log P_theta0 at each of them."
        )
    if not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError("`truth_loglik` holds NaN or inf values.")
    return SampleKL(target, values)


def kl_gaussian_outputs(
    posterior_on_inputs: Posterior, teacher_outputs: Any, sigma: float
) -> GaussianOutputKL:
    """Exact-in-y K for a Gaussian likelihood of known scale `sigma`:
    K(theta) = mean_i ||f_theta(x_i) - f0(x_i)||^2 / (2 sigma^2).

    **Arguments:**

    - `posterior_on_inputs`: a network `bo.Posterior` whose data inputs are the x_i (the
      targets are not used).
    - `teacher_outputs`: `(m, ...)` the truth's outputs f0(x_i).
    - `sigma`: the likelihood's known noise scale, > 0.
    """
    if not isinstance(posterior_on_inputs, Posterior):
        raise TypeError(
            "`posterior_on_inputs` must be a network bo.Posterior, got "
            f"{type(posterior_on_inputs).__name__}."
        )
    if not (float(sigma) > 0 and jnp.isfinite(sigma)):
        raise ValueError(f"`sigma` must be a finite number > 0, got {sigma!r}.")
    outputs = jnp.asarray(teacher_outputs, jnp.float32)
    m = posterior_on_inputs.num_data
    if outputs.shape[0] != m:
        raise ValueError(
            f"`teacher_outputs` has {outputs.shape[0]} rows but the posterior has {m} inputs."
        )
    return GaussianOutputKL(posterior_on_inputs, outputs, float(sigma))


def as_kl(kl: Any) -> KL:
    """`kl` as a function `position -> K`: any callable passes through."""
    if not callable(kl):
        raise TypeError(
            "`kl` must be a function position -> K (e.g. from bo.lens.kl_from_sample), got "
            f"{type(kl).__name__}."
        )
    return kl
