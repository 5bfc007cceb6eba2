"""A classification BNN on scikit-learn data that ships offline (breast_cancer or digits).

A one-hidden-layer tanh MLP with K logits (breast_cancer: 30 -> 16 -> 2, 530 weights;
digits: 64 -> 16 -> 10, 1,210 weights), fan-in scaled Normal prior, Categorical likelihood.
Inputs are standardised with the training split's statistics.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

import bayesover as bo


def build(
    seed: int = 0, *, dataset: str = "breast_cancer", width: int = 16, test_fraction: float = 0.2
) -> bo.Problem:
    """`bo.Problem(posterior on the training split, test split, name)` for `dataset`."""
    if dataset not in ("breast_cancer", "digits"):
        raise ValueError(f"`dataset` must be 'breast_cancer' or 'digits', got {dataset!r}.")
    train, test = bo.data.load(dataset).split(test_fraction, seed=seed)
    train, standardizer = train.standardize(inputs=True)
    test = standardizer.apply(test)
    num_classes = bo.data.NUM_CLASSES[dataset]
    net = eqx.nn.MLP(
        train.feature_shape[0], num_classes, width, 1, activation=jnp.tanh, key=jax.random.key(seed)
    )
    model = bo.Model(net, bo.priors.FanInNormal(1.0), bo.likelihoods.Categorical())
    return bo.Problem(bo.Posterior(model, train), test, f"classifier_mlp_{dataset}")
