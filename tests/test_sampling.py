"""`bo.sample` and the sampler protocol: shapes, step counts, reproducibility, initialisation,
bad input, stopped SG-MCMC chains, divergences and NumPyro posteriors.

Every `bo.sample` call compiles its own programs (several seconds on a small CPU), so the
runs are few, tiny (a 4-parameter linear-Gaussian posterior, a 2-3-1 MLP, eight schools) and
shared through module-scoped fixtures.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from conftest import model_file

import bayesover as bo
from bayesover.inference.samplers._sgmcmc import SGMCMCStats

lg = model_file("linear_gaussian")

ARVIZ_STATS = {
    "acceptance_rate",
    "diverging",
    "tree_depth",
    "n_steps",
    "step_size",
    "energy",
    "lp",
    "stopped",  # SG-MCMC: the iterate turned non-finite (bayesover's own)
    "non_finite",  # HMC/NUTS: the trajectory met a non-finite log density (bayesover's own)
}

NUM_CHAINS, NUM_WARMUP, NUM_DRAWS, THINNING = 2, 6, 5, 2
NUTS_WARMUP, NUTS_DRAWS = 40, 100  # NUTS runs on centred eight schools
CYCLICAL = bo.schedules.cyclical(2e-3, cycle_length=5)
POLYNOMIAL = bo.schedules.polynomial(2e-3, decay_steps=2.0, power=0.55)

SAMPLERS = {
    # target 0.6: a large step size, so that the eight schools funnel makes NUTS diverge
    "NUTS": bo.NUTS(max_tree_depth=5, target_acceptance_rate=0.6),
    "HMC": bo.HMC(num_integration_steps=4),
    # Schedules make the step index of every kept draw visible in stats["step_size"].
    "SGLD": bo.SGLD(2e-3, batch_size=10, schedule=CYCLICAL),
    "SGHMC": bo.SGHMC(2e-3, batch_size=10, schedule=POLYNOMIAL),
    "pSGLD": bo.pSGLD(1e-4, batch_size=10),
}
SG_MCMC = ("SGLD", "SGHMC", "pSGLD")

# Centred eight schools: the funnel that makes NUTS diverge.
EIGHT_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
EIGHT_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools_centred(y, sigma):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", y.shape[0]):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)
    numpyro.deterministic("log_tau", jnp.log(tau))


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear():
    """Conjugate linear regression, 3 features + bias, 40 points (position: net only)."""
    return lg.build(seed=3, num_features=3, num_points=40).posterior


@pytest.fixture(scope="module")
def mlp():
    """A 2-3-1 tanh MLP on 40 points with a learned Gaussian noise scale."""
    x = jax.random.normal(jax.random.key(5), (40, 2))
    y = jnp.sin(x[:, 0]) + 0.1 * jax.random.normal(jax.random.key(6), (40,))
    net = eqx.nn.MLP(2, "scalar", 3, 1, activation=jnp.tanh, key=jax.random.key(7))
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(scale=None))
    return bo.Posterior(model, bo.Data(x, y))


@pytest.fixture(scope="module")
def eight_schools():
    return bo.Posterior.from_numpyro(eight_schools_centred, y=EIGHT_Y, sigma=EIGHT_SIGMA)


class _Runs:
    """One small `bo.sample` run per sampler, made on first use and shared by the tests."""

    def __init__(self, linear, eight_schools):
        self.posteriors = {"linear": linear, "eight_schools": eight_schools}
        self.cache = {}

    def __getitem__(self, name):
        if name not in self.cache:
            # NUTS runs on eight schools (shapes of named NumPyro sites, divergences); the
            # others on the linear-Gaussian posterior.
            posterior = self.posteriors["eight_schools" if name == "NUTS" else "linear"]
            num_warmup, num_draws = (
                (NUTS_WARMUP, NUTS_DRAWS) if name == "NUTS" else (NUM_WARMUP, NUM_DRAWS)
            )
            self.cache[name] = sample(
                posterior,
                SAMPLERS[name],
                num_warmup=num_warmup,
                num_draws=num_draws,
                thinning=1 if name == "NUTS" else THINNING,
            )
        return self.cache[name]


@pytest.fixture(scope="module")
def runs(linear, eight_schools):
    return _Runs(linear, eight_schools)


def sample(posterior, sampler, **kwargs):
    options = dict(
        key=jax.random.key(0),
        num_chains=NUM_CHAINS,
        num_warmup=NUM_WARMUP,
        num_draws=NUM_DRAWS,
        progress=False,
    )
    options.update(kwargs)
    return bo.sample(posterior, sampler, **options)


def mean_position(posterior, mean):
    """The linear-Gaussian position whose [w, b] is `mean`."""
    net = posterior.model.params
    leaves = [jnp.asarray(mean[:-1], jnp.float32).reshape(1, -1), jnp.asarray(mean[-1:])]
    return {
        "net": jax.tree.unflatten(jax.tree.structure(net), leaves),
        "prior": {},
        "likelihood": {},
    }


def flat_draws(ensemble):
    """(chain, draw, 4) array of linear-Gaussian draws [w, b]."""
    return np.asarray(jax.vmap(jax.vmap(lg.flatten))(ensemble.params))


# -- the (state, info) protocol -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_speaks_the_protocol(name, linear):
    algorithm = SAMPLERS[name].build(linear)
    assert isinstance(algorithm, bo.samplers.Algorithm)
    position = linear.initial_position(jax.random.key(1))

    state = jax.jit(algorithm.init)(position, jax.random.key(2))
    state = jax.jit(algorithm.warmup, static_argnums=2)(jax.random.key(3), state, 5)
    new_state, info = jax.jit(algorithm.step)(jax.random.key(4), state)

    # info: a NamedTuple of ArviZ-named scalar statistics.
    assert isinstance(info, tuple) and hasattr(info, "_asdict")
    assert set(info._fields) <= ARVIZ_STATS, set(info._fields) - ARVIZ_STATS
    assert {"step_size", "lp"} <= set(info._fields)
    for field, value in info._asdict().items():
        assert jnp.shape(value) == (), field
    assert np.isfinite(float(info.lp))
    assert float(info.step_size) > 0
    # state: same pytree type after a step, a position shaped like the posterior's.
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert jax.tree.structure(new_state.position) == jax.tree.structure(position)
    for new, old in zip(
        jax.tree.leaves(new_state.position), jax.tree.leaves(position), strict=True
    ):
        assert new.shape == old.shape and new.dtype == old.dtype
        assert bool(jnp.all(jnp.isfinite(new)))
    if name in SG_MCMC:
        moved = [
            bool(jnp.any(a != b))
            for a, b in zip(
                jax.tree.leaves(new_state.position), jax.tree.leaves(state.position), strict=True
            )
        ]
        assert all(moved)  # an SG-MCMC step always moves (HMC may reject)
        assert {"stopped"} <= set(info._fields) and not bool(info.stopped)
        assert int(new_state.step) == 6  # 5 warm-up steps, then one more
    else:
        assert info.diverging.dtype == jnp.bool_


# -- bo.sample output -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sample_shapes(name, runs, linear, eight_schools):
    ensemble = runs[name]
    assert isinstance(ensemble, bo.Ensemble)
    num_draws = NUTS_DRAWS if name == "NUTS" else NUM_DRAWS
    lead = (NUM_CHAINS, num_draws)
    assert (ensemble.num_chains, ensemble.num_draws) == lead
    posterior = eight_schools if name == "NUTS" else linear
    one = posterior.constrain(posterior.initial_position())
    assert jax.tree.structure(ensemble.params) == jax.tree.structure(one)
    for draws, single in zip(jax.tree.leaves(ensemble.params), jax.tree.leaves(one), strict=True):
        assert draws.shape == (*lead, *jnp.shape(single))
    algorithm = SAMPLERS[name].build(posterior)
    state = algorithm.init(posterior.initial_position(), jax.random.key(0))
    _, info = jax.eval_shape(algorithm.step, jax.random.key(0), state)
    assert set(ensemble.stats) == set(info._fields)
    for stat, value in ensemble.stats.items():
        assert value.shape == lead, stat
    config = ensemble.config
    assert config["sampler_name"] == name and config["num_draws"] == num_draws
    assert config["num_chains"] == NUM_CHAINS


def _kept_steps():
    """Step indices of the kept draws: warm-up, then the last step of each thinning window."""
    return NUM_WARMUP + THINNING * np.arange(NUM_DRAWS) + THINNING - 1


@pytest.mark.parametrize("name, schedule", [("SGLD", CYCLICAL), ("SGHMC", POLYNOMIAL)])
def test_sgmcmc_keeps_the_last_step_of_every_thinning_window(name, schedule, runs):
    """num_warmup + num_draws * thinning steps; stats["step_size"] of draw d is eps_t at
    t = num_warmup + (d + 1) * thinning - 1."""
    recorded = np.asarray(runs[name].stats["step_size"])
    expected = np.asarray(schedule(jnp.asarray(_kept_steps())))
    assert len(set(np.round(expected, 8))) == NUM_DRAWS  # the check can tell steps apart
    for chain in range(NUM_CHAINS):
        np.testing.assert_allclose(recorded[chain], expected, rtol=1e-6)
    # one thinning window off would show
    assert not np.allclose(recorded[0], np.asarray(schedule(jnp.asarray(_kept_steps() - 1))))
    assert not np.allclose(recorded[0], np.asarray(schedule(jnp.asarray(_kept_steps() + 1))))


def test_constant_step_size_and_no_stopped_chain(runs):
    ensemble = runs["pSGLD"]
    np.testing.assert_allclose(np.asarray(ensemble.stats["step_size"]), 1e-4, rtol=1e-6)
    assert not np.asarray(ensemble.stats["stopped"]).any()
    assert np.asarray(ensemble.chain_ok()).all()
    assert np.isfinite(flat_draws(ensemble)).all()


def test_hmc_stats(runs):
    stats = runs["HMC"].stats
    assert np.all(np.asarray(stats["n_steps"]) == 4)
    acceptance = np.asarray(stats["acceptance_rate"])
    assert np.all((acceptance >= 0) & (acceptance <= 1))
    assert np.asarray(stats["diverging"]).dtype == bool
    assert np.isfinite(np.asarray(stats["lp"])).all()


# -- reproducibility -----------------------------------------------------------------------------


def _assert_identical(a, b):
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for stat in a.stats:
        np.testing.assert_array_equal(np.asarray(a.stats[stat]), np.asarray(b.stats[stat]))


def test_same_key_gives_bit_identical_draws_whatever_the_chunking(runs, linear):
    """A second call with the same key, cut into chunks of 3 draws (the first run used the
    default, 1 draw per chunk here, and the last chunk of 3 is cut to 2), gives the same draws
    bit for bit: each step's key is fold_in(chain key, step index)."""
    reference = runs["SGLD"]
    again = sample(linear, SAMPLERS["SGLD"], thinning=THINNING, chunk_size=3)
    _assert_identical(reference, again)


def test_different_key_gives_different_draws(runs, linear):
    reference = flat_draws(runs["SGLD"])
    other = flat_draws(sample(linear, SAMPLERS["SGLD"], thinning=THINNING, key=jax.random.key(1)))
    assert other.shape == reference.shape
    assert not np.any(other == reference)
    # ... and different chains of one run differ
    assert not np.any(reference[0] == reference[1])


def test_legacy_uint32_key_is_accepted_and_equals_the_typed_key(runs, linear):
    raw = jax.random.key_data(jax.random.key(0))
    assert raw.dtype == jnp.uint32 and raw.shape == (2,)
    again = sample(linear, SAMPLERS["SGLD"], thinning=THINNING, key=raw)
    _assert_identical(runs["SGLD"], again)


# -- initialisation -------------------------------------------------------------------------------

TINY_STEP = bo.SGLD(1e-6, batch_size=10)  # one step moves by ~1.4e-3: draw 0 shows the start


def test_init_map_starts_near_the_mode(linear):
    mean, cov = lg.exact_posterior(linear)
    sd = np.sqrt(np.diag(cov))
    ensemble = sample(
        linear, TINY_STEP, init="map", map_steps=800, num_warmup=0, num_draws=1, num_chains=3
    )
    first = flat_draws(ensemble)[:, 0]
    # the exact posterior mean is the MAP; jitter 0.01 and one tiny step (posterior sd ~0.08)
    assert np.all(np.abs(first - mean) < 0.05), (first - mean) / sd
    assert not np.any(first[0] == first[1])  # jittered: chains do not coincide


def test_init_prior_draws_differ_per_chain(linear):
    ensemble = sample(linear, TINY_STEP, init="prior", num_warmup=0, num_draws=1, num_chains=3)
    first = flat_draws(ensemble)[:, 0]
    mean, _ = lg.exact_posterior(linear)
    # prior draws (scale 1) are far from the posterior (sd ~0.08) and from each other
    assert np.min(np.abs(first - mean).max(axis=1)) > 0.1
    assert np.min(np.abs(first[0] - first[1])) > 1e-3


def test_init_single_pytree_is_broadcast_to_every_chain(linear):
    mean, _ = lg.exact_posterior(linear)
    start = mean_position(linear, mean)
    ensemble = sample(linear, TINY_STEP, init=start, num_warmup=0, num_draws=1, num_chains=3)
    first = flat_draws(ensemble)[:, 0]
    assert np.all(np.abs(first - mean) < 0.01)
    assert not np.any(first[0] == first[1])  # same start, own noise per chain
    assert ensemble.config["init"] == "given"


def test_stacked_init_and_a_chain_that_blows_up(mlp):
    """Chains start where a stacked init puts them; chain 1 starts at a noise scale e^-8,
    where the curvature is ~1e8 and SGLD's iterate overflows. It stops with a RuntimeWarning,
    stats["stopped"] flags it from then on, its later draws are NaN, chain_ok() marks it, and
    the other chains go on with finite draws."""
    good = mlp.initial_position()
    bad = dict(good, likelihood={"scale": jnp.asarray(-8.0)})
    shifted = jax.tree.map(lambda x: x + 0.3, good)
    assert np.isfinite(float(mlp.logdensity(bad)))  # a legal start, just a stiff one
    init = jax.tree.map(lambda *xs: jnp.stack(xs), good, bad, shifted)
    with pytest.warns(RuntimeWarning, match=r"chains \[1\] stopped"):
        ensemble = sample(
            mlp, bo.SGLD(1e-4, batch_size=10), init=init, num_chains=3, num_warmup=0, num_draws=8
        )
    stopped = np.asarray(ensemble.stats["stopped"])
    np.testing.assert_array_equal(np.asarray(ensemble.chain_ok()), [True, False, True])
    assert not stopped[[0, 2]].any()
    assert stopped[1, -1]
    first_stop = int(np.argmax(stopped[1]))
    assert stopped[1, first_stop:].all()  # once stopped, stopped for good
    for leaf in jax.tree.leaves(ensemble.params):
        leaf = np.asarray(leaf)
        assert np.isnan(leaf[1, first_stop:]).all()
        assert np.isfinite(leaf[[0, 2]]).all()
    # chains 0 and 2 started at their own stacked points (a 1e-4 step moves by ~0.014)
    start = mlp.constrain(good)["net"].layers[0].weight
    draws = np.asarray(ensemble.params["net"].layers[0].weight)
    assert np.abs(draws[0, 0] - start).max() < 0.1
    assert np.abs(draws[2, 0] - (start + 0.3)).max() < 0.1


def test_malformed_init_is_a_clear_error(linear):
    sgld = SAMPLERS["SGLD"]
    with pytest.raises(ValueError, match="`init` must be 'prior', 'map' or a position pytree"):
        sample(linear, sgld, init="posterior")
    with pytest.raises(ValueError, match="structure of the posterior's positions"):
        sample(linear, sgld, init={"net": linear.initial_position()["net"]})
    wrong_chains = jax.tree.map(
        lambda x: jnp.stack([x] * (NUM_CHAINS + 1)), linear.initial_position()
    )
    with pytest.raises(ValueError, match=r"leading num_chains \(2\) axis"):
        sample(linear, sgld, init=wrong_chains)
    wrong_shape = linear.initial_position()
    wrong_shape["net"] = eqx.tree_at(lambda n: n.weight, wrong_shape["net"], jnp.zeros((3,)))
    with pytest.raises(ValueError, match="shapes of one position"):
        sample(linear, sgld, init=wrong_shape)


def test_non_finite_initial_log_density_names_the_leaves(linear, mlp):
    sgld = bo.SGLD(1e-3, batch_size=10)
    nan_bias = linear.initial_position()
    nan_bias["net"] = eqx.tree_at(lambda n: n.bias, nan_bias["net"], jnp.array([jnp.nan]))
    with pytest.raises(ValueError, match=r"non-finite values: \[\"\['net'\]\.bias\"\]"):
        sample(linear, sgld, init=nan_bias)
    # a huge (finite) log noise scale: scale = exp(1e4) = inf, log density -inf
    huge = dict(mlp.initial_position(), likelihood={"scale": jnp.asarray(1e4)})
    with pytest.raises(
        ValueError,
        match=r"log density -inf.*non-finite gradient: \[\"\['likelihood'\]\['scale'\]\"\]",
    ):
        sample(mlp, sgld, init=huge)
    # only one chain bad in a stacked init: the error names that chain
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), linear.initial_position(), nan_bias)
    with pytest.raises(ValueError, match=r"chain\(s\) \[1\]"):
        sample(linear, sgld, init=stacked)


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_draws": 0}, "`num_draws` must be an int >= 1"),
        ({"num_chains": 0}, "`num_chains` must be an int >= 1"),
        ({"num_warmup": -1}, "`num_warmup` must be an int >= 0"),
        ({"thinning": 0}, "`thinning` must be an int >= 1"),
        ({"chunk_size": 0}, "`chunk_size` must be an int >= 1"),
        ({"num_draws": 2.5}, "`num_draws`"),
        ({"num_chains": True}, "`num_chains`"),
    ],
)
def test_bad_counts(kwargs, match, linear):
    with pytest.raises(ValueError, match=match):
        sample(linear, SAMPLERS["SGLD"], **kwargs)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: bo.SGLD(0.0, 10), ValueError, "`step_size`"),
        (lambda: bo.SGLD(-1e-3, 10), ValueError, "`step_size`"),
        (lambda: bo.SGHMC(float("nan"), 10), ValueError, "`step_size`"),
        (lambda: bo.pSGLD(0.0, 10), ValueError, "`step_size`"),
        (lambda: bo.SGLD(1e-3, 0), ValueError, "`batch_size`"),
        (lambda: bo.SGHMC(1e-3, -5), ValueError, "`batch_size`"),
        (lambda: bo.pSGLD(1e-3, 2.0), ValueError, "`batch_size`"),
        (lambda: bo.SGLD(1e-3, 10, temperature=0.0), ValueError, "`temperature`"),
        (lambda: bo.SGHMC(1e-3, 10, friction=0.0), ValueError, "`friction`"),
        (lambda: bo.pSGLD(1e-3, 10, decay=1.0), ValueError, "`decay`"),
        (lambda: bo.SGLD(1e-3, 10, schedule=0.1), TypeError, "`schedule`"),
        (lambda: bo.NUTS(max_tree_depth=0), ValueError, "`max_tree_depth`"),
        (lambda: bo.NUTS(target_acceptance_rate=1.0), ValueError, "`target_acceptance_rate`"),
        (lambda: bo.HMC(num_integration_steps=0), ValueError, "`num_integration_steps`"),
        (lambda: bo.HMC(initial_step_size=-1.0), ValueError, "`initial_step_size`"),
        (lambda: bo.schedules.cyclical(1e-3, cycle_length=0), ValueError, "`cycle_length`"),
        (lambda: bo.schedules.polynomial(0.0), ValueError, "`step_size`"),
    ],
)
def test_bad_sampler_settings(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("name", SG_MCMC)
def test_batch_size_larger_than_the_data_fails_at_sample_time(name, linear):
    sampler = type(SAMPLERS[name])(1e-3, batch_size=41)  # N = 40: a valid config on its own
    with pytest.raises(ValueError, match=r"`batch_size` \(41\) must not exceed .* N=40"):
        sample(linear, sampler)


def test_sgmcmc_needs_a_network_posterior(eight_schools):
    with pytest.raises(TypeError, match="needs a network bo.Posterior"):
        sample(eight_schools, bo.SGLD(1e-3, 10))


@pytest.mark.parametrize("bad_key", [0, np.uint32(7), "key", None])
def test_key_that_is_not_a_prng_key(bad_key, linear):
    with pytest.raises(TypeError, match="`key` must be a JAX PRNG key"):
        sample(linear, SAMPLERS["SGLD"], key=bad_key)


def test_a_batch_of_keys_is_not_a_key(linear):
    with pytest.raises(ValueError, match="single PRNG key"):
        sample(linear, SAMPLERS["SGLD"], key=jax.random.split(jax.random.key(0), 2))


def test_posterior_and_sampler_types(linear):
    with pytest.raises(TypeError, match="`posterior` must be a bayesover posterior"):
        bo.sample(object(), SAMPLERS["SGLD"], key=jax.random.key(0))
    with pytest.raises(TypeError, match="`sampler` must be a bayesover sampler"):
        bo.sample(linear, "nuts", key=jax.random.key(0))


# -- NUTS on a NumPyro funnel -------------------------------------------------------------------


def test_nuts_counts_divergences_and_never_raises(runs):
    """Centred eight schools, 40 warm-up steps, target acceptance 0.6: NUTS diverges in the
    funnel (~8 % of draws here), completes, and records each divergence as a bool stat."""
    ensemble = runs["NUTS"]
    diverging = np.asarray(ensemble.stats["diverging"])
    assert diverging.dtype == bool and diverging.shape == (NUM_CHAINS, NUTS_DRAWS)
    count = int(diverging.sum())
    print(f"\ncentred eight schools, NUTS: {count} divergent draws of {diverging.size}")
    assert count > 0, "expected divergences in the centred funnel at target acceptance 0.6"
    assert np.isfinite(np.asarray(ensemble.params["tau"])).all()  # divergent draws still kept
    depth = np.asarray(ensemble.stats["tree_depth"])
    assert np.all((depth >= 0) & (depth <= 5))  # max_tree_depth=5
    n_steps = np.asarray(ensemble.stats["n_steps"])
    assert np.all(n_steps >= 1) and np.all(n_steps <= 2**5)
    assert np.isfinite(np.asarray(ensemble.stats["lp"])).all()


def test_numpyro_draws_are_constrained_named_sites(runs):
    params = runs["NUTS"].params
    assert set(params) == {"mu", "tau", "theta", "log_tau"}  # latent + deterministic sites
    tau = np.asarray(params["tau"])
    assert tau.shape == (NUM_CHAINS, NUTS_DRAWS) and np.all(tau > 0)
    assert np.asarray(params["theta"]).shape == (NUM_CHAINS, NUTS_DRAWS, 8)
    np.testing.assert_allclose(np.asarray(params["log_tau"]), np.log(tau), rtol=1e-4, atol=1e-5)
    assert len(np.unique(np.asarray(params["mu"]))) > 1  # the chains move


# -- slow: NUTS reproducibility --------------------------------------------------------------------


@pytest.mark.slow
def test_nuts_same_key_and_chunking_give_identical_draws(linear):
    nuts = bo.NUTS(max_tree_depth=4)
    a = sample(linear, nuts, num_warmup=30, num_draws=6)
    b = sample(linear, nuts, num_warmup=30, num_draws=6)
    c = sample(linear, nuts, num_warmup=30, num_draws=6, chunk_size=6)
    _assert_identical(a, b)
    _assert_identical(a, c)
    d = sample(linear, nuts, num_warmup=30, num_draws=6, key=jax.random.key(1))
    assert not np.array_equal(flat_draws(a), flat_draws(d))


def test_samplers_declare_what_the_driver_records():
    # the driver reads these hooks instead of a sampler's fields
    assert bo.NUTS(max_tree_depth=4).recorded_settings() == {"max_tree_depth": 4}
    assert bo.HMC().recorded_settings() == {} and bo.SGLD(1e-3, 10).recorded_settings() == {}
    assert bo.NUTS().chain_stopped(None) is None and bo.HMC().chain_stopped(None) is None
    stats = SGMCMCStats(jnp.float32(1e-3), jnp.float32(0.0), jnp.asarray(True))
    for sampler in (bo.SGLD(1e-3, 10), bo.SGHMC(1e-3, 10), bo.pSGLD(1e-3, 10)):
        assert bool(sampler.chain_stopped(stats))
