"""The closed forms of bayesover.lens.closed_form against brute force: quadrature of the evidence
integrals, Monte Carlo over data sets for expected regrets, grids for W(eps)."""

import itertools
import math

import jax
import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sc
import scipy.stats as st

from bayesover.lens import Target
from bayesover.lens import closed_form as cf

RNG_SEED = 0


# ------------------------------------------------------------------ Gaussian location


@pytest.mark.parametrize("mu0, sigma, A, n", [(0.7, 1.3, 2.0, 15), (1.9, 0.5, 2.0, 40)])
def test_gaussian_location_evidence_matches_quadrature(mu0, sigma, A, n):
    rng = np.random.default_rng(RNG_SEED)
    for shift in (0.0, 1.0):  # the second data set puts xbar outside the box
        x = rng.normal(mu0 + shift, sigma, size=n)
        exact = cf.gaussian_location_log_evidence(x, sigma, A)

        def integrand(mu, x=x, exact=exact):
            return np.exp(np.sum(st.norm.logpdf(x, mu, sigma)) - exact) / (2 * A)

        ratio, _ = si.quad(integrand, -A, A, points=[float(np.clip(x.mean(), -A, A))])
        assert math.log(ratio) == pytest.approx(0.0, abs=1e-7)


def test_gaussian_location_expected_regret_matches_monte_carlo():
    mu0, sigma, A, n = 1.5, 1.0, 2.0, 10
    rng = np.random.default_rng(RNG_SEED)
    regrets = []
    for _ in range(20000):
        x = rng.normal(mu0, sigma, size=n)
        regrets.append(cf.gaussian_location_regret(x, mu0, sigma, A))
    regrets = np.array(regrets)
    mc, se = regrets.mean(), regrets.std() / math.sqrt(regrets.size)
    exact = cf.gaussian_location_expected_regret(n, mu0, sigma, A)
    assert abs(mc - exact) < 4 * se, (mc, se, exact)


def test_gaussian_location_regret_is_log_p0_minus_log_evidence():
    x = np.random.default_rng(RNG_SEED).normal(0.3, 1.0, size=7)
    log_p0 = np.sum(st.norm.logpdf(x, 0.3, 1.0))
    expected = log_p0 - cf.gaussian_location_log_evidence(x, 1.0, 2.0)
    assert cf.gaussian_location_regret(x, 0.3, 1.0, 2.0) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("mu0", [0.0, 1.8])
def test_gaussian_location_log_weight_matches_grid(mu0):
    sigma, A = 0.7, 2.0
    grid = np.linspace(-A, A, 2_000_001)
    K = (grid - mu0) ** 2 / (2 * sigma**2)
    for eps in (1e-4, 0.01, 0.3, 5.0, 100.0):
        brute = np.mean(K <= eps)
        assert cf.gaussian_location_log_weight(eps, mu0, sigma, A) == pytest.approx(
            math.log(brute), abs=2e-3
        )
    assert cf.gaussian_location_log_weight(0.0, mu0, sigma, A) == -math.inf


def test_gaussian_location_model_is_the_closed_form_model():
    x = np.array([0.1, -0.4, 1.2])
    target = Target(cf.gaussian_location_model(x, 0.8, 2.0))
    assert target.num_data == 3
    position = target.sample_prior(jax.random.key(1))
    mu = float(target.posterior.constrain(position)["mu"])
    assert -2.0 < mu < 2.0
    expected = np.sum(st.norm.logpdf(x, mu, 0.8))
    assert float(target.loglikelihood(position)) == pytest.approx(expected, rel=1e-5)
    # log_prior is in unconstrained coordinates (Jacobian included): quadrature of
    # exp(logdensity) over the unconstrained line gives the closed-form evidence
    exact = cf.gaussian_location_log_evidence(x, 0.8, 2.0)
    u = np.linspace(-40, 40, 400_001)
    logdensity = jax.vmap(lambda v: target.logdensity({"mu": v}))(jax.numpy.asarray(u))
    ratio = np.trapezoid(np.exp(np.asarray(logdensity, np.float64) - exact), u)
    assert math.log(ratio) == pytest.approx(0.0, abs=1e-4)


# ------------------------------------------------------------------ Bernoulli


@pytest.mark.parametrize("x", [[1, 0, 1, 1, 0, 1], [0] * 12, [1, 1, 1]])
def test_bernoulli_evidence_matches_quadrature(x):
    k, n = sum(x), len(x)
    value, _ = si.quad(lambda p: p**k * (1 - p) ** (n - k), 0, 1, epsabs=1e-14)
    assert cf.bernoulli_log_evidence(x) == pytest.approx(math.log(value), abs=1e-8)


@pytest.mark.parametrize("p0", [0.3, 0.05])
def test_bernoulli_expected_regret_matches_enumeration_of_sequences(p0):
    n = 10
    total = 0.0
    for seq in itertools.product([0, 1], repeat=n):
        k = sum(seq)
        log_p0 = k * math.log(p0) + (n - k) * math.log(1 - p0)
        total += math.exp(log_p0) * (log_p0 - cf.bernoulli_log_evidence(seq))
    assert cf.bernoulli_expected_regret(n, p0) == pytest.approx(total, abs=1e-10)


def test_bernoulli_expected_regret_matches_monte_carlo():
    n, p0 = 200, 0.2
    rng = np.random.default_rng(RNG_SEED)
    k = rng.binomial(n, p0, size=20000)
    regrets = k * math.log(p0) + (n - k) * math.log(1 - p0) - sc.betaln(k + 1, n - k + 1)
    mc, se = regrets.mean(), regrets.std() / math.sqrt(regrets.size)
    assert abs(mc - cf.bernoulli_expected_regret(n, p0)) < 4 * se


@pytest.mark.parametrize("p0", [0.5, 0.1, 0.0])
def test_bernoulli_log_weight_matches_grid(p0):
    q = np.linspace(0, 1, 2_000_001)[1:-1]
    kl = sc.xlogy(p0, p0) - sc.xlogy(p0, q) + sc.xlogy(1 - p0, 1 - p0) - sc.xlogy(1 - p0, 1 - q)
    for eps in (1e-3, 0.05, 0.5, 3.0):
        brute = np.mean(kl <= eps)
        assert cf.bernoulli_log_weight(eps, p0) == pytest.approx(math.log(brute), abs=2e-3)


def test_bernoulli_model_is_the_closed_form_model():
    x = np.array([1.0, 0.0, 1.0, 1.0])
    target = Target(cf.bernoulli_model(x))
    position = target.sample_prior(jax.random.key(2))
    p = float(target.posterior.constrain(position)["p"])
    expected = 3 * math.log(p) + math.log(1 - p)
    assert float(target.loglikelihood(position)) == pytest.approx(expected, rel=1e-4)


# ------------------------------------------------------------------ linear-Gaussian


def _sequential_log_evidence(X, y, s, sigma):
    """log M as the product of one-step predictive densities (Bayesian updating of N(m, S))."""
    d = X.shape[1]
    m, S = np.zeros(d), s**2 * np.eye(d)
    total = 0.0
    for x_t, y_t in zip(X, y, strict=True):
        mean, var = x_t @ m, x_t @ S @ x_t + sigma**2
        total += st.norm.logpdf(y_t, mean, math.sqrt(var))
        gain = S @ x_t / var
        m, S = m + gain * (y_t - mean), S - np.outer(gain, x_t @ S)
    return total


def test_linear_gaussian_evidence_matches_sequential_predictives():
    problem = cf.linear_gaussian_problem(jax.random.key(0), n=12, d=3, s=1.5, sigma=0.4, c=1.0)
    exact = cf.linear_gaussian_log_evidence(problem.X, problem.y, 1.5, 0.4)
    assert exact == pytest.approx(_sequential_log_evidence(problem.X, problem.y, 1.5, 0.4), 1e-10)
    assert problem.log_evidence == exact
    # d >> n too
    problem = cf.linear_gaussian_problem(jax.random.key(1), n=10, d=300)
    exact = cf.linear_gaussian_log_evidence(problem.X, problem.y, 1.0, 1.0)
    assert exact == pytest.approx(_sequential_log_evidence(problem.X, problem.y, 1.0, 1.0), 1e-10)


def test_linear_gaussian_evidence_matches_quadrature_in_one_dimension():
    rng = np.random.default_rng(RNG_SEED)
    X = rng.normal(size=(6, 1))
    y = 0.8 * X[:, 0] + 0.5 * rng.normal(size=6)
    exact = cf.linear_gaussian_log_evidence(X, y, 1.2, 0.5)

    def integrand(w):
        log = np.sum(st.norm.logpdf(y, X[:, 0] * w, 0.5)) + st.norm.logpdf(w, 0, 1.2)
        return math.exp(log - exact)

    ratio, _ = si.quad(integrand, -10, 10, points=[0.8], epsabs=1e-12)
    assert math.log(ratio) == pytest.approx(0.0, abs=1e-7)


def test_linear_gaussian_expected_regret_matches_monte_carlo():
    problem = cf.linear_gaussian_problem(jax.random.key(3), n=15, d=40)
    X, w0 = problem.X, problem.w0
    rng = np.random.default_rng(RNG_SEED)
    y = X @ w0 + rng.normal(size=(20000, 15))
    cov = X @ X.T + np.eye(15)
    regrets = st.multivariate_normal.logpdf(y, X @ w0, np.eye(15)) - st.multivariate_normal.logpdf(
        y, np.zeros(15), cov
    )
    mc, se = regrets.mean(), regrets.std() / math.sqrt(regrets.size)
    assert abs(mc - cf.linear_gaussian_expected_regret(X, w0, 1.0, 1.0)) < 4 * se
    assert cf.linear_gaussian_regret(X, y[0], w0, 1.0, 1.0) == pytest.approx(regrets[0], 1e-9)


def test_log_ncx2_cdf_matches_scipy_where_scipy_is_accurate():
    for x, df, nc in [(5.0, 3, 2.0), (1500.0, 2000, 1900.0), (0.3, 4, 0.0), (50.0, 20, 30.0)]:
        assert cf.log_ncx2_cdf(x, df, nc) == pytest.approx(st.ncx2.logcdf(x, df, nc), rel=1e-8)


def test_log_ncx2_cdf_deep_tail_matches_exact_central_series():
    # central chi^2 with even df = 2k: P(k, x/2) = e^{-x/2} sum_{j >= k} (x/2)^j / j!
    df, x = 2000, 100.0
    j = np.arange(df // 2, df // 2 + 2000)
    exact = -x / 2 + sc.logsumexp(j * math.log(x / 2) - sc.gammaln(j + 1))
    assert st.chi2.logcdf(x, df) == -math.inf  # scipy underflows here
    assert cf.log_ncx2_cdf(x, df, 0.0) == pytest.approx(exact, rel=1e-10)


def test_linear_gaussian_log_weight_matches_monte_carlo():
    d, s, sigma, c = 3, 1.0, 0.5, 2.0
    rng = np.random.default_rng(RNG_SEED)
    w0 = np.array([0.5, -1.0, 0.3])
    w = s * rng.normal(size=(400_000, d))
    K = c * np.sum((w - w0) ** 2, axis=1) / (2 * sigma**2)
    for eps in (0.5, 2.0, 10.0):
        brute = np.mean(K <= eps)
        se = math.sqrt(brute * (1 - brute) / K.size) / brute
        log_w = cf.linear_gaussian_log_weight(eps, w0, s, sigma, c)
        assert abs(log_w - math.log(brute)) < 4 * se + 1e-6


def test_linear_gaussian_model_matches_the_closed_form_likelihood():
    problem = cf.linear_gaussian_problem(jax.random.key(4), n=5, d=8)
    target = Target(problem.posterior)
    assert target.num_data == 5
    position = target.sample_prior(jax.random.key(5))
    w = np.asarray(position["w"], np.float64)
    expected = np.sum(st.norm.logpdf(problem.y, problem.X @ w, 1.0))
    assert float(target.loglikelihood(position)) == pytest.approx(expected, rel=1e-5)
    assert float(target.log_prior(position)) == pytest.approx(
        np.sum(st.norm.logpdf(w, 0, 1.0)), rel=1e-5
    )


def test_bad_input():
    with pytest.raises(ValueError, match="empty"):
        cf.gaussian_location_log_evidence([], 1.0, 1.0)
    with pytest.raises(ValueError, match="empty"):
        cf.bernoulli_log_evidence([])
    with pytest.raises(ValueError, match="positive"):
        cf.bernoulli_expected_regret(0, 0.5)
