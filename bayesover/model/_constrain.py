"""Unconstrained parameterisation of NumPyro distributions, shared by priors and likelihoods.

Every sampler in bayesover works on R^d. A parameter with a constrained support (a positive
scale, a box) is stored as an unconstrained value `u` and mapped with NumPyro's
`biject_to(support)`; its log density then gains the log-Jacobian of that map:

    log p_U(u) = log p_X(t(u)) + log |det dt/du|.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro.distributions as dist
from jaxtyping import Array, Float
from numpyro.distributions.transforms import biject_to


def constrain(distribution: dist.Distribution, u: Array) -> Array:
    """Map an unconstrained value onto the support of `distribution`."""
    return biject_to(distribution.support)(u)


def unconstrain(distribution: dist.Distribution, x: Array) -> Array:
    """Inverse of `constrain`: map a value in the support back to R^d."""
    return biject_to(distribution.support).inv(x)


def unconstrained_log_prob(
    distribution: dist.Distribution, u: Array, shape: tuple[int, ...]
) -> Float[Array, ""]:
    """Total log density of `u` in unconstrained space, with the Jacobian of the bijection.

    `shape` is the shape of the parameter; the distribution's batch shape broadcasts to it.
    """
    transform = biject_to(distribution.support)
    x = transform(u)
    log_prob = jnp.broadcast_to(distribution.log_prob(x), shape)
    log_det = jnp.broadcast_to(transform.log_abs_det_jacobian(u, x), shape)
    return jnp.sum(log_prob) + jnp.sum(log_det)


def log_prob_dict(
    distributions: dict[str, dist.Distribution], values: dict[str, Array]
) -> tuple[Float[Array, ""], dict[str, Array]]:
    """Log density of a dict of unconstrained hyperparameters, and their constrained values."""
    total = jnp.zeros(())
    constrained = {}
    for name, distribution in distributions.items():
        u = values[name]
        total = total + unconstrained_log_prob(distribution, u, jnp.shape(u))
        constrained[name] = constrain(distribution, u)
    return total, constrained
