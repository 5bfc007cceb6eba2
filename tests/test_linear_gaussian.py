"""The conjugate linear-Gaussian model: log density and mode against the closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import model_file

import bayesover as bo

lg = model_file("linear_gaussian")


@pytest.fixture(scope="module")
def problem():
    return lg.build(seed=3, num_features=3, num_points=40, prior_scale=1.5, noise_scale=0.5)


def _position_from_vector(posterior, v):
    net = posterior.model.params
    net = jax.tree.unflatten(
        jax.tree.structure(net), [jnp.asarray(v[:-1]).reshape(1, -1), jnp.asarray(v[-1:])]
    )
    return {"net": net, "prior": {}, "likelihood": {}}


def test_logdensity_equals_closed_form_up_to_a_constant(problem):
    posterior = problem.posterior
    mean, cov = lg.exact_posterior(posterior)
    precision = np.linalg.inv(cov)
    rng = np.random.default_rng(0)
    points = [mean + rng.normal(size=mean.shape) * 0.3 for _ in range(5)]

    def exact(v):
        return -0.5 * (v - mean) @ precision @ (v - mean)

    ours = [float(posterior.logdensity(_position_from_vector(posterior, v))) for v in points]
    for i in range(1, len(points)):
        assert ours[i] - ours[0] == pytest.approx(exact(points[i]) - exact(points[0]), abs=2e-3)


def test_exact_mean_is_the_mode_found_by_optimisation(problem):
    posterior = problem.posterior
    mean, cov = lg.exact_posterior(posterior)
    result = bo.map_estimate(
        posterior, key=jax.random.key(0), optimizer=optax.adam(0.05), num_steps=3000
    )
    np.testing.assert_allclose(lg.flatten(result.position), mean, atol=1e-3)
    # The Hessian of -logdensity is the posterior precision: it gives the exact covariance.
    flat = jnp.asarray(mean, jnp.float32)
    hessian = jax.hessian(lambda v: -posterior.logdensity(_position_from_vector(posterior, v)))(
        flat
    )
    np.testing.assert_allclose(np.linalg.inv(np.asarray(hessian, np.float64)), cov, rtol=1e-3)


def test_temperature_tempers_the_likelihood_only():
    cold = lg.build(seed=3, temperature=0.5).posterior
    warm = lg.build(seed=3, temperature=2.0).posterior
    base = lg.build(seed=3).posterior
    position = base.initial_position(jax.random.key(1))
    log_prior = base.log_prior(position)
    loglik = base.logdensity(position) - log_prior
    assert float(cold.logdensity(position) - log_prior) == pytest.approx(
        float(2 * loglik), rel=1e-5
    )
    assert float(warm.logdensity(position) - log_prior) == pytest.approx(
        float(loglik / 2), rel=1e-5
    )
    # The exact tempered posterior is wider by sqrt(T) in the data-dominated limit.
    _, cov_warm = lg.exact_posterior(warm)
    _, cov_base = lg.exact_posterior(base)
    assert np.all(np.diag(cov_warm) > np.diag(cov_base))
