"""Prequential evidence and regret against closed forms: Bernoulli (Laplace's rule), Gaussian
location, linear-Gaussian; NumPyro and network targets; bad input; non-finite log-likelihoods.

Tolerances: max(absolute floor, 3 standard errors), the standard error taken across runs (or
across data sets for the expected regret). Every Bernoulli test shares one compiled scan
(n = 20, 400 particles, 4 runs)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sc

import bayesover as bo
from bayesover.lens import closed_form as cf
from bayesover.lens._prequential import prequential_log_evidence
from bayesover.lens._regret import RegretResult, expected_regret, regret
from bayesover.lens._target import Target

N, P0 = 20, 0.7
BERNOULLI = {"num_particles": 400, "num_runs": 4}


def bernoulli_data(key, n=N):
    x = np.asarray(jax.random.bernoulli(key, P0, (n,)), np.float32)
    truth = np.where(x == 1, math.log(P0), math.log(1 - P0))
    return x, truth


def laplace_terms(x):
    """log M(x_t | x^{t-1}) = log((k + 1) / (t + 1)) for a one, log((t - k) / (t + 1)) for a
    zero, k the ones among the first t - 1 (uniform prior: Laplace's rule of succession)."""
    t = np.arange(1, x.size + 1)
    k = np.concatenate([[0.0], np.cumsum(x)[:-1]])
    return np.where(x == 1, np.log((k + 1) / (t + 1)), np.log((t - k) / (t + 1)))


def within(estimate, exact, stderr, floor):
    return np.abs(np.asarray(estimate) - exact) <= np.maximum(floor, 3 * np.asarray(stderr))


@pytest.fixture(scope="module")
def bernoulli():
    x, truth = bernoulli_data(jax.random.key(0))
    posterior = cf.bernoulli_model(x)
    result = regret(posterior, key=jax.random.key(1), truth=truth, **BERNOULLI)
    return x, truth, posterior, result


def test_prequential_sum_is_the_log_evidence_bernoulli(bernoulli):
    x, _, _, result = bernoulli
    evidence = result.log_evidence
    assert evidence.method == "prequential" and evidence.terms.shape == (4, N)
    np.testing.assert_array_equal(evidence.terms.sum(axis=1), evidence.runs)
    assert evidence.value == pytest.approx(np.mean(evidence.runs), abs=1e-12)
    exact = cf.bernoulli_log_evidence(x)
    assert within(evidence.value, exact, evidence.stderr, 0.1), (evidence, exact)
    assert evidence.reliable and evidence.num_nonfinite == 0 and evidence.ess > 50


def test_each_term_is_laplaces_rule_of_succession(bernoulli):
    x, _, _, result = bernoulli
    terms = result.log_evidence.terms
    stderr = terms.std(axis=0, ddof=1) / 2
    assert np.all(within(terms.mean(axis=0), laplace_terms(x), stderr, 0.05))


def test_regret_curve_matches_exact_at_every_n(bernoulli):
    x, truth, _, result = bernoulli
    assert isinstance(result, RegretResult) and result.reference == "truth"
    np.testing.assert_array_equal(result.n, np.arange(1, N + 1))
    k = np.cumsum(x)
    t = np.arange(1, N + 1)
    exact = np.cumsum(truth) - sc.betaln(k + 1, t - k + 1)
    assert np.all(within(result.regret, exact, result.regret_stderr, 0.1))
    np.testing.assert_allclose(result.code_length_nats, result.regret - result.truth_loglik)
    assert result.code_length_bits[-1] == pytest.approx(result.code_length_nats[-1] / math.log(2))
    dataset = result.to_dataset()
    assert dataset["regret"].dims == ("n",) and dataset["regret_stderr"].dims == ("n",)
    np.testing.assert_array_equal(dataset["n"], result.n)
    assert "bound" in result.to_dataset(bound=0.5 * np.log(result.n) + 1.0)
    assert "regret vs the truth at n=20" in str(result) and result.reliable


def test_truth_as_position_equals_truth_as_array(bernoulli):
    x, truth, posterior, result = bernoulli
    position = {"p": jnp.asarray(math.log(P0 / (1 - P0)), jnp.float32)}
    same = regret(posterior, key=jax.random.key(1), truth=position, **BERNOULLI)
    np.testing.assert_allclose(same.regret, result.regret, atol=1e-4)
    reused = regret(posterior, key=jax.random.key(9), truth=truth, evidence=result.log_evidence)
    np.testing.assert_array_equal(reused.regret, result.regret)


def test_order_permutes_the_data_and_keeps_the_evidence(bernoulli):
    x, truth, posterior, _ = bernoulli
    order = np.arange(N)[::-1]
    result = regret(posterior, key=jax.random.key(2), truth=truth, order=order, **BERNOULLI)
    evidence = result.log_evidence
    assert within(evidence.value, cf.bernoulli_log_evidence(x), evidence.stderr, 0.1)
    # the terms follow the new order: each within 0.1 nats of Laplace's rule on x[order] (the
    # spread of 4 runs is too rough a stderr for 20 separate 3-sigma checks), and closer to it
    # than to the terms in the original order
    terms = evidence.terms.mean(0)
    assert np.all(within(terms, laplace_terms(x[order]), 0.0, 0.1))
    misfit = [np.sum((terms - laplace_terms(v)) ** 2) for v in (x[order], x)]
    assert misfit[0] < misfit[1] / 10
    assert result.truth_loglik[0] == pytest.approx(truth[order[0]])


def test_expected_regret_bernoulli_matches_the_divergence():
    def make_data(key):
        x, truth = bernoulli_data(key)
        return cf.bernoulli_model(x), truth

    result = expected_regret(make_data, key=jax.random.key(3), num_datasets=20, **BERNOULLI)
    assert len(result.datasets) == 20 and result.log_evidence is None
    exact = np.array([cf.bernoulli_expected_regret(t, P0) for t in range(1, N + 1)])
    assert np.all(within(result.regret, exact, result.regret_stderr, 0.05)), result.regret - exact
    # E R_n ~ (1/2) log n + const: grows, by about (1/2) log 4 from n = 5 to n = 20
    growth = result.regret[N - 1] - result.regret[4]
    assert 0.0 < growth < 1.5 and "expected over 20 data sets" in str(result)


def test_gaussian_location_prequential_matches_exact():
    x = np.asarray(0.5 + jax.random.normal(jax.random.key(4), (N,)), np.float32)
    evidence = prequential_log_evidence(
        cf.gaussian_location_model(x, 1.0, 3.0), key=jax.random.key(5), **BERNOULLI
    )
    exact = cf.gaussian_location_log_evidence(x, 1.0, 3.0)
    assert within(evidence.value, exact, evidence.stderr, 0.1), (evidence, exact)
    np.testing.assert_array_equal(evidence.terms.sum(axis=1), evidence.runs)


@pytest.mark.slow
def test_network_posterior_runs_and_sums_are_consistent():
    inputs = jax.random.normal(jax.random.key(6), (N, 2))
    data = bo.Data(inputs, jnp.sin(inputs[:, 0]) + 0.1 * inputs[:, 1])
    net = eqx.nn.MLP(2, 1, 3, 1, activation=jnp.tanh, key=jax.random.key(7))
    model = bo.Model(net, bo.priors.FanInNormal(1.0), bo.likelihoods.Gaussian(0.3))
    posterior = bo.Posterior(model, data)
    result = regret(posterior, key=jax.random.key(8), num_particles=100, num_runs=2, fit_steps=300)
    evidence = result.log_evidence
    assert result.reference == "best_fit" and np.all(np.isfinite(result.regret))
    assert np.all(np.isfinite(evidence.terms)) and evidence.terms.shape == (2, N)
    np.testing.assert_array_equal(evidence.terms.sum(axis=1), evidence.runs)
    assert result.code_length_nats[-1] == pytest.approx(-evidence.value, rel=1e-6)
    assert "best fit" in str(result)


@pytest.mark.parametrize("fit", ["map", "ml"])
def test_best_fit_reference_is_the_closed_form_fit(bernoulli, fit):
    """Uniform prior on p: the ML fit is k/n; the MAP in the unconstrained (logit) coordinates
    carries the Jacobian p(1 - p), so it is (k + 1)/(n + 2). The reference's log-likelihood
    log P_fit(x^n) must be that of the closed-form fit."""
    x, _, posterior, _ = bernoulli
    result = regret(posterior, key=jax.random.key(2), fit=fit, fit_steps=3000, **BERNOULLI)
    k, n = x.sum(), x.size
    p_hat = k / n if fit == "ml" else (k + 1) / (n + 2)
    exact = k * math.log(p_hat) + (n - k) * math.log(1 - p_hat)
    assert result.reference == "best_fit"
    assert result.truth_loglik[-1] == pytest.approx(exact, abs=1e-3)
    if fit == "ml":  # nothing in the class beats the ML fit, the mixture included
        assert result.regret[-1] > 0


def test_bad_input(bernoulli):
    _, truth, posterior, _ = bernoulli
    with pytest.raises(ValueError, match="empty"):
        prequential_log_evidence(cf.bernoulli_model(np.zeros(0)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="truth"):
        regret(posterior, key=jax.random.key(0), truth=truth[:-1])
    with pytest.raises(ValueError, match="truth"):
        regret(posterior, key=jax.random.key(0), truth={"q": jnp.zeros(())})
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match="num_particles"):
            prequential_log_evidence(posterior, key=jax.random.key(0), num_particles=bad)
    with pytest.raises(ValueError, match="order"):
        prequential_log_evidence(posterior, key=jax.random.key(0), order=np.zeros(N, int))
    with pytest.raises(ValueError, match="num_datasets"):
        expected_regret(lambda k: (posterior, truth), key=jax.random.key(0), num_datasets=0)
    with pytest.raises(ValueError, match="fit"):
        regret(posterior, key=jax.random.key(0), fit="best")


class _NaNAbove(Target):
    """Gaussian location whose log-likelihood is NaN wherever mu > 2 (1/6 of the prior)."""

    def pointwise_loglikelihood(self, position):
        values = super().pointwise_loglikelihood(position)
        return jnp.where(position["mu"] > 2.0, jnp.nan, values)


@pytest.mark.slow
def test_nonfinite_loglikelihoods_are_counted_and_dropped():
    x = np.asarray(0.5 + jax.random.normal(jax.random.key(10), (8,)), np.float32)
    target = _NaNAbove(cf.gaussian_location_model(x, 1.0, 3.0))
    evidence = prequential_log_evidence(
        target, key=jax.random.key(11), num_particles=200, num_runs=2
    )
    # about 200 / 6 particles per run are NaN at the first datum (then resampled away)
    assert 2 * 10 < evidence.num_nonfinite and np.isfinite(evidence.value)
    assert np.all(np.isfinite(evidence.terms)) and not evidence.collapsed
    # a zero likelihood on mu > 2 changes M by the posterior mass there: negligible, since the
    # data sit near 0.5 (sd of the posterior 1/sqrt(8))
    exact = cf.gaussian_location_log_evidence(x, 1.0, 3.0)
    assert abs(evidence.value - exact) < 0.3


@pytest.mark.slow
def test_linear_gaussian_d100_n20_sequential_predictive():
    problem = cf.linear_gaussian_problem(jax.random.key(12), 20, 100)
    evidence = prequential_log_evidence(
        problem.posterior, key=jax.random.key(13), num_particles=1000, num_runs=4
    )
    exact = np.array(
        [
            cf.linear_gaussian_log_evidence(problem.X[:t], problem.y[:t], 1.0, 1.0)
            for t in range(1, 21)
        ]
    )
    partial = np.cumsum(evidence.terms, axis=1)
    stderr = partial.std(axis=0, ddof=1) / 2
    assert np.all(within(partial.mean(axis=0), exact, stderr, 0.1)), partial.mean(0) - exact


@pytest.mark.slow
def test_expected_regret_gaussian_location_matches_the_divergence():
    mu0, sigma, a = 0.5, 1.0, 3.0

    def make_data(key):
        x = np.asarray(mu0 + sigma * jax.random.normal(key, (N,)), np.float32)
        truth = -0.5 * np.log(2 * np.pi * sigma**2) - (x - mu0) ** 2 / (2 * sigma**2)
        return cf.gaussian_location_model(x, sigma, a), truth

    result = expected_regret(make_data, key=jax.random.key(14), num_datasets=40, **BERNOULLI)
    ns = [1, 5, 10, 20]
    exact = np.array([cf.gaussian_location_expected_regret(t, mu0, sigma, a) for t in ns])
    idx = np.array(ns) - 1
    assert np.all(within(result.regret[idx], exact, result.regret_stderr[idx], 0.05))
