"""`bo.distill`: one student network fitted to an ensemble's predictive distribution.

Classification: the two-moons deep ensemble of test_deep_ensemble (same shapes and the shared
default optimiser, so the training program compiles once per session), distilled into an MLP
2 -> 32 -> 2 on the training inputs plus jittered copies. Regression: an ensemble of prior draws
of a tiny MLP with a fixed Gaussian noise scale (no training needed).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bayesover as bo

NUM_MEMBERS, NUM_STEPS, BATCH = 4, 400, 50


def two_moons_posterior():
    train = bo.data.two_moons(jax.random.key(0), 100, noise_scale=0.2)
    net = eqx.nn.MLP(2, 2, 16, 1, activation=jnp.tanh, key=jax.random.key(0))
    model = bo.Model(net, bo.priors.FanInNormal(2.0), bo.likelihoods.Categorical())
    return bo.Posterior(model, train)


def student_mlp(out_size=2, in_size=2):
    return eqx.nn.MLP(in_size, out_size, 32, 1, activation=jnp.tanh, key=jax.random.key(5))


@pytest.fixture(scope="module")
def posterior():
    return two_moons_posterior()


@pytest.fixture(scope="module")
def test_data():
    return bo.data.two_moons(jax.random.key(1), 500, noise_scale=0.2)


@pytest.fixture(scope="module")
def ensemble(posterior):
    return bo.deep_ensemble(
        posterior, NUM_MEMBERS, None, NUM_STEPS, key=jax.random.key(0), batch_size=BATCH
    )


@pytest.fixture(scope="module")
def pool(posterior):
    x = posterior.data.inputs
    noise = 0.2 * jax.random.normal(jax.random.key(3), (4, *x.shape))
    return jnp.concatenate([x, *(x + noise)])


@pytest.fixture(scope="module")
def distilled(ensemble, pool):
    return bo.distill(
        ensemble,
        student_mlp(),
        pool,
        key=jax.random.key(4),
        optimizer=optax.adam(1e-2),
        num_steps=1500,
    )


def test_student_nll_is_close_to_the_ensemble(distilled, ensemble, test_data):
    x, y = test_data.inputs, test_data.targets
    ensemble_nll = -float(ensemble.predict(x).log_prob(y).mean())
    student_nll = -float(distilled.log_prob(x, y).mean())
    untrained = bo.DistillResult(
        student_mlp(), distilled.losses, distilled.likelihood, None, distilled.target_shape
    )
    untrained_nll = -float(untrained.log_prob(x, y).mean())
    assert np.isfinite(student_nll)
    assert abs(student_nll - ensemble_nll) < 0.1, (student_nll, ensemble_nll)
    assert student_nll < untrained_nll - 0.2, (student_nll, untrained_nll)
    probs = distilled.predict(x)
    assert probs.shape == (500, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, ensemble.predict(x).probs, atol=0.1)


def test_kl_loss_decreases(distilled):
    losses = np.asarray(distilled.losses)
    assert losses.shape == (1500,)
    assert np.all(np.isfinite(losses)) and np.all(losses > -1e-6)  # a KL divergence
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])


def test_minibatches_and_temperature(ensemble, pool):
    result = bo.distill(
        ensemble,
        student_mlp(),
        pool,
        key=jax.random.key(4),
        optimizer=optax.adam(1e-2),
        num_steps=300,
        batch_size=100,
        temperature=2.0,
    )
    losses = np.asarray(result.losses)
    assert losses.shape == (300,) and np.all(np.isfinite(losses))
    assert losses[-50:].mean() < 0.2 * losses[:10].mean()


@pytest.fixture(scope="module")
def regression_ensemble():
    """Prior draws of a 1 -> 8 -> 1 MLP with Gaussian noise of fixed scale 0.5."""
    x = jnp.linspace(-2.0, 2.0, 40)[:, None]
    data = bo.Data(x, jnp.sin(2.0 * x[:, 0]))
    net = eqx.nn.MLP(1, 1, 8, 1, activation=jnp.tanh, key=jax.random.key(0))
    model = bo.Model(net, bo.priors.FanInNormal(1.0), bo.likelihoods.Gaussian(scale=0.5))
    posterior = bo.Posterior(model, data)
    keys = jax.random.split(jax.random.key(1), 6)
    params = eqx.filter_jit(
        eqx.filter_vmap(lambda k: posterior.constrain(posterior.initial_position(k)))
    )(keys)
    params = jax.tree.map(lambda v: v.reshape(3, 2, *v.shape[1:]), params)
    return bo.Ensemble(params, {}, {"sampler_name": "prior"}, model, data.target_shape), x


def test_regression_student_fits_the_mixture_mean(regression_ensemble):
    ensemble, x = regression_ensemble
    result = bo.distill(
        ensemble,
        student_mlp(1, 1),
        x,
        key=jax.random.key(0),
        optimizer=optax.adam(1e-2),
        num_steps=500,
    )
    losses = np.asarray(result.losses)
    assert losses[-1] < 0.05 * losses[0]
    mean = ensemble.predict(x).mean
    np.testing.assert_allclose(result.predict(x), mean, atol=0.1)
    np.testing.assert_allclose(result.noise_scale, 0.5, rtol=1e-5)  # the aleatoric scale
    y = mean + 0.5
    expected = -0.5 - np.log(0.5) - 0.5 * np.log(2 * np.pi)  # z = 1 at the fitted mean
    np.testing.assert_allclose(result.log_prob(x, y), expected, atol=0.5)


def test_bad_input(ensemble, pool, regression_ensemble):
    key = jax.random.key(0)
    student = student_mlp()
    with pytest.raises(ValueError, match="x_pool"):
        bo.distill(ensemble, student, pool.at[3, 1].set(jnp.nan), key=key)
    with pytest.raises(ValueError, match="x_pool"):
        bo.distill(ensemble, student, pool.at[0, 0].set(jnp.inf), key=key)
    with pytest.raises(ValueError, match="x_pool"):
        bo.distill(ensemble, student_mlp(in_size=3), jnp.ones((10, 3)), key=key)
    with pytest.raises(ValueError, match="output shape"):
        bo.distill(ensemble, student_mlp(out_size=3), pool, key=key)
    with pytest.raises(TypeError, match="student_module"):
        bo.distill(ensemble, lambda x: x, pool, key=key)
    numpyro_like = bo.Ensemble({"mu": jnp.zeros((2, 3))}, {}, {"sampler_name": "NUTS"})
    with pytest.raises(TypeError, match="NumPyro"):
        bo.distill(numpyro_like, student, pool, key=key)
    with pytest.raises(TypeError, match="ensemble"):
        bo.distill("ensemble", student, pool, key=key)
    with pytest.raises(ValueError, match="num_steps"):
        bo.distill(ensemble, student, pool, key=key, num_steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        bo.distill(ensemble, student, pool, key=key, batch_size=501)
    with pytest.raises(ValueError, match="temperature"):
        bo.distill(ensemble, student, pool, key=key, temperature=0.0)
    with pytest.raises(TypeError, match="optimizer"):
        bo.distill(ensemble, student, pool, key=key, optimizer="adam")
    with pytest.raises(TypeError, match="key"):
        bo.distill(ensemble, student, pool, key=0)
    regression, x = regression_ensemble
    with pytest.raises(ValueError, match="temperature"):
        bo.distill(regression, student_mlp(1, 1), x, key=key, temperature=2.0)
