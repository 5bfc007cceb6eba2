"""posteriordb `eight_schools-eight_schools_noncentered`: the non-centred eight schools model.

    theta_trans[j] ~ N(0, 1),  mu ~ N(0, 5),  tau ~ HalfCauchy(0, 5),
    theta[j] = mu + tau * theta_trans[j],  y[j] ~ N(theta[j], sigma[j]),  j = 1..8.

`theta` is a deterministic site (the reference reports `theta[1..8]`, `mu`, `tau`, not
`theta_trans`); `latent_from_reference` inverts it: theta_trans = (theta - mu) / tau.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike

import bayesover

from ._reference import problem

POSTERIOR_NAME = "eight_schools-eight_schools_noncentered"
POSTERIOR_NAMES = (POSTERIOR_NAME,)


def model(*, y: ArrayLike, sigma: ArrayLike) -> None:
    """theta = mu + tau * theta_trans, y ~ N(theta, sigma)."""
    n_schools = jnp.shape(y)[0]
    theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0).expand([n_schools]))
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    theta = numpyro.deterministic("theta", mu + tau * theta_trans)
    numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def model_kwargs(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's keyword data from the posteriordb data dict."""
    return {
        "y": np.asarray(data["y"], dtype=np.float64),
        "sigma": np.asarray(data["sigma"], dtype=np.float64),
    }


def latent_from_reference(values: Mapping[str, ArrayLike], **data: Any) -> dict[str, Array]:
    """Latent sites from reference sites: theta_trans = (theta - mu) / tau."""
    mu, tau = jnp.asarray(values["mu"]), jnp.asarray(values["tau"])
    return {
        "theta_trans": (jnp.asarray(values["theta"]) - mu[..., None]) / tau[..., None],
        "mu": mu,
        "tau": tau,
    }


def build(seed: int = 0, **options: Any) -> bayesover.Problem:
    """The posterior on the posteriordb data (no held-out set; `seed` is unused)."""
    del seed
    return problem(POSTERIOR_NAME, model, model_kwargs, options)
