"""Posterior log densities: gradients, the minibatch estimator, priors, likelihoods, NumPyro."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.contrib.module import random_eqx_module

import bayesover as bo

N, D, H = 24, 3, 5


@pytest.fixture(scope="module")
def net():
    return eqx.nn.MLP(D, 1, H, 1, activation=jnp.tanh, key=jax.random.key(1))


@pytest.fixture(scope="module")
def data():
    x = jax.random.normal(jax.random.key(2), (N, D))
    return bo.Data(x, jnp.sin(x[:, 0]) + 0.1 * x[:, 1])


@pytest.fixture(scope="module")
def hierarchical_posterior(net, data):
    model = bo.Model(net, bo.priors.Hierarchical(), bo.likelihoods.Gaussian(scale=None))
    return bo.Posterior(model, data)


def test_position_holds_net_prior_and_likelihood_parameters(hierarchical_posterior):
    position = hierarchical_posterior.initial_position(jax.random.key(0))
    assert set(position) == {"net", "prior", "likelihood"}
    assert set(position["prior"]) == {
        "layers[0].weight",
        "layers[0].bias",
        "layers[1].weight",
        "layers[1].bias",
    }
    assert set(position["likelihood"]) == {"scale"}
    values = hierarchical_posterior.constrain(position)
    assert float(values["likelihood"]["scale"]) > 0
    assert all(float(v["scale"]) > 0 for v in values["prior"].values())


def test_gradient_matches_finite_differences(hierarchical_posterior):
    posterior = hierarchical_posterior
    position = posterior.initial_position(jax.random.key(3))
    flat, unravel = jax.flatten_util.ravel_pytree(position)
    f = jax.jit(lambda v: posterior.logdensity(unravel(v)))
    grad = jax.grad(lambda v: posterior.logdensity(unravel(v)))(flat)
    rng = np.random.default_rng(0)
    for _ in range(3):
        direction = jnp.asarray(rng.normal(size=flat.shape), jnp.float32)
        direction = direction / jnp.linalg.norm(direction)
        h = 1e-2
        numeric = (f(flat + h * direction) - f(flat - h * direction)) / (2 * h)
        assert float(numeric) == pytest.approx(float(grad @ direction), rel=2e-2, abs=2e-2)


def test_minibatch_estimator_averages_to_full_logdensity_over_an_epoch(hierarchical_posterior):
    posterior = hierarchical_posterior
    position = posterior.initial_position(jax.random.key(4))
    batches = posterior.data.batch_indices(jax.random.key(5), 6)
    assert batches.shape == (4, 6)
    estimates = [posterior.logdensity_estimate(position, posterior.data.take(b)) for b in batches]
    assert float(jnp.mean(jnp.stack(estimates))) == pytest.approx(
        float(posterior.logdensity(position)), rel=1e-5
    )


def test_fan_in_normal_uses_one_over_sqrt_fan_in_per_layer(net, data):
    gain = 1.7
    posterior = bo.Posterior(
        bo.Model(net, bo.priors.FanInNormal(gain), bo.likelihoods.Gaussian()), data
    )
    position = posterior.initial_position()
    expected = 0.0
    for name, leaf in [
        ("layers[0].weight", net.layers[0].weight),
        ("layers[0].bias", net.layers[0].bias),
        ("layers[1].weight", net.layers[1].weight),
        ("layers[1].bias", net.layers[1].bias),
    ]:
        fan_in = D if name.startswith("layers[0]") else H
        expected += float(jnp.sum(dist.Normal(0, gain / np.sqrt(fan_in)).log_prob(leaf)))
    assert float(posterior.log_prior(position)) == pytest.approx(expected, rel=1e-5)


def test_uniform_prior_is_a_transform_into_the_box(net, data):
    half_width = 0.8
    model = bo.Model(net, bo.priors.Uniform(half_width), bo.likelihoods.Gaussian())
    posterior = bo.Posterior(model, data)
    far = jax.tree.map(lambda x: 50.0 * jnp.ones_like(x), posterior.initial_position())
    weights = jax.tree.leaves(posterior.constrain(far)["net"])
    assert all(bool(jnp.all(jnp.abs(w) <= half_width)) for w in weights)
    # Density of u is the uniform density times the sigmoid map's Jacobian.
    position = posterior.initial_position(jax.random.key(0))
    u = jax.tree.leaves(position["net"])
    jacobian = sum(
        float(jnp.sum(jnp.log(2 * half_width) + jax.nn.log_sigmoid(x) + jax.nn.log_sigmoid(-x)))
        for x in u
    )
    size = sum(x.size for x in u)
    expected = -size * np.log(2 * half_width) + jacobian
    assert float(posterior.log_prior(position)) == pytest.approx(expected, rel=1e-4)
    # Module weights outside the box are refused at start.
    with pytest.raises(ValueError, match="outside the support"):
        bo.Model(net, bo.priors.Uniform(1e-3), bo.likelihoods.Gaussian()).initial_position()


def test_priors_per_leaf_by_function_and_by_pytree(net, data):
    def by_path(path, leaf):
        return bo.priors.Laplace(0.5) if path.endswith("bias") else bo.priors.Normal(2.0)

    model = bo.Model(net, by_path, bo.likelihoods.Gaussian())
    assert [type(p).__name__ for p in model.priors] == ["Normal", "Laplace", "Normal", "Laplace"]
    params, _ = eqx.partition(net, eqx.is_inexact_array)
    tree = jax.tree.map(lambda _: bo.priors.Normal(3.0), params)
    tree = eqx.tree_at(lambda t: t.layers[1].weight, tree, bo.priors.Laplace(1.0))
    model = bo.Model(net, tree, bo.likelihoods.Gaussian())
    assert [type(p).__name__ for p in model.priors] == ["Normal", "Normal", "Laplace", "Normal"]
    position = model.initial_position()
    expected = sum(
        float(jnp.sum(d.log_prob(x)))
        for d, x in zip(
            [dist.Normal(0, 3.0), dist.Normal(0, 3.0), dist.Laplace(0, 1.0), dist.Normal(0, 3.0)],
            jax.tree.leaves(params),
            strict=False,
        )
    )
    assert float(model.log_prior(position)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "likelihood, targets, reference",
    [
        (bo.likelihoods.Gaussian(0.7), [0.3, -1.0], lambda f, y: dist.Normal(f, 0.7).log_prob(y)),
        (
            bo.likelihoods.StudentT(3.0, 0.5),
            [0.3, -1.0],
            lambda f, y: dist.StudentT(3.0, f, 0.5).log_prob(y),
        ),
        (bo.likelihoods.Bernoulli(), [0, 1], lambda f, y: dist.BernoulliLogits(f).log_prob(y)),
        (bo.likelihoods.Poisson(), [0, 4], lambda f, y: dist.Poisson(jnp.exp(f)).log_prob(y)),
    ],
)
def test_scalar_likelihoods_match_numpyro(likelihood, targets, reference):
    x = jnp.array([[0.2], [-0.4]])
    net = eqx.nn.Linear(1, 1, key=jax.random.key(0))
    y = jnp.asarray(targets)
    posterior = bo.Posterior(bo.Model(net, bo.priors.Normal(), likelihood), bo.Data(x, y))
    position = posterior.initial_position()
    f = jax.vmap(net)(x)[:, 0]
    np.testing.assert_allclose(
        posterior.pointwise_loglikelihood(position), reference(f, y.astype(f.dtype)), rtol=1e-5
    )


def test_categorical_likelihood_matches_log_softmax():
    x = jax.random.normal(jax.random.key(0), (5, 2))
    y = jnp.array([0, 2, 1, 1, 0])
    net = eqx.nn.Linear(2, 3, key=jax.random.key(1))
    posterior = bo.Posterior(
        bo.Model(net, bo.priors.Normal(), bo.likelihoods.Categorical()), bo.Data(x, y)
    )
    logits = jax.vmap(net)(x)
    expected = jax.nn.log_softmax(logits)[jnp.arange(5), y]
    np.testing.assert_allclose(
        posterior.pointwise_loglikelihood(posterior.initial_position()), expected, rtol=1e-5
    )


def test_learned_gaussian_scale_has_its_prior_and_jacobian(net, data):
    prior = dist.HalfNormal(2.0)
    model = bo.Model(net, bo.priors.Normal(), bo.likelihoods.Gaussian(None, scale_prior=prior))
    posterior = bo.Posterior(model, data)
    position = posterior.initial_position()
    log_scale = jnp.asarray(-0.3)
    moved = {**position, "likelihood": {"scale": log_scale}}
    fixed = bo.Posterior(
        bo.Model(net, bo.priors.Normal(), bo.likelihoods.Gaussian(float(jnp.exp(log_scale)))), data
    )
    expected = fixed.logdensity(position) + prior.log_prob(jnp.exp(log_scale)) + log_scale
    assert float(posterior.logdensity(moved)) == pytest.approx(float(expected), rel=1e-5)


# -- NumPyro interop --------------------------------------------------------------------------


def test_numpyro_and_direct_paths_agree_up_to_a_constant(net, data):
    direct = bo.Posterior(bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(0.5)), data)

    def numpyro_model(x, y):
        module = random_eqx_module("net", net, prior=dist.Normal(0.0, 1.0), scope_divider="__")
        mean = jax.vmap(module)(x)[:, 0]
        numpyro.sample("y", dist.Normal(mean, 0.5), obs=y)

    target = bo.Posterior.from_numpyro(numpyro_model, data.inputs, data.targets)
    differences = []
    for seed in range(3):
        position = direct.initial_position(jax.random.key(seed))
        named = {
            f"net__{path}": leaf
            for path, leaf in zip(
                [i.path for i in direct.model.infos], jax.tree.leaves(position["net"]), strict=False
            )
        }
        assert set(named) == set(target.initial_position())
        differences.append(float(direct.logdensity(position) - target.logdensity(named)))
    np.testing.assert_allclose(differences, differences[0], atol=1e-3)


def test_numpyro_posterior_constrains_named_sites_and_tempers_observations():
    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
        numpyro.deterministic("mu_twice", 2 * mu)
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)

    y = jnp.array([0.5, 1.5, 1.0])
    posterior = bo.Posterior.from_numpyro(model, y)
    cold = bo.Posterior.from_numpyro(model, y, temperature=0.5)
    position = {"mu": jnp.asarray(0.7), "sigma": jnp.asarray(-0.2)}  # sigma unconstrained: log
    values = posterior.constrain(position)
    assert float(values["sigma"]) == pytest.approx(float(jnp.exp(-0.2)), rel=1e-6)
    assert float(values["mu_twice"]) == pytest.approx(1.4, rel=1e-6)
    loglik = jnp.sum(dist.Normal(0.7, jnp.exp(-0.2)).log_prob(y))
    log_prior = dist.Normal(0, 5).log_prob(0.7) + dist.HalfNormal(2.0).log_prob(jnp.exp(-0.2)) - 0.2
    assert float(posterior.logdensity(position)) == pytest.approx(
        float(log_prior + loglik), rel=1e-5
    )
    assert float(cold.logdensity(position)) == pytest.approx(
        float(log_prior + 2 * loglik), rel=1e-5
    )
    np.testing.assert_allclose(
        posterior.pointwise_loglikelihood(position)["y"],
        dist.Normal(0.7, jnp.exp(-0.2)).log_prob(y),
        rtol=1e-5,
    )
    assert set(posterior.initial_position(jax.random.key(0))) == {"mu", "sigma"}
