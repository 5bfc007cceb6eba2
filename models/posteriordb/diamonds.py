"""posteriordb `diamonds-diamonds`: linear regression of log price on 24 centred predictors
(N=5000, K=25; brms-generated Stan model).

    Xc = X[:, 2..K] - column means,  b[1..24] ~ N(0, 1),  Intercept ~ StudentT(3, 8, 10),
    sigma ~ HalfStudentT(3, 0, 10),  Y ~ N(Intercept + Xc b, sigma).

HalfStudentT is the Student-t folded at 0 (`FoldedDistribution`: density 2 t(sigma; 3, 0, 10) on
(0, inf)), i.e. brms's student_t_lpdf(sigma | 3, 0, 10) - student_t_lccdf(0 | 3, 0, 10). (The
equal `TruncatedDistribution` cannot be sampled without tensorflow_probability, which NumPyro's
prior-draw initialisation would need.) The centring (Stan's
transformed data) happens inside `model`, which takes the raw X with its intercept column.
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

POSTERIOR_NAME = "diamonds-diamonds"
POSTERIOR_NAMES = (POSTERIOR_NAME,)


def model(*, X: ArrayLike, Y: ArrayLike) -> None:
    """Y ~ N(Intercept + Xc b, sigma) with Xc the centred non-intercept columns of X."""
    X = jnp.asarray(X)
    Xc = X[:, 1:] - X[:, 1:].mean(axis=0)
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([Xc.shape[1]]).to_event(1))
    intercept = numpyro.sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
    sigma = numpyro.sample("sigma", dist.FoldedDistribution(dist.StudentT(3.0, 0.0, 10.0)))
    numpyro.sample("Y", dist.Normal(intercept + Xc @ b, sigma).to_event(1), obs=Y)


def model_kwargs(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's keyword data (X with its intercept column, Y; `prior_only` is 0)."""
    if data.get("prior_only", 0):
        raise ValueError("prior_only data are not supported")
    return {
        "X": np.asarray(data["X"], dtype=np.float64),
        "Y": np.asarray(data["Y"], dtype=np.float64),
    }


def build(seed: int = 0, **options: Any) -> bayesover.Problem:
    """The posterior on the posteriordb data (no held-out set; `seed` is unused)."""
    del seed
    return problem(POSTERIOR_NAME, model, model_kwargs, options)
