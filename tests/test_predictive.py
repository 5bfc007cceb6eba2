"""`bo.Predictive` (`ensemble.predict(x)`): the mixture predictive against brute force.

Every ensemble here is a stack of perturbed weights of a tiny MLP (width 4) on 20 points, built
directly (no sampling). The brute force materialises all members x points at once with `vmap`
and reduces in float64 NumPy; the `Predictive` must agree for every point and member batch
size, including sizes that divide neither the 20 points nor the 10 members.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import bayesover as bo

NUM_POINTS = 20
NUM_CHAINS, NUM_DRAWS = 2, 5  # 10 members
# (64, 64) is clipped to (20 points, 10 members), the default: it reuses the compiled programs
BATCHES = [(None, None), (7, 3), (1, 1), (64, 64)]
Z90 = 1.6448536269514722  # the 0.95 quantile of N(0, 1)


def make_posterior(likelihood, out_size, targets_fn, seed=0):
    x = jax.random.normal(jax.random.key(seed), (NUM_POINTS, 2))
    y = targets_fn(np.asarray(x))
    net = eqx.nn.MLP(2, out_size, 4, 1, activation=jnp.tanh, key=jax.random.key(seed + 1))
    model = bo.Model(net, bo.priors.FanInNormal(1.0), likelihood)
    return bo.Posterior(model, bo.Data(x, y))


def make_ensemble(posterior, num_chains=NUM_CHAINS, num_draws=NUM_DRAWS, seed=3):
    """Distinct members without sampling: the module's weights plus Normal noise, the
    likelihood's scale (where learned) times log-normal noise."""
    template = posterior.constrain(posterior.initial_position())
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        noise = rng.normal(size=(num_chains, num_draws, *leaf.shape))
        if path[0].key == "net":
            value = np.asarray(leaf) + 0.7 * noise
        else:
            value = np.asarray(leaf) * np.exp(0.5 * noise)
        return jnp.asarray(value, leaf.dtype)

    params = jax.tree_util.tree_map_with_path(draw, template)
    return bo.Ensemble(
        params, None, {}, model=posterior.model, target_shape=posterior.data.target_shape
    )


def identical_members(ensemble, num_members=4):
    """An ensemble whose members are all the first member of `ensemble`."""
    params = jax.tree.map(lambda v: jnp.repeat(v[:1, :1], num_members, axis=1), ensemble.params)
    return bo.Ensemble(params, None, {}, ensemble.model, ensemble.target_shape)


def outputs(ensemble, x):
    """Network outputs of every member at every point: (M, n, out), float64."""
    model = ensemble.model
    nets = ensemble.flat_params()["net"]
    per_member = jax.vmap(lambda net: jax.vmap(lambda xi: model.apply(net, xi))(x))
    return np.asarray(per_member(nets), np.float64)


# -- the problems -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gaussian():
    posterior = make_posterior(
        bo.likelihoods.Gaussian(scale=None), 1, lambda x: np.sin(x[:, 0]) + 0.1 * x[:, 1]
    )
    return posterior, make_ensemble(posterior)


@pytest.fixture(scope="module")
def categorical():
    posterior = make_posterior(
        bo.likelihoods.Categorical(),
        3,
        lambda x: (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32),
    )
    return posterior, make_ensemble(posterior)


@pytest.fixture(scope="module")
def bernoulli():
    posterior = make_posterior(
        bo.likelihoods.Bernoulli(), 1, lambda x: (x[:, 0] > 0).astype(np.int32)
    )
    return posterior, make_ensemble(posterior)


@pytest.fixture(scope="module")
def poisson():
    def counts(x):
        return np.random.default_rng(0).poisson(np.exp(np.sin(x[:, 0]))).astype(np.int32)

    posterior = make_posterior(bo.likelihoods.Poisson(), 1, counts)
    return posterior, make_ensemble(posterior)


def gaussian_brute(ensemble, x):
    mu = outputs(ensemble, x)[..., 0]  # (M, n)
    scale = np.asarray(ensemble.flat_params()["likelihood"]["scale"], np.float64)[:, None]
    return mu, np.broadcast_to(scale, mu.shape)


# -- Gaussian with a learned scale ----------------------------------------------------------------


@pytest.mark.parametrize("batch_size,member_batch_size", BATCHES)
def test_gaussian_against_brute_force(gaussian, batch_size, member_batch_size):
    posterior, ensemble = gaussian
    x, y = posterior.data.inputs, posterior.data.targets
    mu, scale = gaussian_brute(ensemble, x)
    m = mu.shape[0]
    assert len(np.unique(scale[:, 0])) == m  # the scale is learned: one per member

    pred = ensemble.predict(x, batch_size=batch_size, member_batch_size=member_batch_size)
    assert pred.num_members == m and pred.num_points == NUM_POINTS

    member_lp = stats.norm.logpdf(np.asarray(y, np.float64), mu, scale)
    expected_lp = special.logsumexp(member_lp, axis=0) - np.log(m)
    np.testing.assert_allclose(pred.log_prob(y), expected_lp, rtol=1e-5, atol=1e-5)

    np.testing.assert_allclose(pred.mean, mu.mean(0), rtol=1e-5, atol=1e-6)
    parts = pred.variance_parts()
    aleatoric, epistemic = (scale**2).mean(0), mu.var(0)
    np.testing.assert_allclose(parts["aleatoric"], aleatoric, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts["epistemic"], epistemic, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(parts["total"], aleatoric + epistemic, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.variance, parts["total"], rtol=1e-6)
    assert pred.mean.shape == pred.variance.shape == (NUM_POINTS,)


def test_gaussian_identical_members(gaussian):
    posterior, ensemble = gaussian
    x, y = posterior.data.inputs, posterior.data.targets
    same = identical_members(ensemble).predict(x, batch_size=7, member_batch_size=3)
    one = ensemble.subset(chains=[0], draws=[0]).predict(x)
    np.testing.assert_allclose(same.log_prob(y), one.log_prob(y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(same.variance_parts()["epistemic"], 0.0, atol=1e-6)
    np.testing.assert_allclose(same.variance, one.variance, rtol=1e-5)


def test_results_do_not_depend_on_batching(gaussian, categorical):
    for posterior, ensemble in (gaussian, categorical):
        x, y = posterior.data.inputs, posterior.data.targets
        ref = ensemble.predict(x)
        alt = ensemble.predict(x, batch_size=7, member_batch_size=3)
        np.testing.assert_allclose(alt.log_prob(y), ref.log_prob(y), rtol=1e-5, atol=1e-6)
        if ref.is_classification:
            np.testing.assert_allclose(alt.probs, ref.probs, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(alt.mutual_information, ref.mutual_information, atol=1e-6)
        else:
            np.testing.assert_allclose(alt.mean, ref.mean, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(alt.variance, ref.variance, rtol=1e-5, atol=1e-7)
    # a point subset predicts the same values as the matching rows of the full prediction
    posterior, ensemble = gaussian
    x = posterior.data.inputs
    np.testing.assert_allclose(
        ensemble.predict(x[5:8]).mean, ensemble.predict(x).mean[5:8], rtol=1e-6, atol=1e-7
    )


# -- intervals ----------------------------------------------------------------------------------


def test_interval_single_member(gaussian):
    posterior, ensemble = gaussian
    x = posterior.data.inputs
    single = ensemble.subset(chains=[1], draws=[2])
    mu, scale = gaussian_brute(single, x)
    lo, hi = single.predict(x, batch_size=7).interval(0.9)
    np.testing.assert_allclose(lo, mu[0] - Z90 * scale[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(hi, mu[0] + Z90 * scale[0], rtol=1e-4, atol=1e-4)


def test_interval_mixture_cdf(gaussian):
    posterior, ensemble = gaussian
    x = posterior.data.inputs
    mu, scale = gaussian_brute(ensemble, x)
    pred = ensemble.predict(x, batch_size=7, member_batch_size=3)
    lo, hi = pred.interval(0.9)
    assert lo.shape == hi.shape == (NUM_POINTS,)
    assert np.all(np.asarray(lo) < np.asarray(pred.mean))
    assert np.all(np.asarray(pred.mean) < np.asarray(hi))

    def mixture_cdf(value):
        return stats.norm.cdf(np.asarray(value, np.float64)[None], mu, scale).mean(0)

    np.testing.assert_allclose(mixture_cdf(lo), 0.05, atol=2e-4)
    np.testing.assert_allclose(mixture_cdf(hi), 0.95, atol=2e-4)
    # a wider interval contains the narrower one
    lo50, hi50 = pred.interval(0.5)
    np.testing.assert_allclose(mixture_cdf(lo50), 0.25, atol=2e-4)
    assert np.all(np.asarray(lo) < np.asarray(lo50)) and np.all(np.asarray(hi50) < np.asarray(hi))
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="prob"):
            pred.interval(bad)


# -- draws --------------------------------------------------------------------------------------


def test_sample_mixture_moments(gaussian):
    posterior, ensemble = gaussian
    x = posterior.data.inputs
    pred = ensemble.predict(x)
    num = 4000
    draws = np.asarray(pred.sample(jax.random.key(11), num), np.float64)
    assert draws.shape == (num, NUM_POINTS)
    assert np.all(np.isfinite(draws))
    mean, variance = np.asarray(pred.mean), np.asarray(pred.variance)
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * np.sqrt(variance / num))
    np.testing.assert_allclose(draws.var(0), variance, rtol=0.2)
    # the same key gives the same draws
    np.testing.assert_array_equal(
        pred.sample(jax.random.key(11), num), pred.sample(jax.random.key(11), num)
    )


def test_posterior_predictive(gaussian, categorical):
    posterior, ensemble = gaussian
    x = posterior.data.inputs
    draws = np.asarray(ensemble.predict(x).posterior_predictive(jax.random.key(2)), np.float64)
    assert draws.shape == (ensemble.num_members, NUM_POINTS)
    # member m's draws come from member m's Gaussian
    mu, scale = gaussian_brute(ensemble, x)
    z = (draws - mu) / scale
    assert abs(z.mean()) < 0.3 and 0.8 < z.std() < 1.2

    posterior, ensemble = categorical
    x = posterior.data.inputs
    pred = ensemble.predict(x)
    labels = np.asarray(pred.posterior_predictive(jax.random.key(2)))
    assert labels.shape == (ensemble.num_members, NUM_POINTS)
    assert labels.min() >= 0 and labels.max() <= 2
    assert pred.sample(jax.random.key(3), 5).shape == (5, NUM_POINTS)


# -- classification -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size,member_batch_size", BATCHES)
def test_categorical_against_brute_force(categorical, batch_size, member_batch_size):
    posterior, ensemble = categorical
    x, y = posterior.data.inputs, posterior.data.targets
    p = special.softmax(outputs(ensemble, x), axis=-1)  # (M, n, K)
    probs = p.mean(0)
    entropy = -np.sum(probs * np.log(probs), axis=-1)
    expected_entropy = (-np.sum(p * np.log(p), axis=-1)).mean(0)

    pred = ensemble.predict(x, batch_size=batch_size, member_batch_size=member_batch_size)
    assert pred.is_classification
    np.testing.assert_allclose(pred.probs, probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.sum(pred.probs, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(pred.entropy, entropy, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.expected_entropy, expected_entropy, rtol=1e-5, atol=1e-6)
    mi = np.asarray(pred.mutual_information)
    assert np.all(mi >= 0)
    np.testing.assert_allclose(mi, np.maximum(entropy - expected_entropy, 0), atol=2e-6)
    assert mi.max() > 1e-3  # prior draws disagree
    labels = np.asarray(y)
    expected_lp = np.log(probs[np.arange(NUM_POINTS), labels])
    np.testing.assert_allclose(pred.log_prob(y), expected_lp, rtol=1e-5, atol=1e-6)


def test_mutual_information_zero_for_identical_members(categorical):
    posterior, ensemble = categorical
    x = posterior.data.inputs
    pred = identical_members(ensemble).predict(x, batch_size=7, member_batch_size=3)
    np.testing.assert_allclose(pred.mutual_information, 0.0, atol=1e-6)
    np.testing.assert_allclose(pred.entropy, pred.expected_entropy, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch_size,member_batch_size", [(None, None), (7, 3)])
def test_bernoulli_against_brute_force(bernoulli, batch_size, member_batch_size):
    posterior, ensemble = bernoulli
    x, y = posterior.data.inputs, posterior.data.targets
    p1 = special.expit(outputs(ensemble, x)[..., 0])  # (M, n)
    probs = np.stack([1 - p1.mean(0), p1.mean(0)], axis=-1)

    pred = ensemble.predict(x, batch_size=batch_size, member_batch_size=member_batch_size)
    assert pred.probs.shape == (NUM_POINTS, 2)
    np.testing.assert_allclose(pred.probs, probs, rtol=1e-5, atol=1e-6)
    member_entropy = -(p1 * np.log(p1) + (1 - p1) * np.log1p(-p1))
    np.testing.assert_allclose(pred.expected_entropy, member_entropy.mean(0), rtol=1e-4, atol=1e-6)
    assert np.all(np.asarray(pred.mutual_information) >= 0)
    labels = np.asarray(y)
    np.testing.assert_allclose(
        pred.log_prob(y), np.log(probs[np.arange(NUM_POINTS), labels]), rtol=1e-5, atol=1e-6
    )
    assert pred.posterior_predictive(jax.random.key(0)).shape == (ensemble.num_members, NUM_POINTS)


@pytest.mark.parametrize("batch_size,member_batch_size", [(None, None), (7, 3)])
def test_poisson_against_brute_force(poisson, batch_size, member_batch_size):
    posterior, ensemble = poisson
    x, y = posterior.data.inputs, posterior.data.targets
    rate = np.exp(outputs(ensemble, x)[..., 0])  # (M, n)
    pred = ensemble.predict(x, batch_size=batch_size, member_batch_size=member_batch_size)
    assert not pred.is_classification
    np.testing.assert_allclose(pred.mean, rate.mean(0), rtol=1e-5)
    parts = pred.variance_parts()
    np.testing.assert_allclose(parts["aleatoric"], rate.mean(0), rtol=1e-5)
    np.testing.assert_allclose(parts["epistemic"], rate.var(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pred.variance, rate.mean(0) + rate.var(0), rtol=1e-4)
    member_lp = stats.poisson.logpmf(np.asarray(y), rate)
    expected_lp = special.logsumexp(member_lp, axis=0) - np.log(rate.shape[0])
    np.testing.assert_allclose(pred.log_prob(y), expected_lp, rtol=1e-5, atol=1e-5)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_inputs(gaussian):
    posterior, ensemble = gaussian
    x = np.asarray(posterior.data.inputs)
    with pytest.raises(ValueError, match="feature shape"):
        ensemble.predict(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="feature shape"):
        ensemble.predict(np.zeros((5,)))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ensemble.predict(bad)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        ensemble.predict(bad)
    with pytest.raises(ValueError, match="at least one point"):
        ensemble.predict(np.zeros((0, 2)))
    for name in ("batch_size", "member_batch_size"):
        for value in (0, -2, 2.5, True):
            with pytest.raises(ValueError, match=name):
                ensemble.predict(x, **{name: value})


def test_numpyro_ensemble_cannot_predict():
    ensemble = bo.Ensemble({"mu": jnp.zeros((2, 3)), "sigma": jnp.ones((2, 3))}, None, {})
    with pytest.raises(TypeError, match="NumPyro"):
        ensemble.predict(np.zeros((4, 2)))


def test_log_prob_rejects_bad_targets(gaussian, categorical):
    posterior, ensemble = categorical
    x, y = posterior.data.inputs, np.asarray(posterior.data.targets)
    pred = ensemble.predict(x)
    with pytest.raises(TypeError, match="integer labels"):
        pred.log_prob(y.astype(np.float32))
    out_of_range = y.copy()
    out_of_range[0] = 3
    with pytest.raises(ValueError, match="labels"):
        pred.log_prob(out_of_range)
    out_of_range[0] = -1
    with pytest.raises(ValueError, match="labels"):
        pred.log_prob(out_of_range)
    with pytest.raises(ValueError, match="points"):
        pred.log_prob(y[:-1])

    posterior, ensemble = gaussian
    pred = ensemble.predict(posterior.data.inputs)
    y = np.asarray(posterior.data.targets)
    with pytest.raises(ValueError, match="points"):
        pred.log_prob(np.concatenate([y, y]))
    with pytest.raises(TypeError, match="floating"):
        pred.log_prob(np.zeros(NUM_POINTS, np.int32))
    with pytest.raises(ValueError, match="shape"):
        pred.log_prob(np.zeros((NUM_POINTS, 3), np.float32))


def test_wrong_task_methods(gaussian, categorical):
    posterior, ensemble = categorical
    pred = ensemble.predict(posterior.data.inputs[:5])
    with pytest.raises(TypeError, match="regression"):
        _ = pred.variance
    with pytest.raises(TypeError, match="regression"):
        _ = pred.mean
    with pytest.raises(TypeError, match="regression"):
        pred.interval(0.9)

    posterior, ensemble = gaussian
    pred = ensemble.predict(posterior.data.inputs[:5])
    with pytest.raises(TypeError, match="classification"):
        _ = pred.probs
    with pytest.raises(TypeError, match="classification"):
        _ = pred.entropy
    with pytest.raises(TypeError, match="classification"):
        _ = pred.mutual_information
