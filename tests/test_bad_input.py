"""Bad input gets a clear error that names the argument and what was expected."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayesover as bo

X = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
Y = X[:, 0].copy()


@pytest.fixture(scope="module")
def net():
    return eqx.nn.MLP(3, 1, 4, 1, key=jax.random.key(0))


@pytest.mark.parametrize("name", ["inputs", "targets"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data(name, bad):
    x, y = X.copy(), Y.copy()
    (x if name == "inputs" else y)[3] = bad
    with pytest.raises(ValueError, match=name):
        bo.Data(x, y)


def test_empty_data_set():
    with pytest.raises(ValueError, match="empty"):
        bo.Data(np.zeros((0, 3)), np.zeros((0,)))


def test_output_shape_that_does_not_fit_the_targets():
    net = eqx.nn.MLP(3, 2, 4, 1, key=jax.random.key(0))
    model = bo.Model(net, bo.priors.Normal(), bo.likelihoods.Gaussian())
    with pytest.raises(ValueError, match=r"output shape \(2,\) does not fit targets"):
        bo.Posterior(model, bo.Data(X, Y))


def test_input_shape_that_does_not_fit_the_module(net):
    model = bo.Model(net, bo.priors.Normal(), bo.likelihoods.Gaussian())
    with pytest.raises(ValueError, match="cannot be applied to one input of shape"):
        bo.Posterior(model, bo.Data(X[:, :2], Y))


def test_labels_out_of_range_for_categorical():
    net = eqx.nn.MLP(3, 3, 4, 1, key=jax.random.key(0))
    model = bo.Model(net, bo.priors.Normal(), bo.likelihoods.Categorical())
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        bo.Posterior(model, bo.Data(X, labels))


def test_real_targets_for_categorical_and_labels_for_gaussian(net):
    logits_net = eqx.nn.MLP(3, 3, 4, 1, key=jax.random.key(0))
    with pytest.raises(TypeError, match="integer labels"):
        bo.Posterior(
            bo.Model(logits_net, bo.priors.Normal(), bo.likelihoods.Categorical()), bo.Data(X, Y)
        )
    with pytest.raises(TypeError, match="real-valued"):
        bo.Posterior(
            bo.Model(net, bo.priors.Normal(), bo.likelihoods.Gaussian()),
            bo.Data(X, np.arange(10)),
        )


def test_bernoulli_and_poisson_target_values(net):
    with pytest.raises(ValueError, match="0 or 1"):
        bo.Posterior(bo.Model(net, bo.priors.Normal(), bo.likelihoods.Bernoulli()), bo.Data(X, Y))
    with pytest.raises(ValueError, match="non-negative integer"):
        bo.Posterior(bo.Model(net, bo.priors.Normal(), bo.likelihoods.Poisson()), bo.Data(X, Y))


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: bo.priors.Normal(0.0), "scale"),
        (lambda: bo.priors.Normal(-1.0), "scale"),
        (lambda: bo.priors.FanInNormal(0.0), "gain"),
        (lambda: bo.priors.Laplace(-2.0), "scale"),
        (lambda: bo.priors.Uniform(0.0), "half_width"),
        (lambda: bo.priors.Uniform(float("inf")), "half_width"),
        (lambda: bo.likelihoods.Gaussian(0.0), "scale"),
        (lambda: bo.likelihoods.StudentT(df=-1.0), "df"),
        (lambda: bo.likelihoods.StudentT(scale=0.0), "scale"),
    ],
)
def test_non_positive_scales_and_widths(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


def test_non_positive_temperature(net):
    model = bo.Model(net, bo.priors.Normal(), bo.likelihoods.Gaussian())
    with pytest.raises(ValueError, match="`temperature`"):
        bo.Posterior(model, bo.Data(X, Y), temperature=0.0)


def test_batch_size_larger_than_n(net):
    data = bo.Data(X, Y)
    with pytest.raises(ValueError, match="batch_size"):
        data.batch_indices(jax.random.key(0), 11)
    posterior = bo.Posterior(bo.Model(net, bo.priors.Normal(), bo.likelihoods.Gaussian()), data)
    with pytest.raises(ValueError, match="batch_size"):
        bo.map_estimate(posterior, key=jax.random.key(0), num_steps=5, batch_size=11)


def test_module_without_inexact_array_leaves():
    class Counter(eqx.Module):
        count: jax.Array

        def __call__(self, x):
            return x.sum() + self.count

    with pytest.raises(ValueError, match="no inexact-array leaves"):
        bo.Model(Counter(jnp.array(3)), bo.priors.Normal(), bo.likelihoods.Gaussian())


def test_module_that_is_not_an_equinox_module():
    with pytest.raises(TypeError, match="`module` must be an equinox.Module"):
        bo.Model(lambda x: x, bo.priors.Normal(), bo.likelihoods.Gaussian())


def test_prior_that_is_not_a_prior(net):
    with pytest.raises(TypeError, match="expected a bayesover prior"):
        bo.Model(net, lambda path, leaf: "normal", bo.likelihoods.Gaussian())
    with pytest.raises(ValueError, match="one prior per parameter array"):
        bo.Model(net, [bo.priors.Normal()], bo.likelihoods.Gaussian())
