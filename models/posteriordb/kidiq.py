"""posteriordb `kidiq-kidscore_momiq`: child's test score on mother's IQ (N=434).

beta[1], beta[2] flat,  sigma ~ HalfCauchy(0, 2.5),
kid_score ~ N(beta[1] + beta[2] * mom_iq, sigma).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import ArrayLike

import bayesover

from ._reference import problem

POSTERIOR_NAME = "kidiq-kidscore_momiq"
POSTERIOR_NAMES = (POSTERIOR_NAME,)


def model(*, kid_score: ArrayLike, mom_iq: ArrayLike) -> None:
    """beta flat on R^2, sigma ~ HalfCauchy(2.5), kid_score ~ N(beta1 + beta2 mom_iq, sigma)."""
    beta = numpyro.sample("beta", dist.ImproperUniform(dist.constraints.real_vector, (), (2,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    mean = beta[0] + beta[1] * mom_iq
    numpyro.sample("kid_score", dist.Normal(mean, sigma).to_event(1), obs=kid_score)


def model_kwargs(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's keyword data (kid_score, mom_iq; the other fields are unused)."""
    return {
        "kid_score": np.asarray(data["kid_score"], dtype=np.float64),
        "mom_iq": np.asarray(data["mom_iq"], dtype=np.float64),
    }


def build(seed: int = 0, **options: Any) -> bayesover.Problem:
    """The posterior on the posteriordb data (no held-out set; `seed` is unused)."""
    del seed
    return problem(POSTERIOR_NAME, model, model_kwargs, options)
