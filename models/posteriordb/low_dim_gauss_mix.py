"""posteriordb `low_dim_gauss_mix-low_dim_gauss_mix`: two-component normal mixture (N=1000).

    mu ordered (mu[1] < mu[2]), mu[k] ~ N(0, 2),  sigma[k] ~ HalfNormal(2),  theta ~ Beta(5, 5),
    y[n] ~ theta N(mu[1], sigma[1]) + (1 - theta) N(mu[2], sigma[2]).

The ordered prior is Stan's: `mu` is flat on the ordered cone (`ImproperUniform` with support
`ordered_vector`, unconstrained by NumPyro's ordered transform) times the factor
prod_k N(mu[k]; 0, 2), added with `numpyro.factor("mu_prior", ...)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import ArrayLike

import bayesover

from ._reference import problem

POSTERIOR_NAME = "low_dim_gauss_mix-low_dim_gauss_mix"
POSTERIOR_NAMES = (POSTERIOR_NAME,)


def model(*, y: ArrayLike) -> None:
    """y ~ theta N(mu1, sigma1) + (1 - theta) N(mu2, sigma2), mu1 < mu2."""
    mu = numpyro.sample("mu", dist.ImproperUniform(dist.constraints.ordered_vector, (), (2,)))
    numpyro.factor("mu_prior", dist.Normal(0.0, 2.0).log_prob(mu).sum(-1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([2]).to_event(1))
    theta = numpyro.sample("theta", dist.Beta(5.0, 5.0))
    weights = jnp.stack([theta, 1.0 - theta], axis=-1)
    mixture = dist.MixtureSameFamily(dist.Categorical(probs=weights), dist.Normal(mu, sigma))
    numpyro.sample("y", mixture.expand([jnp.shape(y)[0]]).to_event(1), obs=y)


def model_kwargs(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's keyword data from the posteriordb data dict."""
    return {"y": np.asarray(data["y"], dtype=np.float64)}


def build(seed: int = 0, **options: Any) -> bayesover.Problem:
    """The posterior on the posteriordb data (no held-out set; `seed` is unused)."""
    del seed
    return problem(POSTERIOR_NAME, model, model_kwargs, options)
