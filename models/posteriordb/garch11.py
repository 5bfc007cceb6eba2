"""posteriordb `garch-garch11`: GARCH(1,1) volatility model (T=200, sigma1=0.5).

    mu flat,  alpha0 > 0 flat,  alpha1 in (0, 1) flat,  beta1 in (0, 1 - alpha1) flat,
    s[1] = sigma1,  s[t]^2 = alpha0 + alpha1 (y[t-1] - mu)^2 + beta1 s[t-1]^2,
    y[t] ~ N(mu, s[t]),  t = 1..T.

The joint constraint beta1 < 1 - alpha1 is a dependent support, exactly as Stan declares it:
`beta1` is sampled from `ImproperUniform(interval(0, 1 - alpha1))`. NumPyro marks the model as
having a dynamic support and replays it when (un)constraining, so beta1 = (1 - alpha1)
sigmoid(z) with log-Jacobian log(beta1 (1 - alpha1 - beta1) / (1 - alpha1)) (Stan's transform).
Any wrapper must constrain through NumPyro's `constrain_fn`/`postprocess_fn` (model replay),
not through the static per-site transforms recorded at initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike

import bayesover

from ._reference import problem

POSTERIOR_NAME = "garch-garch11"
POSTERIOR_NAMES = (POSTERIOR_NAME,)


def volatility(
    y: ArrayLike,
    mu: ArrayLike,
    alpha0: ArrayLike,
    alpha1: ArrayLike,
    beta1: ArrayLike,
    sigma1: ArrayLike,
) -> Array:
    """s[1] = sigma1, s[t] = sqrt(alpha0 + alpha1 (y[t-1] - mu)^2 + beta1 s[t-1]^2) (scalars)."""
    y = jnp.asarray(y)
    s1 = jnp.asarray(sigma1, dtype=jnp.result_type(y, mu, alpha0, alpha1, beta1))

    def step(s_prev: Array, y_prev: Array) -> tuple[Array, Array]:
        s = jnp.sqrt(alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * s_prev**2)
        return s, s

    _, rest = jax.lax.scan(step, s1, y[:-1])
    return jnp.concatenate([s1[None], rest])


def model(*, y: ArrayLike, sigma1: ArrayLike) -> None:
    """y[t] ~ N(mu, s[t]) with the GARCH(1,1) volatility recursion; flat priors."""
    positive, unit = dist.constraints.positive, dist.constraints.unit_interval
    mu = numpyro.sample("mu", dist.ImproperUniform(dist.constraints.real, (), ()))
    alpha0 = numpyro.sample("alpha0", dist.ImproperUniform(positive, (), ()))
    alpha1 = numpyro.sample("alpha1", dist.ImproperUniform(unit, (), ()))
    beta1_support = dist.constraints.interval(0.0, 1.0 - alpha1)
    beta1 = numpyro.sample("beta1", dist.ImproperUniform(beta1_support, (), ()))
    s = volatility(y, mu, alpha0, alpha1, beta1, sigma1)
    numpyro.sample("y", dist.Normal(mu, s).to_event(1), obs=y)


def model_kwargs(data: Mapping[str, Any]) -> dict[str, Any]:
    """The model's keyword data from the posteriordb data dict."""
    return {"y": np.asarray(data["y"], dtype=np.float64), "sigma1": float(data["sigma1"])}


def build(seed: int = 0, **options: Any) -> bayesover.Problem:
    """The posterior on the posteriordb data (no held-out set; `seed` is unused)."""
    del seed
    return problem(POSTERIOR_NAME, model, model_kwargs, options)
