"""bo.lens.effective_dimension (SLQ against exact eigendecompositions) and
bo.lens.learning_coefficient (d/2 for a regular model, below it for a singular one)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from jax.flatten_util import ravel_pytree

import bayesover as bo
from bayesover.lens import Target, effective_dimension, learning_coefficient
from bayesover.lens._curvature import prior_precision_vector


def _mlp_posterior(prior):
    net = eqx.nn.MLP(4, 1, 8, 1, activation=jnp.tanh, key=jax.random.key(0))  # d = 49
    x = jax.random.normal(jax.random.key(1), (64, 4))
    y = jnp.sin(x[:, 0]) + 0.3 * jax.random.normal(jax.random.key(2), (64,))
    model = bo.Model(net, prior, bo.likelihoods.Gaussian(0.3))
    return bo.Posterior(model, bo.Data(x, y))


def test_effective_dimension_matches_exact_spectrum():
    """FanInNormal gives per-layer precisions: the spectrum is of A^-1/2 H A^-1/2."""
    posterior = _mlp_posterior(bo.priors.FanInNormal(1.0))
    position = posterior.model.sample_prior(jax.random.key(3))
    result = effective_dimension(
        posterior, position, key=jax.random.key(4), num_probes=30, lanczos_steps=40
    )
    target = Target(posterior)
    flat, unravel = ravel_pytree(position)
    hessian = jax.hessian(lambda z: -target.loglikelihood(unravel(z)))(flat)
    scale = 1 / jnp.sqrt(prior_precision_vector(target, position))
    whitened = np.asarray(scale[:, None] * hessian * scale[None, :], np.float64)
    raw = np.linalg.eigvalsh(whitened)
    lam = np.clip(raw, 0, None)
    exact = float(np.sum(lam / (lam + 1)))
    assert result.num_params == 49 and result.prior_precision is None
    assert abs(result.value - exact) <= 3 * result.stderr + 0.02 * exact, (result, exact)
    assert result.quadrature_error < 1.0  # 40 of 49 steps on an indefinite Hessian
    np.testing.assert_allclose(result.top_eigenvalues[0], lam.max(), rtol=1e-2)
    width = lam.max() / 200
    grid = np.linspace(raw.min() - 10 * width, raw.max() + 10 * width, 4000)
    mass = np.sum(result.spectral_density(grid, width)) * (grid[1] - grid[0])
    assert abs(mass - 49) < 1.0
    assert "d_eff" in str(result)


def test_ggn_equals_hessian_for_a_linear_gaussian_model():
    """For a linear net with a Gaussian likelihood the GGN is the Hessian."""
    net = eqx.nn.Linear(5, 1, key=jax.random.key(5))
    x = jax.random.normal(jax.random.key(6), (40, 5))
    y = x[:, 0] + 0.5 * jax.random.normal(jax.random.key(7), (40,))
    model = bo.Model(net, bo.priors.Normal(0.5), bo.likelihoods.Gaussian(0.5))
    posterior = bo.Posterior(model, bo.Data(x, y))
    position = model.initial_position()
    kwargs = dict(key=jax.random.key(8), num_probes=8, lanczos_steps=6)
    hessian = effective_dimension(posterior, position, curvature="hessian", **kwargs)
    ggn = effective_dimension(posterior, position, curvature="ggn", **kwargs)
    assert hessian.prior_precision == pytest.approx(4.0)  # 1 / 0.5^2
    np.testing.assert_allclose(ggn.value, hessian.value, rtol=1e-4)
    xtx = np.asarray(jnp.c_[x, jnp.ones(40)].T @ jnp.c_[x, jnp.ones(40)], np.float64) / 0.25
    lam = np.linalg.eigvalsh(xtx)
    exact = np.sum(lam / (lam + 4.0))
    assert abs(hessian.value - exact) <= 3 * hessian.stderr + 1e-3, (hessian, exact)
    with pytest.raises(ValueError, match="curvature"):
        effective_dimension(posterior, position, curvature="fisher", **kwargs)


def _linear(X, y):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ w, 1.0), obs=y)


def _product(x, y):
    a = numpyro.sample("a", dist.Normal(0.0, 1.0))
    b = numpyro.sample("b", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(a * b * x, 1.0), obs=y)


def test_learning_coefficient_regular_is_half_the_dimension():
    n, d = 1000, 4
    X = jax.random.normal(jax.random.key(9), (n, d))
    y = X @ jnp.linspace(-1, 1, d) + jax.random.normal(jax.random.key(10), (n,))
    posterior = bo.Posterior.from_numpyro(_linear, X, y)
    w_hat = jnp.linalg.lstsq(X, y)[0]  # w* must be the minimum of L_n
    result = learning_coefficient(
        posterior, {"w": w_hat}, key=jax.random.key(11), num_steps=3000, step_size=2.5e-4
    )
    # 5%: the localisation (gamma / (n beta* lambda_i) ~ 1%) and the SGLD step bias
    assert abs(result.value - d / 2) <= 3 * result.stderr + 0.05 * d / 2, result
    assert not result.diverged and result.trace.shape == (3000,)


def test_learning_coefficient_singular_is_below_half_the_dimension():
    """y = a b x + noise at a = b = 0: lambda = 1/2 (multiplicity 2) against d/2 = 1; at finite
    n the estimate sits lower still, near 1/2 - 1/log(n beta*)."""
    n = 1000
    x = jax.random.normal(jax.random.key(12), (n,))
    y = jax.random.normal(jax.random.key(13), (n,))
    posterior = bo.Posterior.from_numpyro(_product, x, y)
    center = {"a": jnp.zeros(()), "b": jnp.zeros(())}
    result = learning_coefficient(
        posterior, center, key=jax.random.key(14), num_steps=3000, step_size=2.5e-4
    )
    assert 0.0 < result.value < 0.6, result
    assert result.value + 3 * result.stderr < 1.0


def _product_log_weight(eps):
    """log P(|ab| <= sqrt(2 eps)), a, b ~ N(0, 1) independent, by quadrature over a."""
    import math

    import scipy.integrate

    t = math.sqrt(2 * eps)

    def f(a):
        return math.exp(-a * a / 2) / math.sqrt(2 * math.pi) * math.erf(t / a / math.sqrt(2))

    inner = scipy.integrate.quad(f, 0, t, limit=200, epsabs=0, epsrel=1e-12)[0]
    outer = scipy.integrate.quad(f, t, 40, limit=400, epsabs=0, epsrel=1e-12)[0]
    return math.log(2 * (inner + outer))


@pytest.mark.slow
def test_weight_slope_is_the_learning_coefficient_singular():
    """K(a, b) = (ab)^2 / 2 (y = abx + noise at a = b = 0, E x^2 = 1): W(eps) ~ c eps^(1/2)
    log(1/eps) (lambda = 1/2, m = 2), against d/2 = 1 for a regular model. The splitting curve
    matches the exact W, and the slope of log W - log log(1/eps) at small eps is lambda."""
    from bayesover.lens import weight_curve

    x = jax.random.normal(jax.random.key(12), (10,))
    posterior = bo.Posterior.from_numpyro(_product, x, jnp.zeros(10))

    def kl(position):
        return 0.5 * (position["a"] * position["b"]) ** 2

    eps = np.logspace(-12, 0, 13)
    curve = weight_curve(posterior, kl, eps, key=jax.random.key(15), num_particles=500)
    exact = np.array([_product_log_weight(e) for e in eps])
    error = np.abs(curve.log_weight - exact)
    assert np.all(error <= np.maximum(3 * curve.log_weight_stderr, 0.1)), (curve, exact)
    small = eps <= 1e-8
    corrected = curve.log_weight[small] - np.log(np.log(1 / eps[small]))
    slope = np.polyfit(np.log(eps[small]), corrected, 1)[0]
    assert abs(slope - 0.5) < 0.05, slope


def test_learning_coefficient_steps_are_bo_sgld():
    """The localised chain moves by bo.SGLD's step, x <- x + eps g + sqrt(2 eps) xi (Lau et al.'s
    x <- x + (eps'/2) g + sqrt(eps') xi with eps' = 2 eps), and bo.SGLD's own move is that step."""
    from bayesover.lens._learning_coefficient import LocalSGLDState, _localised_sgld

    sampler = bo.SGLD(step_size=1e-3, batch_size=1)
    x0 = jnp.arange(3.0)

    def log_density(x, indices):
        return -0.5 * jnp.sum(x**2), jnp.zeros(())

    init, step = _localised_sgld(sampler, log_density, 10, None)
    key = jax.random.key(0)
    state, info = step(key, init(x0))
    noise = jax.random.normal(jax.random.split(key)[1], (3,))
    expected = x0 + 1e-3 * (-x0) + jnp.sqrt(2e-3) * noise
    np.testing.assert_allclose(state.position, expected, rtol=1e-6)
    assert int(state.step) == 1 and float(info.step_size) == pytest.approx(1e-3)
    moved = sampler._move(jax.random.split(key)[1], LocalSGLDState(x0, 0), -x0, 1e-3, 10)
    np.testing.assert_array_equal(moved.position, state.position)


def _ensemble_of(posterior, positions):
    """An Ensemble of one draw per chain from unconstrained `positions` (leading axis)."""
    params = jax.vmap(posterior.constrain)(positions)
    params = jax.tree.map(lambda v: v[:, None], params)
    model = posterior.model if isinstance(posterior, bo.Posterior) else None
    return bo.Ensemble(params, {}, {"sampler": "test"}, model)


def test_learning_coefficient_at_an_ensemble_member():
    """`member=k` centres on the k-th member: the same chains as from its position."""
    from bayesover.lens._learning_coefficient import member_position

    net = eqx.nn.MLP(2, 1, 4, 1, activation=jnp.tanh, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (30, 2))
    y = jnp.sin(x[:, 0])
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(scale=None))
    posterior = bo.Posterior(model, bo.Data(x, y))
    positions = jax.vmap(model.sample_prior)(jax.random.split(jax.random.key(2), 3))
    ensemble = _ensemble_of(posterior, positions)
    second = jax.tree.map(lambda v: v[1], positions)
    got = jax.tree.leaves(member_position(posterior, ensemble, 1))
    for leaf, want in zip(got, jax.tree.leaves(second), strict=True):
        np.testing.assert_allclose(leaf, want, rtol=1e-5, atol=1e-6)
    kwargs = dict(key=jax.random.key(3), num_chains=2, num_steps=20, step_size=1e-5)
    from_member = learning_coefficient(posterior, ensemble, member=1, **kwargs)
    from_position = learning_coefficient(posterior, second, **kwargs)
    np.testing.assert_allclose(from_member.chain_values, from_position.chain_values, rtol=1e-4)

    # a deep ensemble's MAP member (one draw per chain), and a NumPyro target's sites
    deep = bo.deep_ensemble(posterior, 2, None, 50, key=jax.random.key(4))
    centre = learning_coefficient(posterior, deep, member=0, **kwargs)
    assert np.isfinite(centre.value) and not centre.diverged
    n = 50
    product = bo.Posterior.from_numpyro(
        _product, jax.random.normal(jax.random.key(5), (n,)), jnp.zeros(n)
    )
    sites = {"a": jnp.array([0.0, 0.5]), "b": jnp.array([0.0, -0.5])}
    numpyro_ensemble = bo.Ensemble(jax.tree.map(lambda v: v[:, None], sites), {}, {})
    a = learning_coefficient(product, numpyro_ensemble, member=1, **kwargs)
    b = learning_coefficient(product, {"a": jnp.array(0.5), "b": jnp.array(-0.5)}, **kwargs)
    np.testing.assert_allclose(a.chain_values, b.chain_values, rtol=1e-6)

    with pytest.raises(ValueError, match="member"):
        learning_coefficient(posterior, ensemble, member=3, **kwargs)
    with pytest.raises(TypeError, match="member"):
        learning_coefficient(posterior, ensemble, **kwargs)  # 3 members: say which
    with pytest.raises(ValueError, match="member"):
        learning_coefficient(posterior, second, member=0, **kwargs)
    with pytest.raises(TypeError, match="NumPyro"):
        learning_coefficient(posterior, numpyro_ensemble, member=0, **kwargs)
