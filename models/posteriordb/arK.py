"""posteriordb `arK-arK`: autoregressive model of order K=5 (T=200).

    alpha ~ N(0, 10),  beta[k] ~ N(0, 10),  sigma ~ HalfCauchy(0, 2.5),
    y[t] ~ N(alpha + sum_k beta[k] y[t-k], sigma),  t = K+1..T.

`K` is a static Python int (it fixes the shape of `beta`).
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

POSTERIOR_NAME = "arK-arK"
POSTERIOR_NAMES = (POSTERIOR_NAME,)


def model(*, y: ArrayLike, K: int) -> None:
    """y[t] ~ N(alpha + sum_{k=1..K} beta[k] y[t-k], sigma) for t > K."""
    y = jnp.asarray(y)
    n_time = y.shape[0]
    # lags[t - K, k - 1] = y[t - k] (0-based t = K..T-1)
    lags = jnp.stack([y[K - k : n_time - k] for k in range(1, K + 1)], axis=-1)
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([K]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    numpyro.sample("y", dist.Normal(alpha + lags @ beta, sigma).to_event(1), obs=y[K:])


def model_kwargs(data: Mapping[str, Any]) -> dict[str, Any]:
    """The model's keyword data from the posteriordb data dict."""
    return {"y": np.asarray(data["y"], dtype=np.float64), "K": int(data["K"])}


def build(seed: int = 0, **options: Any) -> bayesover.Problem:
    """The posterior on the posteriordb data (no held-out set; `seed` is unused)."""
    del seed
    return problem(POSTERIOR_NAME, model, model_kwargs, options)
