"""posteriordb `sblri-blr` and `sblrc-blr`: Bayesian linear regression (N=100, D=5).

    beta[d] ~ N(0, 10),  sigma ~ HalfNormal(10),  y ~ N(X beta, sigma).

One model, two data sets: `build(dataset="sblri")` or `build(dataset="sblrc")`.
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

POSTERIOR_NAMES = ("sblri-blr", "sblrc-blr")
POSTERIOR_NAME = POSTERIOR_NAMES[0]


def model(*, X: ArrayLike, y: ArrayLike) -> None:
    """beta ~ N(0, 10 I), sigma ~ HalfNormal(10), y ~ N(X beta, sigma)."""
    n_features = jnp.shape(X)[1]
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([n_features]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(10.0))
    numpyro.sample("y", dist.Normal(jnp.asarray(X) @ beta, sigma).to_event(1), obs=y)


def model_kwargs(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's keyword data from the posteriordb data dict."""
    return {
        "X": np.asarray(data["X"], dtype=np.float64),
        "y": np.asarray(data["y"], dtype=np.float64),
    }


def posterior_name(dataset: str = "sblri") -> str:
    """`sblri-blr` or `sblrc-blr`."""
    name = f"{dataset}-blr"
    if name not in POSTERIOR_NAMES:
        raise ValueError(f"dataset must be 'sblri' or 'sblrc', got {dataset!r}")
    return name


def build(seed: int = 0, dataset: str = "sblri", **options: Any) -> bayesover.Problem:
    """The posterior on data set `dataset` (no held-out set; `seed` is unused)."""
    del seed
    return problem(posterior_name(dataset), model, model_kwargs, options)
