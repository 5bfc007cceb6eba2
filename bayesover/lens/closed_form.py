"""Exact evidences, expected regrets and hypothesis weights for three models (host, float64).

For each model: the log evidence log M(x^n) = log integral w(theta) P_theta(x^n) d theta, the
expected regret E_{x^n ~ P_theta0}[log P_theta0(x^n) - log M(x^n)] = D(P_theta0^n || M), the log
weight of the hypothesis log W(eps) = log w{theta : K(theta) <= eps} with
K(theta) = D(P_theta0 || P_theta) per sample, and a builder of the model as a bayesover target.

1. Gaussian location: x_i ~ N(mu, sigma^2), sigma known, mu ~ Uniform[-A, A].
2. Bernoulli: x_i ~ Ber(p), p ~ Uniform(0, 1).
3. Conjugate linear-Gaussian regression: y = X w + e, e ~ N(0, sigma^2 I_n), w ~ N(0, s^2 I_d).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import numpy as np
import scipy.integrate
import scipy.linalg
import scipy.optimize
import scipy.special as sc
import scipy.stats

from bayesover.posterior._posterior import NumPyroPosterior, Posterior

__all__ = [
    "LinearGaussianProblem",
    "bernoulli_expected_regret",
    "bernoulli_log_evidence",
    "bernoulli_log_weight",
    "bernoulli_model",
    "gaussian_location_expected_regret",
    "gaussian_location_log_evidence",
    "gaussian_location_log_weight",
    "gaussian_location_model",
    "linear_gaussian_expected_regret",
    "linear_gaussian_log_evidence",
    "linear_gaussian_log_weight",
    "linear_gaussian_model",
    "linear_gaussian_problem",
    "linear_gaussian_regret",
    "log_ncx2_cdf",
]


def _log_diff_ndtr(a: float, b: float) -> float:
    """log(Phi(b) - Phi(a)) for a < b, stable in both tails (Phi(b)-Phi(a) = Phi(-a)-Phi(-b))."""
    if a > 0:
        a, b = -b, -a
    hi, lo = sc.log_ndtr(b), sc.log_ndtr(a)
    return float(hi + np.log1p(-np.exp(lo - hi)))


# ------------------------------------------------------------------ 1. Gaussian location


def _gaussian_location_log_integral(xbar: float, n: int, sigma: float, A: float) -> float:
    """log (1/2A) integral_{-A}^{A} exp(-n (xbar - mu)^2 / (2 sigma^2)) d mu
    = log sqrt(2 pi sigma^2 / n) - log 2A
      + log(Phi((A - xbar) sqrt(n) / sigma) - Phi((-A - xbar) sqrt(n) / sigma))."""
    scale = sigma / math.sqrt(n)
    log_mass = _log_diff_ndtr((-A - xbar) / scale, (A - xbar) / scale)
    return 0.5 * math.log(2 * math.pi * scale**2) + log_mass - math.log(2 * A)


def gaussian_location_log_evidence(x: Any, sigma: float, A: float) -> float:
    """log M(x^n) for x_i ~ N(mu, sigma^2), mu ~ Uniform[-A, A]:

        log M = -(n/2) log(2 pi sigma^2) - S / (2 sigma^2) + log sqrt(2 pi sigma^2 / n)
                + log(Phi((A - xbar) sqrt(n)/sigma) - Phi((-A - xbar) sqrt(n)/sigma)) - log 2A,

    with S = sum_i (x_i - xbar)^2 (the likelihood is proportional to
    exp(-S / 2 sigma^2) exp(-n (xbar - mu)^2 / 2 sigma^2)).
    """
    x = np.asarray(x, np.float64).reshape(-1)
    n = x.size
    if n == 0:
        raise ValueError("`x` is empty.")
    xbar = float(np.mean(x))
    S = float(np.sum((x - xbar) ** 2))
    return (
        -0.5 * n * math.log(2 * math.pi * sigma**2)
        - S / (2 * sigma**2)
        + _gaussian_location_log_integral(xbar, n, sigma, A)
    )


def gaussian_location_regret(x: Any, mu0: float, sigma: float, A: float) -> float:
    """R_n = log P_mu0(x^n) - log M(x^n) = -n (xbar - mu0)^2 / (2 sigma^2) - log integral term:
    a function of xbar alone."""
    x = np.asarray(x, np.float64).reshape(-1)
    return _gaussian_location_regret_xbar(float(np.mean(x)), x.size, mu0, sigma, A)


def _gaussian_location_regret_xbar(xbar, n, mu0, sigma, A) -> float:
    return -n * (xbar - mu0) ** 2 / (2 * sigma**2) - _gaussian_location_log_integral(
        xbar, n, sigma, A
    )


def gaussian_location_expected_regret(n: int, mu0: float, sigma: float, A: float) -> float:
    """D(P_mu0^n || M) = E_{xbar ~ N(mu0, sigma^2/n)} R_n(xbar)
    = -1/2 - E[log integral term(xbar)], the expectation by adaptive quadrature over z, with
    xbar = mu0 + sigma z / sqrt(n), z ~ N(0, 1)."""
    if n <= 0:
        raise ValueError(f"`n` must be a positive int, got {n!r}.")
    scale = sigma / math.sqrt(n)

    def integrand(z: float) -> float:
        return (
            -_gaussian_location_log_integral(mu0 + scale * z, n, sigma, A)
            * math.exp(-0.5 * z * z)
            / math.sqrt(2 * math.pi)
        )

    value, _ = scipy.integrate.quad(integrand, -12.0, 12.0, limit=200, epsabs=1e-12)
    return -0.5 + value


def gaussian_location_log_weight(eps: float, mu0: float, sigma: float, A: float) -> float:
    """log W(eps), K(mu) = (mu - mu0)^2 / (2 sigma^2): W = |[mu0 - r, mu0 + r] cap [-A, A]| / 2A
    with r = sigma sqrt(2 eps) (-inf for eps <= 0 or an empty intersection)."""
    if eps <= 0:
        return -math.inf
    r = sigma * math.sqrt(2 * eps)
    length = min(mu0 + r, A) - max(mu0 - r, -A)
    return math.log(length / (2 * A)) if length > 0 else -math.inf


def gaussian_location_model(x: Any, sigma: float, A: float) -> NumPyroPosterior:
    """`bo.Posterior.from_numpyro` target: mu ~ Uniform(-A, A), x_i ~ N(mu, sigma^2)."""
    import jax.numpy as jnp

    return Posterior.from_numpyro(
        _gaussian_location_numpyro, jnp.asarray(x, jnp.float32), float(sigma), float(A)
    )


def _gaussian_location_numpyro(x, sigma, A):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Uniform(-A, A))
    numpyro.sample("x", dist.Normal(mu, sigma), obs=x)


# ------------------------------------------------------------------ 2. Bernoulli


def bernoulli_log_evidence(x: Any) -> float:
    """log M(x^n) = log integral p^k (1-p)^(n-k) dp = log B(k+1, n-k+1) (k ones in the sequence)."""
    x = np.asarray(x).reshape(-1)
    n = x.size
    if n == 0:
        raise ValueError("`x` is empty.")
    k = float(np.sum(x))
    return float(sc.betaln(k + 1, n - k + 1))


def bernoulli_expected_regret(n: int, p0: float) -> float:
    """D(P_p0^n || M) = sum_k C(n,k) p0^k (1-p0)^(n-k) [k log p0 + (n-k) log(1-p0)
    - log B(k+1, n-k+1)] (sequence probabilities; the C(n,k) counts the sequences with k ones)."""
    if n <= 0:
        raise ValueError(f"`n` must be a positive int, got {n!r}.")
    k = np.arange(n + 1, dtype=np.float64)
    log_p0_seq = sc.xlogy(k, p0) + sc.xlogy(n - k, 1 - p0)
    probs = scipy.stats.binom.pmf(k, n, p0)
    regret = log_p0_seq - sc.betaln(k + 1, n - k + 1)
    mask = probs > 0
    return float(np.sum(probs[mask] * regret[mask]))


def _bernoulli_kl(p0: float, q: float) -> float:
    return float(
        sc.xlogy(p0, p0) - sc.xlogy(p0, q) + sc.xlogy(1 - p0, 1 - p0) - sc.xlogy(1 - p0, 1 - q)
    )


def bernoulli_log_weight(eps: float, p0: float) -> float:
    """log W(eps) = log |{q in (0,1) : KL(Ber(p0) || Ber(q)) <= eps}|: the KL is convex in q with
    its minimum 0 at q = p0, so the set is an interval [q_lo, q_hi] found by brentq on each side."""
    if eps <= 0:
        return -math.inf

    def f(q: float) -> float:
        return _bernoulli_kl(p0, q) - eps

    tiny = 1e-300
    lo = 0.0 if p0 == 0 or f(tiny) <= 0 else scipy.optimize.brentq(f, tiny, p0, xtol=1e-15)
    hi = (
        1.0 if p0 == 1 or f(1 - 1e-16) <= 0 else scipy.optimize.brentq(f, p0, 1 - 1e-16, xtol=1e-15)
    )
    return math.log(hi - lo)


def bernoulli_model(x: Any) -> NumPyroPosterior:
    """`bo.Posterior.from_numpyro` target: p ~ Uniform(0, 1), x_i ~ Ber(p)."""
    import jax.numpy as jnp

    return Posterior.from_numpyro(_bernoulli_numpyro, jnp.asarray(x, jnp.float32))


def _bernoulli_numpyro(x):
    import numpyro
    import numpyro.distributions as dist

    p = numpyro.sample("p", dist.Uniform(0.0, 1.0))
    numpyro.sample("x", dist.Bernoulli(probs=p), obs=x)


# ------------------------------------------------------------------ 3. linear-Gaussian


def _marginal_cov(X: np.ndarray, s: float, sigma: float) -> np.ndarray:
    return s**2 * X @ X.T + sigma**2 * np.eye(X.shape[0])


def linear_gaussian_log_evidence(X: Any, y: Any, s: float, sigma: float) -> float:
    """log M = log N(y | 0, s^2 X X^T + sigma^2 I_n) (w integrated out), by an n x n Cholesky."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64).reshape(-1)
    n = y.size
    if n == 0:
        raise ValueError("`y` is empty.")
    L = np.linalg.cholesky(_marginal_cov(X, s, sigma))
    z = scipy.linalg.solve_triangular(L, y, lower=True)
    return float(-0.5 * z @ z - np.sum(np.log(np.diag(L))) - 0.5 * n * math.log(2 * math.pi))


def linear_gaussian_regret(X: Any, y: Any, w0: Any, s: float, sigma: float) -> float:
    """R_n = log N(y | X w0, sigma^2 I) - log M."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64).reshape(-1)
    w0 = np.asarray(w0, np.float64).reshape(-1)
    log_p0 = float(np.sum(scipy.stats.norm.logpdf(y, X @ w0, sigma)))
    return log_p0 - linear_gaussian_log_evidence(X, y, s, sigma)


def linear_gaussian_expected_regret(X: Any, w0: Any, s: float, sigma: float) -> float:
    """E_y R_n = KL(N(X w0, sigma^2 I) || N(0, Sigma)), Sigma = s^2 X X^T + sigma^2 I:

    (1/2) [sigma^2 tr(Sigma^-1) + (X w0)^T Sigma^-1 (X w0) - n + log det Sigma - n log sigma^2].
    """
    X = np.asarray(X, np.float64)
    w0 = np.asarray(w0, np.float64).reshape(-1)
    n = X.shape[0]
    L = np.linalg.cholesky(_marginal_cov(X, s, sigma))
    L_inv = scipy.linalg.solve_triangular(L, np.eye(n), lower=True)
    m = L_inv @ (X @ w0)
    trace = sigma**2 * float(np.sum(L_inv**2))
    logdet = 2 * float(np.sum(np.log(np.diag(L))))
    return 0.5 * (trace + float(m @ m) - n + logdet - n * math.log(sigma**2))


def _log_gammainc(a: np.ndarray, x: float) -> np.ndarray:
    """log P(a, x), the regularised lower incomplete gamma, without underflow: where P is tiny,
    log P = a log x - x - lgamma(a + 1) + log sum_k x^k / ((a+1)...(a+k)) (series, x < a)."""
    a = np.asarray(a, np.float64)
    with np.errstate(divide="ignore"):
        direct = np.log(sc.gammainc(a, x))
    if x <= 0:
        return np.full_like(a, -np.inf)
    # the series: terms t_k = t_{k-1} x / (a + k); converges geometrically when x < a
    num_terms = int(min(20000, 50 + 4 * x))
    ks = np.arange(1, num_terms + 1, dtype=np.float64)
    log_terms = np.cumsum(np.log(x) - np.log(a[:, None] + ks[None, :]), axis=1)
    log_series = np.logaddexp(0.0, sc.logsumexp(log_terms, axis=1))
    series = a * np.log(x) - x - sc.gammaln(a + 1) + log_series
    return np.where(direct > -600, direct, series)


def log_ncx2_cdf(x: float, df: float, nc: float) -> float:
    """log P(chi'^2_df(nc) <= x), stable deep in the lower tail (where scipy's ncx2.logcdf
    returns -inf): the Poisson mixture F = sum_j Pois(j; nc/2) P(df/2 + j, x/2), summed in logs."""
    if x <= 0:
        return -math.inf
    lam = nc / 2
    j_max = int(lam + 40 * math.sqrt(lam + 1) + 100)
    j = np.arange(j_max + 1, dtype=np.float64)
    log_pois = scipy.stats.poisson.logpmf(j, lam) if lam > 0 else np.where(j == 0, 0.0, -np.inf)
    return float(sc.logsumexp(log_pois + _log_gammainc(df / 2 + j, x / 2)))


def linear_gaussian_log_weight(
    eps: float, w0: Any, s: float, sigma: float, input_cov_scale: float
) -> float:
    """log W(eps) for inputs x ~ N(0, c I_d): K(w) = c ||w - w0||^2 / (2 sigma^2), so
    W(eps) = P_{w ~ N(0, s^2 I)}(||w - w0||^2 <= 2 sigma^2 eps / c), and ||w - w0||^2 / s^2 is
    noncentral chi^2 with df = d, nc = ||w0||^2 / s^2, evaluated at 2 sigma^2 eps / (c s^2)."""
    if eps <= 0:
        return -math.inf
    w0 = np.asarray(w0, np.float64).reshape(-1)
    bound = 2 * sigma**2 * eps / (input_cov_scale * s**2)
    return log_ncx2_cdf(bound, w0.size, float(w0 @ w0) / s**2)


def _linear_gaussian_numpyro(X, y, s, sigma):
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(0.0, s).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ w, sigma), obs=y)


def linear_gaussian_model(X: Any, y: Any, s: float, sigma: float) -> NumPyroPosterior:
    """`bo.Posterior.from_numpyro` target: w ~ N(0, s^2 I_d), y ~ N(X w, sigma^2 I_n)."""
    import jax.numpy as jnp

    return Posterior.from_numpyro(
        _linear_gaussian_numpyro,
        jnp.asarray(X, jnp.float32),
        jnp.asarray(y, jnp.float32),
        float(s),
        float(sigma),
    )


class LinearGaussianProblem(NamedTuple):
    """A draw of the linear-Gaussian problem: host float64 `X (n, d)`, `y (n,)`, the true
    `w0 (d,)` and the hyperparameters; `posterior` builds the NumPyro target on demand."""

    X: np.ndarray
    y: np.ndarray
    w0: np.ndarray
    s: float
    sigma: float
    input_cov_scale: float

    @property
    def posterior(self) -> NumPyroPosterior:
        return linear_gaussian_model(self.X, self.y, self.s, self.sigma)

    @property
    def log_evidence(self) -> float:
        return linear_gaussian_log_evidence(self.X, self.y, self.s, self.sigma)


def linear_gaussian_problem(
    key: Any, n: int, d: int, s: float = 1.0, sigma: float = 1.0, c: float | None = None
) -> LinearGaussianProblem:
    """Draw w0 ~ N(0, s^2 I_d) (a truth from the prior), X_ij ~ N(0, c) (default c = 1/d, so
    that x.w0 has variance ~ s^2) and y = X w0 + sigma e; X and y are rounded to float32 (the
    target's precision) and returned as float64."""
    if n <= 0 or d <= 0:
        raise ValueError(f"`n` and `d` must be positive, got n={n!r}, d={d!r}.")
    c = 1.0 / d if c is None else float(c)
    k_w, k_x, k_e = jax.random.split(key, 3)
    w0 = s * np.asarray(jax.random.normal(k_w, (d,)), np.float64)
    X = math.sqrt(c) * np.asarray(jax.random.normal(k_x, (n, d)), np.float64)
    y = X @ w0 + sigma * np.asarray(jax.random.normal(k_e, (n,)), np.float64)
    # round to the float32 the target computes with, so that the exact value is for its data
    X, y = (np.asarray(np.float32(v), np.float64) for v in (X, y))
    return LinearGaussianProblem(X, y, w0, float(s), float(sigma), c)
