"""The bundled default: a small regression BNN on scikit-learn's diabetes data (offline).

A one-hidden-layer tanh MLP (10 -> 16 -> 1, 193 weights) with a fan-in scaled Normal prior and
a Gaussian likelihood whose noise scale is learned under a HalfNormal(1) prior. Inputs and
targets are standardised with the training split's statistics.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

import bayesover as bo


def build(seed: int = 0, *, width: int = 16, test_fraction: float = 0.2) -> bo.Problem:
    """Diabetes regression: `bo.Problem(posterior on the training split, test split, name)`."""
    train, test = bo.data.load("diabetes").split(test_fraction, seed=seed)
    train, standardizer = train.standardize(inputs=True, targets=True)
    test = standardizer.apply(test)
    net = eqx.nn.MLP(
        train.feature_shape[0], 1, width, 1, activation=jnp.tanh, key=jax.random.key(seed)
    )
    model = bo.Model(net, bo.priors.FanInNormal(1.0), bo.likelihoods.Gaussian(scale=None))
    return bo.Problem(bo.Posterior(model, train), test, "regression_mlp")
