"""Conjugate Bayesian linear regression, the model whose posterior is known exactly.

    w ~ N(0, prior_scale^2 I_{d+1})   (weights and bias, as one vector [w, b])
    y_i | x_i, w ~ N(w . x_i + b, noise_scale^2)

With design matrix Phi = [X, 1] and T the temperature (likelihood tempered by 1/T):

    Sigma = (I / prior_scale^2 + Phi^T Phi / (T noise_scale^2))^{-1}
    mu    = Sigma Phi^T y / (T noise_scale^2)
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import bayesover as bo


def build(
    seed: int = 0,
    *,
    num_features: int = 3,
    num_points: int = 50,
    prior_scale: float = 1.0,
    noise_scale: float = 0.5,
    temperature: float = 1.0,
) -> bo.Problem:
    """Synthetic data from a random true weight vector; an `eqx.nn.Linear(d, "scalar")` model."""
    key_w, key_x, key_noise, key_net = jax.random.split(jax.random.key(seed), 4)
    true_w = jax.random.normal(key_w, (num_features + 1,))
    x = jax.random.normal(key_x, (2 * num_points, num_features))
    y = x @ true_w[:-1] + true_w[-1] + noise_scale * jax.random.normal(key_noise, (2 * num_points,))
    data = bo.Data(x, y)
    train, test = (
        data.take(jnp.arange(num_points)),
        data.take(jnp.arange(num_points, 2 * num_points)),
    )
    net = eqx.nn.Linear(num_features, "scalar", key=key_net)
    model = bo.Model(net, bo.priors.Normal(prior_scale), bo.likelihoods.Gaussian(noise_scale))
    posterior = bo.Posterior(model, train, temperature=temperature)
    return bo.Problem(posterior, test, "linear_gaussian")


def exact_posterior(posterior: bo.Posterior) -> tuple[np.ndarray, np.ndarray]:
    """Exact posterior mean and covariance of [w_1..w_d, b] (float64, by the formulas above)."""
    prior, likelihood = posterior.model.priors[0], posterior.model.likelihood
    if not isinstance(prior, bo.priors.Normal) or not isinstance(
        likelihood, bo.likelihoods.Gaussian
    ):
        raise TypeError("`posterior` must have a Normal prior and a Gaussian likelihood.")
    if likelihood.scale is None:
        raise ValueError("`posterior`'s Gaussian likelihood must have a fixed noise scale.")
    prior_scale, noise_scale = prior.scale, likelihood.scale
    x = np.asarray(posterior.data.inputs, np.float64)
    y = np.asarray(posterior.data.targets, np.float64)
    phi = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    noise_var = posterior.temperature * noise_scale**2
    precision = np.eye(phi.shape[1]) / prior_scale**2 + phi.T @ phi / noise_var
    covariance = np.linalg.inv(precision)
    return covariance @ phi.T @ y / noise_var, covariance


def flatten(position: dict) -> jax.Array:
    """The position's [w_1..w_d, b] as one vector (the order of `exact_posterior`)."""
    net = position["net"]
    return jnp.concatenate([net.weight.reshape(-1), net.bias.reshape(-1)])
