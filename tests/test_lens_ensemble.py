"""`bo.lens.ensemble_regret` and `bo.lens.cumulative_regret`: the regret of an ensemble's own
mixture M_E(y | x) = (1/S) sum_s p(y | x, theta_s), against closed forms.

Conjugate linear-Gaussian regression (y = x.w + e, w ~ N(0, s^2 I), e ~ N(0, sigma^2)): an
ensemble of S exact posterior draws has a mixture that tends to the posterior predictive
N(x.mu, sigma^2 + x' Sigma x), whose regret against the truth w0 is known per point (observed y)
and per input (KL between two Gaussians). Tolerances: 3 standard errors across R independent
ensembles (the Monte Carlo error of the mixture), with a small absolute floor. One member at the
truth has regret 0; a Bernoulli mixture's KL is checked against its formula; bad input."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats
import xarray as xr

import bayesover as bo
from bayesover._checks import ArgumentTypeError

D, N_TRAIN, N_TEST, S_PRIOR, SIGMA = 3, 10, 200, 1.0, 0.5
NUM_MEMBERS, NUM_ENSEMBLES = 2000, 4


def linear_model(likelihood=None):
    net = eqx.nn.Linear(D, "scalar", use_bias=False, key=jax.random.key(0))
    likelihood = bo.likelihoods.Gaussian(scale=SIGMA) if likelihood is None else likelihood
    return bo.Model(net, bo.priors.Normal(S_PRIOR), likelihood)


def ensemble_of(model, weights):
    """An ensemble whose members have the linear weights `weights` (S, D): one chain."""
    template = model.constrain(model.initial_position())
    shape = template["net"].weight.shape
    weight = jnp.asarray(weights, jnp.float32).reshape(1, -1, *shape)
    params = dict(template, net=eqx.tree_at(lambda lin: lin.weight, template["net"], weight))
    return bo.Ensemble(params, {}, {"sampler_name": "exact"}, model, ())


@pytest.fixture(scope="module")
def conjugate():
    key_w, key_x, key_e, key_xt, key_et, key_draws = jax.random.split(jax.random.key(0), 6)
    w0 = S_PRIOR * np.asarray(jax.random.normal(key_w, (D,)), np.float64)
    x = np.asarray(jax.random.normal(key_x, (N_TRAIN, D)), np.float64)
    y = x @ w0 + SIGMA * np.asarray(jax.random.normal(key_e, (N_TRAIN,)), np.float64)
    x_test = np.asarray(jax.random.normal(key_xt, (N_TEST, D)), np.float64)
    y_test = x_test @ w0 + SIGMA * np.asarray(jax.random.normal(key_et, (N_TEST,)), np.float64)
    x, y, x_test, y_test = (np.float64(np.float32(v)) for v in (x, y, x_test, y_test))
    precision = x.T @ x / SIGMA**2 + np.eye(D) / S_PRIOR**2
    cov = np.linalg.inv(precision)
    mu = cov @ x.T @ y / SIGMA**2
    model = linear_model()
    test = bo.Data(x_test, y_test)
    f0 = jnp.asarray(x_test @ w0, jnp.float32)
    truth_law = dist.Normal(f0, SIGMA)
    truth_loglik = scipy.stats.norm.logpdf(y_test, x_test @ w0, SIGMA)
    chol = np.linalg.cholesky(cov)
    observed, expected = [], []
    for k in jax.random.split(key_draws, NUM_ENSEMBLES):
        z = np.asarray(jax.random.normal(k, (NUM_MEMBERS, D)), np.float64)
        ensemble = ensemble_of(model, mu + z @ chol.T)
        observed.append(bo.lens.ensemble_regret(ensemble, test, truth=truth_loglik))
        expected.append(bo.lens.ensemble_regret(ensemble, test, truth=truth_law))
    # the exact posterior predictive N(x.mu, sigma^2 + x' Sigma x) at the test inputs
    mean = x_test @ mu
    var = SIGMA**2 + np.einsum("id,de,ie->i", x_test, cov, x_test)
    exact_observed = truth_loglik - scipy.stats.norm.logpdf(y_test, mean, np.sqrt(var))
    m0 = x_test @ w0
    exact_kl = 0.5 * (np.log(var / SIGMA**2) + (SIGMA**2 + (m0 - mean) ** 2) / var - 1.0)
    return {
        "model": model,
        "w0": w0,
        "x": x,
        "y": y,
        "mu": mu,
        "test": test,
        "truth_law": truth_law,
        "observed": observed,
        "expected": expected,
        "exact_observed": exact_observed,
        "exact_kl": exact_kl,
    }


def within_mc(values, exact, floor):
    """|mean - exact| <= max(floor, 3 stderr) across the independent ensembles."""
    values = np.asarray(values)
    stderr = values.std(ddof=1) / math.sqrt(values.size)
    return abs(values.mean() - exact) <= max(floor, 3 * stderr), (values.mean(), exact, stderr)


def test_observed_regret_matches_the_posterior_predictive(conjugate):
    results, exact = conjugate["observed"], conjugate["exact_observed"]
    ok, info = within_mc([r.regret for r in results], exact.sum(), 0.05)
    assert ok, info
    ok, info = within_mc([r.mean for r in results], exact.mean(), 2.5e-4)
    assert ok, info
    first = results[0]
    assert first.reference == "truth" and not first.expected and first.num_members == NUM_MEMBERS
    assert first.pointwise.shape == (N_TEST,) and first.reliable
    # per point: the largest deviation measured over 4 x 200 was 0.067 nats (0.020 for the KL)
    np.testing.assert_allclose(first.pointwise, exact, atol=0.1)
    np.testing.assert_allclose(first.curve[-1], first.regret)
    np.testing.assert_allclose(first.code_length_nats, -first.log_predictive.sum())
    np.testing.assert_allclose(
        first.stderr, first.pointwise.std(ddof=1) / math.sqrt(N_TEST), rtol=1e-12
    )


def test_expected_regret_matches_the_gaussian_kl(conjugate):
    results, exact = conjugate["expected"], conjugate["exact_kl"]
    assert exact.mean() > 0.02  # the mixture is visibly wider than the truth's noise
    ok, info = within_mc([r.mean for r in results], exact.mean(), 2.5e-4)
    assert ok, info
    first = results[0]
    assert first.expected and first.reference == "truth"
    np.testing.assert_allclose(first.pointwise, exact, atol=0.03)
    assert np.all(first.pointwise > -1e-5)  # a KL
    # the per-point stderr is over the inputs, as for a mean of N_TEST KLs
    assert first.stderr == pytest.approx(exact.std(ddof=1) / math.sqrt(N_TEST), rel=0.05)


def test_one_member_at_the_truth_has_zero_regret(conjugate):
    model, w0, test = conjugate["model"], conjugate["w0"], conjugate["test"]
    ensemble = ensemble_of(model, w0[None, :])
    position = model.initial_position()
    position["net"] = eqx.tree_at(
        lambda lin: lin.weight, position["net"], jnp.asarray(w0, jnp.float32).reshape(1, D)
    )
    result = bo.lens.ensemble_regret(ensemble, test, truth=position)
    assert result.num_members == 1
    np.testing.assert_allclose(result.pointwise, 0.0, atol=1e-5)
    law = dist.Normal(jnp.asarray(test.inputs @ jnp.asarray(w0, jnp.float32)), SIGMA)
    expected = bo.lens.ensemble_regret(ensemble, test, truth=law)
    np.testing.assert_allclose(expected.pointwise, 0.0, atol=1e-5)


def test_best_fit_is_the_map(conjugate):
    """On the training data the best fit is the MAP = the posterior mean mu (conjugate)."""
    model, x, y, mu = conjugate["model"], conjugate["x"], conjugate["y"], conjugate["mu"]
    train = bo.Data(x, y)
    ensemble = ensemble_of(model, np.stack([mu, mu + 0.3, mu - 0.3]))
    result = bo.lens.ensemble_regret(ensemble, train, key=jax.random.key(1), fit_steps=1500)
    assert result.reference == "best_fit" and "best fit (MAP)" in str(result)
    exact = scipy.stats.norm.logpdf(y, x @ mu, SIGMA)
    np.testing.assert_allclose(result.reference_loglik, exact, atol=2e-3)
    members = [scipy.stats.norm.logpdf(y, x @ w, SIGMA) for w in (mu, mu + 0.3, mu - 0.3)]
    log_m = np.logaddexp.reduce(members, axis=0) - math.log(3)
    np.testing.assert_allclose(result.log_predictive, log_m, atol=1e-4)


def test_bernoulli_mixture_kl_is_exact():
    """Finite support: KL(Ber(p0) || Ber(pbar)), pbar = the members' mean probability."""
    model = linear_model(bo.likelihoods.Bernoulli())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, D)).astype(np.float32)
    data = bo.Data(x, np.zeros(30, np.int32))
    weights = rng.normal(size=(5, D))
    p0 = scipy.special.expit(x @ np.array([1.0, -0.5, 0.2]))
    truth = dist.Bernoulli(probs=jnp.asarray(p0, jnp.float32))
    ensemble = ensemble_of(model, weights)
    result = bo.lens.ensemble_regret(ensemble, data, truth=truth)
    pbar = scipy.special.expit(x @ weights.T).mean(axis=1)
    exact = p0 * np.log(p0 / pbar) + (1 - p0) * np.log((1 - p0) / (1 - pbar))
    np.testing.assert_allclose(result.pointwise, exact, atol=1e-5)
    assert result.expected and result.num_members == 5


def test_cumulative_regret_sums_a_power_law_exactly():
    t = np.array([0, 1, 4, 16, 64])
    rate = np.array([2.0, *(0.5 * t[1:] ** -1.0)])
    stderr = np.array([0.1, 0.05, 0.04, 0.02, 0.01])
    values, errors = bo.lens.cumulative_regret(t, rate, stderr, [1, 16, 64])
    s = np.arange(1, 64)
    exact = [2.0, 2.0 + np.sum(0.5 / s[:15]), 2.0 + np.sum(0.5 / s)]
    np.testing.assert_allclose(values, exact, rtol=1e-12)
    np.testing.assert_allclose(errors[0], 0.1)
    assert errors.shape == (3,) and np.all(np.diff(errors) > 0)
    one, _ = bo.lens.cumulative_regret(t, rate, stderr, 16)
    assert one.shape == () and float(one) == pytest.approx(exact[1])


def test_result_dataset_and_attach(conjugate):
    result = conjugate["observed"][0]
    dataset = result.to_dataset()
    assert dataset["ensemble_regret_pointwise"].dims == ("point",)
    assert float(dataset["ensemble_regret"]) == pytest.approx(result.regret)
    assert dataset.attrs["ensemble_reference"] == "truth"
    tree = bo.lens.attach(xr.DataTree(), result)
    assert "ensemble_regret_mean" in tree["lens"].to_dataset()
    assert "regret vs the truth, on the data, on 200 points" in str(result)
    assert repr(result).startswith("EnsembleRegret(")


def test_bad_input(conjugate):
    model, test = conjugate["model"], conjugate["test"]
    ensemble = ensemble_of(model, conjugate["mu"][None, :])
    truth = np.zeros(N_TEST)
    with pytest.raises(ArgumentTypeError, match="`ensemble` must be a bo.Ensemble"):
        bo.lens.ensemble_regret(model, test, truth=truth)
    sites = bo.Ensemble({"w": jnp.zeros((1, 2, D))}, {}, {})
    with pytest.raises(TypeError, match="`ensemble` holds NumPyro sites"):
        bo.lens.ensemble_regret(sites, test, truth=truth)
    with pytest.raises(ArgumentTypeError, match="`data` must be a bo.Data"):
        bo.lens.ensemble_regret(ensemble, test.inputs, truth=truth)
    with pytest.raises(ValueError, match=r"`truth` .* shape \(200,\)"):
        bo.lens.ensemble_regret(ensemble, test, truth=np.zeros(5))
    with pytest.raises(ValueError, match="`truth` as a distribution must have batch shape"):
        bo.lens.ensemble_regret(ensemble, test, truth=dist.Normal(jnp.zeros(5), 1.0))
    with pytest.raises(TypeError, match="`truth` as a distribution must be a numpyro Normal"):
        bo.lens.ensemble_regret(ensemble, test, truth=dist.Gamma(jnp.ones(N_TEST), 1.0))
    with pytest.raises(ArgumentTypeError, match="`key` is needed"):
        bo.lens.ensemble_regret(ensemble, test)
    with pytest.raises(ValueError, match="`fit` must be"):
        bo.lens.ensemble_regret(ensemble, test, truth=truth, fit="mle")
    with pytest.raises(ValueError, match="`num_nodes` must be an int >= 1"):
        bo.lens.ensemble_regret(ensemble, test, truth=truth, num_nodes=0)
    with pytest.raises(ValueError, match="`fit_steps` must be an int >= 1"):
        bo.lens.ensemble_regret(ensemble, test, key=jax.random.key(0), fit_steps=0)
    with pytest.raises(ArgumentTypeError, match="bo.lens.ensemble_regret"):
        bo.lens.regret(ensemble, key=jax.random.key(0))
    grid = ([0, 4, 16], [1.0, 0.5, 0.2], [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="`t` must be strictly increasing"):
        bo.lens.cumulative_regret([0, 16, 4], *grid[1:], 8)
    with pytest.raises(ValueError, match="`rate` and `stderr` must have the shape of `t`"):
        bo.lens.cumulative_regret(grid[0], [1.0], grid[2], 8)
    with pytest.raises(ValueError, match="`n` must be an int or an array of ints >= 1"):
        bo.lens.cumulative_regret(*grid, 0)
