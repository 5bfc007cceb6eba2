"""`bo.deep_ensemble`: K MAP networks trained as one vectorised program.

Two moons (100 training points, 500 test points), an MLP 2 -> 16 -> 2 with a fan-in Normal prior
of gain 2, four members, 400 Adam steps on minibatches of 50; one ensemble is built per module.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bayesover as bo
from bayesover.inference._deep_ensemble import _DEFAULT_OPTIMIZER, _train_members_traced

NUM_MEMBERS, NUM_STEPS, BATCH = 4, 400, 50


def two_moons_posterior():
    train = bo.data.two_moons(jax.random.key(0), 100, noise_scale=0.2)
    net = eqx.nn.MLP(2, 2, 16, 1, activation=jnp.tanh, key=jax.random.key(0))
    model = bo.Model(net, bo.priors.FanInNormal(2.0), bo.likelihoods.Categorical())
    return bo.Posterior(model, train)


@pytest.fixture(scope="module")
def posterior():
    return two_moons_posterior()


@pytest.fixture(scope="module")
def test_data():
    return bo.data.two_moons(jax.random.key(1), 500, noise_scale=0.2)


@pytest.fixture(scope="module")
def ensemble(posterior):
    # optimizer=None: the module's shared Adam instance, so test_distill reuses this compile
    return bo.deep_ensemble(
        posterior, NUM_MEMBERS, None, NUM_STEPS, key=jax.random.key(0), batch_size=BATCH
    )


def member_keys(key, num_members):
    """The documented key derivation: (start key, batch-order key) per member."""
    train_key, _ = jax.random.split(key)
    keys = jax.random.split(train_key, num_members)
    return [(jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)) for k in keys]


@eqx.filter_jit
def start_log_densities(posterior, keys):
    return jax.vmap(lambda k: posterior.logdensity(posterior.initial_position(k)))(keys)


@eqx.filter_jit
def member_nlls(ensemble, data):
    """Test NLL of every member alone: -(1/n) sum_i log p(y_i | x_i, theta_m)."""
    model = ensemble.model

    def one(member):
        outputs = jax.vmap(lambda x: model.apply(member["net"], x))(data.inputs)
        lp = jax.vmap(lambda o, y: model.likelihood.log_prob(o, y, member["likelihood"]))(
            outputs, data.targets
        )
        return -jnp.mean(lp)

    return jax.vmap(one)(ensemble.flat_params())


def test_shapes_stats_and_config(ensemble, posterior):
    template = posterior.constrain(posterior.initial_position())
    for leaf, ref in zip(jax.tree.leaves(ensemble.params), jax.tree.leaves(template), strict=True):
        assert leaf.shape == (NUM_MEMBERS, 1, *ref.shape)
    assert ensemble.num_chains == NUM_MEMBERS and ensemble.num_draws == 1
    assert set(ensemble.stats) == {"lp"} and ensemble.stats["lp"].shape == (NUM_MEMBERS, 1)
    config = ensemble.config
    assert config["sampler_name"] == "deep_ensemble"
    assert config["num_steps"] == NUM_STEPS and config["batch_size"] == BATCH
    assert config["optimizer"].startswith("GradientTransformation")
    assert config["key"] == (0, 0)
    assert ensemble.model is posterior.model and ensemble.target_shape == ()
    # one chain per member: joins MCMC-shaped ensembles along chains
    assert bo.Ensemble.concat([ensemble, ensemble]).num_chains == 2 * NUM_MEMBERS


def test_members_differ_and_improve_on_their_prior_start(ensemble, posterior):
    weights = np.asarray(ensemble.params["net"].layers[0].weight[:, 0])
    for i in range(NUM_MEMBERS):
        for j in range(i):
            assert np.max(np.abs(weights[i] - weights[j])) > 0.1
    keys = jnp.stack([k for k, _ in member_keys(jax.random.key(0), NUM_MEMBERS)])
    lp_start = np.asarray(start_log_densities(posterior, keys))
    lp_end = np.asarray(ensemble.stats["lp"][:, 0])
    assert np.all(np.isfinite(lp_end))
    assert np.all(lp_end > lp_start + 50.0), (lp_start, lp_end)


def test_member_equals_map_estimate_from_the_same_start_and_batches(ensemble, posterior):
    start_key, data_key = member_keys(jax.random.key(0), NUM_MEMBERS)[2]
    alone = bo.map_estimate(
        posterior,
        key=data_key,
        optimizer=_DEFAULT_OPTIMIZER,
        num_steps=NUM_STEPS,
        batch_size=BATCH,
        init=posterior.initial_position(start_key),
    )
    member = jax.tree.map(lambda x: x[2, 0], ensemble.params)
    for a, b in zip(
        jax.tree.leaves(posterior.constrain(alone.position)), jax.tree.leaves(member), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-3)
    lp = float(posterior.logdensity(alone.position))
    assert lp == pytest.approx(float(ensemble.stats["lp"][2, 0]), abs=1e-2)


def test_second_call_reuses_the_compiled_program(ensemble, posterior):
    before = eqx.debug.get_num_traces(_train_members_traced)
    other = bo.deep_ensemble(
        posterior, NUM_MEMBERS, None, NUM_STEPS, key=jax.random.key(1), batch_size=BATCH
    )
    assert eqx.debug.get_num_traces(_train_members_traced) == before
    assert not np.allclose(other.stats["lp"], ensemble.stats["lp"])
    # a rebuilt posterior of the same shapes is the same program too
    bo.deep_ensemble(
        two_moons_posterior(),
        NUM_MEMBERS,
        None,
        NUM_STEPS,
        key=jax.random.key(2),
        batch_size=BATCH,
    )
    assert eqx.debug.get_num_traces(_train_members_traced) == before


def test_ensemble_nll_is_no_worse_than_its_members(ensemble, test_data):
    members = np.asarray(member_nlls(ensemble, test_data))
    mixture = -float(ensemble.predict(test_data.inputs).log_prob(test_data.targets).mean())
    # Jensen: the mixture's log predictive is at least the members' average, point by point
    assert mixture <= np.mean(members) + 1e-5
    assert mixture <= min(members) + 0.01, (mixture, members)
    assert mixture < 0.4  # two moons with noise 0.2 is mostly separable


def test_then_sample_continues_each_member_as_a_chain(posterior):
    sgld = bo.SGLD(step_size=1e-4, batch_size=BATCH)
    result = bo.deep_ensemble(
        posterior,
        NUM_MEMBERS,
        None,
        NUM_STEPS,
        key=jax.random.key(0),
        batch_size=BATCH,
        then_sample=sgld,
        num_warmup=0,
        num_draws=5,
    )
    assert result.num_chains == NUM_MEMBERS and result.num_draws == 5
    config = result.config
    assert config["sampler_name"] == "deep_ensemble+SGLD" and config["init"] == "deep_ensemble"
    assert config["map_num_steps"] == NUM_STEPS and config["num_draws"] == 5
    assert result.model is posterior.model
    # the chains start at the modes (same key: the same members as the fixture), and small
    # SGLD steps keep their (minibatch estimated) log density near the MAP values
    map_only = bo.deep_ensemble(
        posterior, NUM_MEMBERS, None, NUM_STEPS, key=jax.random.key(0), batch_size=BATCH
    )
    lp_sgld = np.asarray(result.stats["lp"]).mean(axis=1)
    np.testing.assert_allclose(lp_sgld, np.asarray(map_only.stats["lp"][:, 0]), atol=15.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_members": 0}, ValueError, "num_members"),
        ({"num_members": 2.0}, ValueError, "num_members"),
        ({"num_steps": 0}, ValueError, "num_steps"),
        ({"batch_size": 101}, ValueError, "batch_size"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 10.0}, TypeError, "batch_size"),
        ({"optimizer": "adam"}, TypeError, "optimizer"),
        ({"key": 0}, TypeError, "key"),
        ({"then_sample": "SGLD"}, TypeError, "then_sample"),
        ({"then_sample": bo.SGLD(1e-4, 50), "num_draws": 0}, ValueError, "num_draws"),
    ],
)
def test_bad_input(kwargs, error, match, posterior):
    arguments = {
        "num_members": 2,
        "optimizer": None,
        "num_steps": 5,
        "key": jax.random.key(0),
        "batch_size": None,
        **kwargs,
    }
    with pytest.raises(error, match=match):
        bo.deep_ensemble(posterior, **arguments)


def test_not_a_posterior():
    with pytest.raises(TypeError, match="posterior"):
        bo.deep_ensemble("posterior", 2, optax.adam(1e-2), 5, key=jax.random.key(0))
