"""posteriordb `mesquite-logmesquite`: log-log regression of mesquite bush weight (N=46).

    beta[1..7] flat,  sigma > 0 flat,
    log weight ~ N(beta[1] + beta[2] log diam1 + beta[3] log diam2 + beta[4] log canopy_height
                   + beta[5] log total_height + beta[6] log density + beta[7] group, sigma).

The logs (Stan's transformed data) are taken inside `model`, which takes the raw data.
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

POSTERIOR_NAME = "mesquite-logmesquite"
POSTERIOR_NAMES = (POSTERIOR_NAME,)

_FIELDS = ("weight", "diam1", "diam2", "canopy_height", "total_height", "density", "group")


def model(
    *,
    weight: ArrayLike,
    diam1: ArrayLike,
    diam2: ArrayLike,
    canopy_height: ArrayLike,
    total_height: ArrayLike,
    density: ArrayLike,
    group: ArrayLike,
) -> None:
    """beta flat on R^7, sigma flat on (0, inf), log weight ~ N(Z beta, sigma)."""
    logs = [jnp.log(v) for v in (diam1, diam2, canopy_height, total_height, density)]
    design = jnp.stack([jnp.ones_like(logs[0]), *logs, jnp.asarray(group, logs[0].dtype)], -1)
    beta = numpyro.sample("beta", dist.ImproperUniform(dist.constraints.real_vector, (), (7,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(dist.constraints.positive, (), ()))
    numpyro.sample("log_weight", dist.Normal(design @ beta, sigma).to_event(1), obs=jnp.log(weight))


def model_kwargs(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's keyword data from the posteriordb data dict."""
    return {k: np.asarray(data[k], dtype=np.float64) for k in _FIELDS}


def build(seed: int = 0, **options: Any) -> bayesover.Problem:
    """The posterior on the posteriordb data (no held-out set; `seed` is unused)."""
    del seed
    return problem(POSTERIOR_NAME, model, model_kwargs, options)
