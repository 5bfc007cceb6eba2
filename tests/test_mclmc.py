"""`bo.MCLMC` and `bo.AdjustedMCLMC` against the conjugate linear-Gaussian posterior.

For each coordinate of [w_1..w_3, b] (4 chains, 1,000 warm-up steps, 2,000 draws, fixed seed):
the mean is within 4 MCSE (`arviz_stats.mcse`, method "mean") of the exact mean, and the
standard deviation within 4 MCSE (method "sd") and within 10% of the exact one. Also: a NumPyro
target runs, with the same draws twice for a fixed key; bad arguments raise; `num_warmup=0`
keeps the given L and step size.
"""

import warnings

import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from conftest import model_file

import bayesover as bo
from bayesover.posterior._posterior import AbstractPosterior

lg = model_file("linear_gaussian")

SAMPLERS = {"MCLMC": bo.MCLMC(), "AdjustedMCLMC": bo.AdjustedMCLMC()}


@pytest.fixture(scope="module")
def problem():
    return lg.build(seed=3, num_features=3, num_points=40, prior_scale=1.5, noise_scale=0.5)


@pytest.fixture(scope="module", params=list(SAMPLERS))
def run(request, problem):
    ensemble = bo.sample(
        problem.posterior,
        SAMPLERS[request.param],
        key=jax.random.key(0),
        num_chains=4,
        num_warmup=1000,
        num_draws=2000,
        progress=False,
    )
    return request.param, ensemble


def test_matches_the_exact_posterior(run, problem):
    name, ensemble = run
    mean, cov = lg.exact_posterior(problem.posterior)
    x = np.asarray(jax.vmap(jax.vmap(lg.flatten))(ensemble.params), np.float64)  # (4, 2000, 4)
    exact_sd = np.sqrt(np.diag(cov))
    for i in range(x.shape[-1]):
        _assert_matches(f"{name} coordinate {i}", x[..., i], mean[i], exact_sd[i], sd_tol=0.10)


def _assert_matches(label, xi, mean, sd_exact, sd_tol):
    """Draws `xi` (chain, draw) have the exact mean within 4 MCSE and the exact sd within
    4 MCSE and within the relative tolerance `sd_tol`."""
    z = (xi.mean() - mean) / float(arviz_stats.mcse(xi, method="mean"))
    sd = xi.std(ddof=1)
    sd_z = (sd - sd_exact) / float(arviz_stats.mcse(xi, method="sd"))
    sd_error = sd / sd_exact - 1.0
    ess = float(arviz_stats.ess(xi, method="bulk"))
    print(f"{label}: z {z:+.2f}, sd error {100 * sd_error:+.1f}% ({sd_z:+.2f}), ess {ess:.0f}")
    assert abs(z) < 4.0, f"{label}: mean z = {z:.2f}"
    assert abs(sd_z) < 4.0 and abs(sd_error) < sd_tol, (
        f"{label}: sd {sd:.4g} vs {sd_exact:.4g} ({sd_z:+.2f} MCSE)"
    )


def test_records_the_stats(run):
    name, ensemble = run
    stats = ensemble.stats
    expected = {
        "MCLMC": {"energy_change", "kinetic_change", "step_size", "L", "lp", "non_finite"},
        "AdjustedMCLMC": {
            "acceptance_rate",
            "diverging",
            "n_steps",
            "step_size",
            "L",
            "energy",
            "lp",
            "non_finite",
        },
    }[name]
    assert set(stats) == expected
    assert all(stats[k].shape == (4, 2000) for k in stats)
    assert not np.any(stats["non_finite"])
    # the tuned parameters live in the state: constant over the draws of a chain
    for k in ("L", "step_size"):
        assert np.all(stats[k] == stats[k][:, :1]) and np.all(stats[k] > 0)
    if name == "AdjustedMCLMC":
        assert 0.75 < float(np.mean(stats["acceptance_rate"])) < 1.0
        assert not np.any(stats["diverging"])
        assert np.all(stats["n_steps"] >= 1)
    else:  # the tuner's target: energy error variance per dimension ~ 5e-4 (d = 4)
        assert float(np.var(stats["energy_change"])) / 4 < 5e-3


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_num_warmup_0_keeps_the_given_settings(name, problem):
    sampler = {
        "MCLMC": bo.MCLMC(L=1.5, step_size=0.3),
        "AdjustedMCLMC": bo.AdjustedMCLMC(step_size=0.3, num_integration_steps=3.0),
    }[name]
    untuned = bo.sample(
        problem.posterior,
        sampler,
        key=jax.random.key(7),
        num_chains=2,
        num_warmup=0,
        num_draws=20,
        progress=False,
    )
    np.testing.assert_allclose(np.asarray(untuned.stats["step_size"]), 0.3)
    L = 1.5 if name == "MCLMC" else 0.9  # adjusted: L = num_integration_steps * step_size
    np.testing.assert_allclose(np.asarray(untuned.stats["L"]), L, rtol=1e-6)


def _regression(x, y):
    slope = numpyro.sample("slope", dist.Normal(0.0, 1.0))
    intercept = numpyro.sample("intercept", dist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    numpyro.sample("y", dist.Normal(intercept + slope * x, sigma), obs=y)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_runs_on_a_numpyro_target_reproducibly(name):
    x = jnp.linspace(-1.0, 1.0, 30)
    y = 0.5 + 2.0 * x + 0.3 * jax.random.normal(jax.random.key(0), (30,))
    target = bo.Posterior.from_numpyro(_regression, x, y)

    def draw():
        return bo.sample(
            target,
            SAMPLERS[name],
            key=jax.random.key(1),
            num_chains=2,
            num_warmup=200,
            num_draws=100,
            progress=False,
        )

    ensemble, again = draw(), draw()
    assert set(ensemble.params) == {"slope", "intercept", "sigma"}
    assert ensemble.params["sigma"].shape == (2, 100)
    assert np.all(np.asarray(ensemble.params["sigma"]) > 0)
    assert abs(float(ensemble.params["slope"].mean()) - 2.0) < 0.3
    assert not np.allclose(np.asarray(ensemble.stats["step_size"]), SAMPLERS[name].step_size or 0)
    for a, b in zip(jax.tree.leaves(ensemble.params), jax.tree.leaves(again.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# metric="low_rank": a Gaussian with correlations 0.99 and sds 0.1-10 (the correlation matrix's
# condition number is 298), 200 warm-up steps, 4 x 2,000 draws, key 0. Measured: with the default
# diagonal metric bulk ESS 5 (MCLMC) and 41 (adjusted), sds 20% and 14% too small; with the
# low-rank one (rank min(10, d) = 3: the whole correlation) bulk ESS 3,069-3,098 and 6,011-6,070,
# sd errors within 1.3%.
_CORR_MEAN = np.array([1.0, -2.0, 3.0])
_CORR_SD = np.array([1.0, 10.0, 0.1])
_CORR_COV = (0.99 * np.ones((3, 3)) + 0.01 * np.eye(3)) * np.outer(_CORR_SD, _CORR_SD)


def _correlated(_):
    numpyro.sample("x", dist.MultivariateNormal(jnp.asarray(_CORR_MEAN), jnp.asarray(_CORR_COV)))


@pytest.mark.parametrize(
    "name",
    ["MCLMC", pytest.param("AdjustedMCLMC", marks=pytest.mark.slow)],  # ~17 s each
)
def test_low_rank_metric_on_a_correlated_gaussian(name):
    sampler = {"MCLMC": bo.MCLMC, "AdjustedMCLMC": bo.AdjustedMCLMC}[name](metric="low_rank")
    ensemble = bo.sample(
        bo.Posterior.from_numpyro(_correlated, None),
        sampler,
        key=jax.random.key(0),
        num_chains=4,
        num_warmup=200,
        num_draws=2000,
        progress=False,
    )
    assert ensemble.config["metric"] == "low_rank" and ensemble.config["rank"] == 10
    assert not np.any(ensemble.stats["non_finite"])
    x = np.asarray(ensemble.params["x"], np.float64)  # (4, 2000, 3)
    for i in range(3):
        _assert_matches(f"{name} x[{i}]", x[..., i], _CORR_MEAN[i], _CORR_SD[i], sd_tol=0.05)


def test_the_diagonal_metric_is_recorded(run):
    _, ensemble = run
    assert ensemble.config["metric"] == "diagonal" and "rank" not in ensemble.config


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_low_rank_needs_a_longer_warmup(name, problem):
    sampler = {"MCLMC": bo.MCLMC, "AdjustedMCLMC": bo.AdjustedMCLMC}[name](metric="low_rank")
    with pytest.raises(ValueError, match="`metric='low_rank'` needs num_warmup >= "):
        bo.sample(
            problem.posterior,
            sampler,
            key=jax.random.key(0),
            num_chains=1,
            num_warmup=10,
            num_draws=2,
            progress=False,
        )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: bo.MCLMC(metric="dense"), "`metric` must be 'diagonal' or 'low_rank'"),
        (lambda: bo.MCLMC(metric=None), "`metric` must be a str"),
        (lambda: bo.MCLMC(metric="low_rank", rank=0), "`rank` must be an int >= 1"),
        (lambda: bo.MCLMC(rank=2.5), "`rank` must be an int"),
        (
            lambda: bo.MCLMC(metric="low_rank", diagonal_preconditioning=False),
            "needs `diagonal_preconditioning=True`",
        ),
        (lambda: bo.AdjustedMCLMC(metric="Low_rank"), "`metric` must be 'diagonal' or"),
        (lambda: bo.AdjustedMCLMC(metric="low_rank", rank=-3), "`rank` must be an int >= 1"),
        (lambda: bo.MCLMC(step_size=0.0), "step_size"),
        (lambda: bo.MCLMC(L=-1.0), "`L`"),
        (lambda: bo.MCLMC(desired_energy_var=0), "desired_energy_var"),
        (lambda: bo.MCLMC(frac_tune2=-0.1), "frac_tune2"),
        (lambda: bo.MCLMC(frac_tune1=0, frac_tune2=0, frac_tune3=0), "frac_tune1"),
        (lambda: bo.MCLMC(diagonal_preconditioning=1), "diagonal_preconditioning"),
        (lambda: bo.AdjustedMCLMC(target_acceptance_rate=1.0), "target_acceptance_rate"),
        (lambda: bo.AdjustedMCLMC(num_integration_steps=1.0), "num_integration_steps"),
        (lambda: bo.AdjustedMCLMC(frac_tune1=0.0), "frac_tune1"),
        (lambda: bo.AdjustedMCLMC(divergence_threshold=-1), "divergence_threshold"),
    ],
)
def test_bad_arguments_raise(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_a_one_dimensional_target_is_refused():
    def one(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    target = bo.Posterior.from_numpyro(one, jnp.zeros(3))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        bo.sample(target, bo.MCLMC(), key=jax.random.key(0), num_chains=1, num_draws=2)


def test_langevin_ensemble_from_deep_ensemble_modes(problem):
    """A Langevin ensemble (Sommer et al. 2025): deep-ensemble members (300 Adam steps) as the
    starts of short MCLMC chains (500 tuning steps, 1,000 draws), one call; the same gates as
    above against the exact posterior."""
    ensemble = bo.deep_ensemble(
        problem.posterior,
        4,
        None,
        300,
        key=jax.random.key(1),
        then_sample=bo.MCLMC(),
        num_warmup=500,
        num_draws=1000,
    )
    assert ensemble.config["sampler_name"] == "deep_ensemble+MCLMC"
    assert ensemble.config["init"] == "deep_ensemble"
    mean, cov = lg.exact_posterior(problem.posterior)
    x = np.asarray(jax.vmap(jax.vmap(lg.flatten))(ensemble.params), np.float64)  # (4, 1000, 4)
    assert x.shape == (4, 1000, 4)
    exact_sd = np.sqrt(np.diag(cov))
    for i in range(x.shape[-1]):
        xi = x[..., i]
        z = (xi.mean() - mean[i]) / float(arviz_stats.mcse(xi, method="mean"))
        sd_error = xi.std(ddof=1) / exact_sd[i] - 1.0
        assert abs(z) < 4.0, f"coordinate {i}: mean z = {z:.2f}"
        assert abs(sd_error) < 0.10, f"coordinate {i}: sd error {100 * sd_error:+.1f}%"


# A target whose coordinates are far from 0 against their sd (as a network's weights ~1 with
# posterior sds ~1e-3): BlackJAX's tuners estimate the variances as E[x^2] - E[x]^2 in float32,
# which cancels there. Before the fix (bayesover 316b4da, measured): MCLMC's tuned step was
# exactly 0 (every tuning step NaN after a negative variance, the step shrunk until step**6
# underflowed; chains frozen 80-340 sd from the mean), adjusted MCLMC's NaN.
_FAR_MEAN = jnp.array([100.0, -100.0, 30.0, 1.0])
_FAR_SD = 1e-3
# Adjusted MCLMC's dual averaging grows the step from BlackJAX's 0.2 sqrt(d) over its tuning
# passes: after 100 warm-up steps (key 0) its step was 0.03 (acceptance 0.995, chains spread
# 0.08-0.21 x the sd), after 400 it was 2.2-2.5 (spread 0.84-1.08 x the sd).
_FAR_WARMUP = {"MCLMC": 100, "AdjustedMCLMC": 400}


def _far(_):
    numpyro.sample("x", dist.Normal(_FAR_MEAN, _FAR_SD))


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_tunes_where_float32_variances_cancel(name):
    target = bo.Posterior.from_numpyro(_far, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ensemble = bo.sample(
            target,
            SAMPLERS[name],
            key=jax.random.key(0),
            num_chains=2,
            num_warmup=_FAR_WARMUP[name],
            num_draws=100,
            init={"x": _FAR_MEAN},
            progress=False,
        )
    step = np.asarray(ensemble.stats["step_size"])
    assert np.all(np.isfinite(step) & (step > 0))
    assert not np.any(ensemble.stats["non_finite"])
    x = np.asarray(ensemble.params["x"])
    assert np.all(np.abs(x.mean(axis=1) - np.asarray(_FAR_MEAN)) < 5 * _FAR_SD)
    if name == "AdjustedMCLMC":  # exact: the spread too (unadjusted mixes slowly here)
        np.testing.assert_allclose(x.std(axis=1), _FAR_SD, rtol=0.25)


def test_positive_metric_replaces_non_positive_entries():
    from bayesover.inference.samplers._mclmc import _positive

    out = _positive(jnp.array([2e-6, -1e-5, 0.0, jnp.nan, 3.0, jnp.inf]))
    np.testing.assert_allclose(np.asarray(out), [2e-6, 2e-6, 2e-6, 2e-6, 3.0, 2e-6])
    np.testing.assert_array_equal(np.asarray(_positive(jnp.array([-1.0, jnp.nan]))), [1.0, 1.0])


class _NaNOffStart(AbstractPosterior):
    """log p = 0 at x = 0 and NaN everywhere else."""

    temperature: float = 1.0

    def logdensity(self, position):
        return jnp.where(jnp.all(position["x"] == 0.0), 0.0, jnp.nan) - 0.0 * position["x"].sum()

    def initial_position(self, key=None):
        return {"x": jnp.zeros(2)}

    def constrain(self, position):
        return position


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_a_collapsed_tuner_warns(name):
    """A log density that is NaN everywhere but at the start: every tuning step is NaN, the
    tuned step collapses (MCLMC: 0; adjusted: BlackJAX's floor 1e-5), and bo.sample says so."""
    target = _NaNOffStart()
    with pytest.warns(RuntimeWarning, match=f"{name}'s tuner returned step_size"):
        bo.sample(
            target,
            SAMPLERS[name],
            key=jax.random.key(0),
            num_chains=1,
            num_warmup=30,
            num_draws=2,
            init={"x": jnp.zeros(2)},
            progress=False,
        )
