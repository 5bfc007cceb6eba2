"""posteriordb `gp_pois_regr-gp_pois_regr`: Poisson regression with a latent GP (N=11).

    rho ~ Gamma(shape 25, rate 4),  alpha ~ HalfNormal(2),  f_tilde[i] ~ N(0, 1),
    K = alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)) + 1e-10 I,  f = chol(K) f_tilde,
    k[i] ~ Poisson(exp(f[i])).

`f` is a deterministic site (the reference reports `rho`, `alpha`, `f[1..11]`, not `f_tilde`);
`latent_from_reference` inverts it: f_tilde = chol(K)^{-1} f.

Precision: K has condition number ~1e8 at typical draws, so its Cholesky factor with the stated
1e-10 jitter is sound in float64 only; in float32 it is NaN at about a third of the reference
draws and inaccurate at the others. `build` requires `jax_enable_x64`, or a `jitter` of at least
1e-5 (no NaN at the reference draws in float32), which makes it a slightly different model.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike

import bayesover

from ._reference import problem

POSTERIOR_NAME = "gp_pois_regr-gp_pois_regr"
POSTERIOR_NAMES = (POSTERIOR_NAME,)
JITTER = 1e-10


def kernel_cholesky(x: ArrayLike, rho: ArrayLike, alpha: ArrayLike, jitter: float) -> Array:
    """chol(K), K = alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)) + jitter I (scalar rho, alpha)."""
    x = jnp.asarray(x, dtype=jnp.result_type(rho, alpha, float))
    sq_dist = (x[:, None] - x[None, :]) ** 2
    cov = alpha**2 * jnp.exp(-sq_dist / (2.0 * rho**2)) + jitter * jnp.eye(x.shape[0])
    return jnp.linalg.cholesky(cov)


def model(*, x: ArrayLike, k: ArrayLike, jitter: float = JITTER) -> None:
    """f = chol(K(rho, alpha)) f_tilde, k ~ Poisson(exp f)."""
    n_points = jnp.shape(x)[0]
    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))
    f_tilde = numpyro.sample("f_tilde", dist.Normal(0.0, 1.0).expand([n_points]).to_event(1))
    f = numpyro.deterministic("f", kernel_cholesky(x, rho, alpha, jitter) @ f_tilde)
    numpyro.sample("k", dist.Poisson(jnp.exp(f)).to_event(1), obs=k)


def model_kwargs(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model's keyword data (x, k; `y` is unused)."""
    return {"x": np.asarray(data["x"], dtype=np.float64), "k": np.asarray(data["k"])}


def latent_from_reference(
    values: Mapping[str, ArrayLike], *, x: ArrayLike, jitter: float = JITTER, **data: Any
) -> dict[str, Array]:
    """Latent sites from one reference draw: f_tilde = chol(K)^{-1} f."""
    rho, alpha = jnp.asarray(values["rho"]), jnp.asarray(values["alpha"])
    chol = kernel_cholesky(x, rho, alpha, jitter)
    f_tilde = jax.scipy.linalg.solve_triangular(chol, jnp.asarray(values["f"]), lower=True)
    return {"rho": rho, "alpha": alpha, "f_tilde": f_tilde}


def build(seed: int = 0, jitter: float = JITTER, **options: Any) -> bayesover.Problem:
    """The posterior on the posteriordb data (no held-out set; `seed` is unused).

    Raises `RuntimeError` when 64-bit JAX is off and `jitter < 1e-5` (the float32 Cholesky of K
    is NaN at many draws, see above); with a larger jitter in float32 it warns that the model
    differs from the reference.
    """
    del seed
    if options:  # refused before the float64 check below, as `problem` would
        raise TypeError(f"unexpected options {sorted(options)}")
    if jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
        if jitter < 1e-5:
            raise RuntimeError(
                f"{POSTERIOR_NAME} needs 64-bit JAX (jax.config.update('jax_enable_x64', True)): "
                f"its kernel matrix has condition number ~1e8 and the float32 Cholesky factor "
                f"with jitter {jitter:g} is NaN at many draws; or pass jitter >= 1e-5."
            )
        warnings.warn(
            f"{POSTERIOR_NAME} in float32 with jitter {jitter:g}: a perturbed model; the "
            "reference posterior is for jitter 1e-10 (needs jax_enable_x64).",
            RuntimeWarning,
            stacklevel=2,
        )
    return problem(POSTERIOR_NAME, model, model_kwargs, options, jitter=jitter)
