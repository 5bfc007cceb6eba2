"""posteriordb `nes2000-nes`: party identification regression, NES 2000 (N=476).

    age30_44 = [age_discrete == 2],  age45_64 = [age_discrete == 3],  age65up = [age_discrete == 4],
    beta[1..9] flat,  sigma > 0 flat,
    partyid7 ~ N(beta[1] + beta[2] real_ideo + beta[3] race_adj + beta[4] age30_44
                 + beta[5] age45_64 + beta[6] age65up + beta[7] educ1 + beta[8] gender
                 + beta[9] income, sigma).

The age indicators (Stan's transformed data) are formed inside `model` from the raw data.
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

POSTERIOR_NAME = "nes2000-nes"
POSTERIOR_NAMES = (POSTERIOR_NAME,)

_FIELDS = ("partyid7", "real_ideo", "race_adj", "age_discrete", "educ1", "gender", "income")


def model(
    *,
    partyid7: ArrayLike,
    real_ideo: ArrayLike,
    race_adj: ArrayLike,
    age_discrete: ArrayLike,
    educ1: ArrayLike,
    gender: ArrayLike,
    income: ArrayLike,
) -> None:
    """beta flat on R^9, sigma flat on (0, inf), partyid7 ~ N(Z beta, sigma)."""
    real_ideo = jnp.asarray(real_ideo)
    dtype = real_ideo.dtype
    age = jnp.asarray(age_discrete)
    columns = [jnp.ones_like(real_ideo), real_ideo, race_adj]
    columns += [(age == level).astype(dtype) for level in (2, 3, 4)]
    columns += [educ1, gender, income]
    design = jnp.stack([jnp.asarray(c, dtype) for c in columns], axis=-1)
    beta = numpyro.sample("beta", dist.ImproperUniform(dist.constraints.real_vector, (), (9,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(dist.constraints.positive, (), ()))
    numpyro.sample("partyid7", dist.Normal(design @ beta, sigma).to_event(1), obs=partyid7)


def model_kwargs(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's keyword data (`year` is unused; `age_discrete` stays integer)."""
    out = {k: np.asarray(data[k], dtype=np.float64) for k in _FIELDS if k != "age_discrete"}
    out["age_discrete"] = np.asarray(data["age_discrete"], dtype=np.int64)
    return out


def build(seed: int = 0, **options: Any) -> bayesover.Problem:
    """The posterior on the posteriordb data (no held-out set; `seed` is unused)."""
    del seed
    return problem(POSTERIOR_NAME, model, model_kwargs, options)
