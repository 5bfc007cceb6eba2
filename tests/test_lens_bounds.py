"""bo.lens.bounds: the chain expected regret <= -log int w e^(-nK) <= min_eps [-log W + n eps]."""

import math
from typing import NamedTuple

import numpy as np
import pytest
import scipy.integrate

from bayesover.lens import closed_form as cf
from bayesover.lens._bounds import bounds
from bayesover.lens._result import EvidenceResult
from bayesover.lens._weight import WeightCurve

P0 = 0.2
NS = np.array([1, 10, 100, 1000, 10000])


def _kl(q):
    return P0 * math.log(P0 / q) + (1 - P0) * math.log((1 - P0) / (1 - q))


@pytest.fixture(scope="module")
def exact_curve():
    eps = np.logspace(-6, 1, 50)
    log_w = np.array([cf.bernoulli_log_weight(e, P0) for e in eps])
    return WeightCurve(eps, log_w, np.zeros_like(eps), "exact", 0)


def test_chain_holds_on_bernoulli(exact_curve):
    regret = [cf.bernoulli_expected_regret(int(n), P0) for n in NS]
    result = bounds(n=NS, weight_curve=exact_curve, regret=regret)
    assert np.all(result.holds)
    assert np.all(result.regret <= result.exp_integral_bound)
    assert np.all(result.exp_integral_bound <= result.resolvability_bound)
    assert np.all(result.margin_regret > 0.1) and np.all(result.tail_fraction < 1e-2)


def test_exp_integral_matches_direct_integration(exact_curve):
    result = bounds(n=NS, weight_curve=exact_curve)
    for n, value in zip(NS, result.exp_integral_bound, strict=True):
        direct, _ = scipy.integrate.quad(
            lambda q, n=n: math.exp(-n * _kl(q)), 0, 1, points=[P0], limit=500, epsrel=1e-10
        )
        assert value == pytest.approx(-math.log(direct), abs=2e-3)
    assert np.all(np.isnan(result.regret)) and np.all(result.holds)


def test_resolvability_is_the_minimum(exact_curve):
    result = bounds(n=NS, weight_curve=exact_curve)
    fine = np.logspace(-6, 1, 3000)
    log_w = np.array([cf.bernoulli_log_weight(e, P0) for e in fine])
    for i, n in enumerate(NS):
        objective = -log_w + n * fine
        assert result.resolvability_bound[i] == pytest.approx(objective.min(), abs=5e-3)
        assert result.eps_star[i] == pytest.approx(fine[objective.argmin()], rel=0.05)


def test_zero_tail_is_conservative(exact_curve):
    short = WeightCurve(
        exact_curve.eps[20:], exact_curve.log_weight[20:], exact_curve.eps[20:] * 0, "exact", 0
    )
    power = bounds(n=NS, weight_curve=short)
    zero = bounds(n=NS, weight_curve=short, tail="zero")
    full = bounds(n=NS, weight_curve=exact_curve)
    assert np.all(zero.exp_integral_bound >= power.exp_integral_bound - 1e-9)
    assert np.all(zero.resolvability_bound >= power.resolvability_bound - 1e-9)
    assert np.all(zero.exp_integral_bound >= full.exp_integral_bound - 1e-6)
    # the small-eps power law recovers the cut part of the curve
    np.testing.assert_allclose(power.exp_integral_bound, full.exp_integral_bound, atol=0.02)
    assert power.tail_fraction[-1] > 0.5 and np.all(zero.tail_fraction == 0)


def test_chain_on_gaussian_location():
    mu0, sigma, A = 0.3, 1.0, 5.0
    eps = np.logspace(-9, 2, 60)
    log_w = np.array([cf.gaussian_location_log_weight(e, mu0, sigma, A) for e in eps])
    curve = WeightCurve(eps, log_w, np.zeros_like(eps), "exact", 0)
    ns = np.array([1, 30, 1000])
    regret = [cf.gaussian_location_expected_regret(int(n), mu0, sigma, A) for n in ns]
    result = bounds(n=ns, weight_curve=curve, regret=regret)
    assert np.all(result.holds)
    # -log int w e^(-nK) = log 2A - log int_{-A}^{A} e^(-n (mu - mu0)^2 / 2 sigma^2) d mu
    for n, value in zip(ns, result.exp_integral_bound, strict=True):
        s = sigma / math.sqrt(n)
        mass = (
            math.erf((A - mu0) / (s * math.sqrt(2))) / 2
            + math.erf((A + mu0) / (s * math.sqrt(2))) / 2
        )
        assert value == pytest.approx(
            math.log(2 * A) - math.log(s * math.sqrt(2 * math.pi) * mass), abs=2e-3
        )


class _Regret(NamedTuple):
    n: np.ndarray
    regret: np.ndarray
    regret_stderr: np.ndarray


def test_regret_inputs(exact_curve):
    all_n = np.arange(1, 101)
    regret = _Regret(all_n, np.log(all_n), 0.01 * np.ones(100))
    result = bounds(n=[10, 100], weight_curve=exact_curve, regret=regret)
    np.testing.assert_allclose(result.regret, np.log([10, 100]))
    assert bounds(weight_curve=exact_curve, regret=regret).n.size == 100
    with pytest.raises(ValueError, match="no regret"):
        bounds(n=[1000], weight_curve=exact_curve, regret=regret)
    x = np.array([1.0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    evidence = EvidenceResult.from_runs([cf.bernoulli_log_evidence(x)] * 3, "exact")
    truth = float(np.sum(x * math.log(P0) + (1 - x) * math.log(1 - P0)))
    result = bounds(
        n=10, weight_curve=exact_curve, log_evidence_result=evidence, truth_loglik=truth
    )
    assert result.regret[0] == pytest.approx(truth - cf.bernoulli_log_evidence(x))
    with pytest.raises(ValueError, match="truth_loglik"):
        bounds(n=10, weight_curve=exact_curve, log_evidence_result=evidence)


def test_bad_inputs_and_dataset(exact_curve):
    with pytest.raises(ValueError, match="`n`"):
        bounds(weight_curve=exact_curve)
    with pytest.raises(ValueError, match="`n`"):
        bounds(n=[0, 10], weight_curve=exact_curve)
    with pytest.raises(ValueError, match="tail"):
        bounds(n=10, weight_curve=exact_curve, tail="linear")
    with pytest.raises(TypeError, match="weight_curve"):
        bounds(n=10, weight_curve=np.zeros(3))
    with pytest.raises(ValueError, match="one value per n"):
        bounds(n=[1, 2, 3], weight_curve=exact_curve, regret=[1.0, 2.0])
    ds = bounds(n=NS, weight_curve=exact_curve, regret=np.ones(5)).to_dataset()
    for name in [
        "regret",
        "regret_stderr",
        "exp_integral_bound",
        "resolvability_bound",
        "eps_star",
    ]:
        assert ds[name].dims == ("n",)
    np.testing.assert_array_equal(ds["n"].values, NS)
    assert "exp-integral" in str(bounds(n=NS, weight_curve=exact_curve))


@pytest.mark.slow
def test_chain_from_a_splitting_curve():
    """The whole pipeline on the Bernoulli: splitting W, then the chain against the exact
    expected regret, and the exp-integral against the one from the exact W."""
    import jax
    import jax.numpy as jnp

    from bayesover.lens._weight import weight_curve

    posterior = cf.bernoulli_model(np.array([0.0, 1.0]))

    def kl(position):
        delta = posterior.constrain(position)["p"] - P0
        return -P0 * jnp.log1p(delta / P0) - (1 - P0) * jnp.log1p(-delta / (1 - P0))

    eps = np.logspace(-7, 1, 30)
    curve = weight_curve(posterior, kl, eps, key=jax.random.key(0), num_particles=500)
    exact_log_w = np.array([cf.bernoulli_log_weight(e, P0) for e in eps])
    exact = WeightCurve(eps, exact_log_w, np.zeros_like(eps), "exact", 0)
    ns = np.array([1, 10, 100, 1000, 10000])
    regret = [cf.bernoulli_expected_regret(int(n), P0) for n in ns]
    estimated = bounds(n=ns, weight_curve=curve, regret=regret)
    reference = bounds(n=ns, weight_curve=exact)
    assert np.all(estimated.holds)
    error = np.abs(estimated.exp_integral_bound - reference.exp_integral_bound)
    assert np.all(error <= 3 * estimated.exp_integral_stderr + 0.05), error


def test_bounds_use_only_reliable_points(exact_curve):
    """An unreliable point (here a wildly wrong one) is left out, and `eps_used` says so."""
    log_w = exact_curve.log_weight.copy()
    log_w[0] = log_w[0] - 50.0
    reliable = np.ones(log_w.size, bool)
    reliable[0] = False
    reasons = tuple("moves failed" if not r else "" for r in reliable)
    curve = WeightCurve(exact_curve.eps, log_w, np.zeros_like(log_w), "exact", 0,
                        reliable=reliable, reasons=reasons)  # fmt: skip
    trimmed = WeightCurve(exact_curve.eps[1:], exact_curve.log_weight[1:],
                          np.zeros(log_w.size - 1), "exact", 0)  # fmt: skip
    got, want = bounds(n=NS, weight_curve=curve), bounds(n=NS, weight_curve=trimmed)
    np.testing.assert_allclose(got.exp_integral_bound, want.exp_integral_bound)
    np.testing.assert_array_equal(got.eps_used, exact_curve.eps[1:])
    assert "reliable points" in str(got)
    assert got.to_dataset().attrs["num_eps_used"] == log_w.size - 1
    none = WeightCurve(exact_curve.eps, log_w, np.zeros_like(log_w), "exact", 0,
                       reliable=np.zeros(log_w.size, bool))  # fmt: skip
    with pytest.raises(ValueError, match="reliable"):
        bounds(n=NS, weight_curve=none)
