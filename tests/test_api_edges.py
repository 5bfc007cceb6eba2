"""API edges of issue 11: positions from networks, one-point predictions, DataTree files given to
`Ensemble.load`, atomic `Ensemble.save`, and one keyword-only `key` convention."""

import errno
import inspect
import os
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import bayesover as bo

N, D, H = 20, 3, 5
POSITION_HINT = r"\{'net', 'prior', 'likelihood'\}"


def make_net(key=1, width=H, depth=1):
    return eqx.nn.MLP(D, 1, width, depth, activation=jnp.tanh, key=jax.random.key(key))


@pytest.fixture(scope="module")
def data():
    x = jax.random.normal(jax.random.key(2), (N, D))
    return bo.Data(x, jnp.sin(x[:, 0]) + 0.1 * x[:, 1])


@pytest.fixture(scope="module")
def net():
    return make_net()


@pytest.fixture(scope="module")
def posterior(net, data):
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(0.1))
    return bo.Posterior(model, data)


@pytest.fixture(scope="module")
def hier_posterior(net, data):
    model = bo.Model(net, bo.priors.Hierarchical(), bo.likelihoods.Gaussian(scale=None))
    return bo.Posterior(model, data)


def weights(module):
    return jax.tree.leaves(eqx.filter(module, eqx.is_inexact_array))


def assert_same_weights(a, b, **tolerance):
    wa, wb = weights(a), weights(b)
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb, strict=True):
        assert x.shape == y.shape
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)


# -- 1. positions: a clear error for bare parameters, and `position(net)` ----------------------
def _entry_points(posterior, data):
    x, y = data.inputs[0], data.targets[0]
    return {
        "logdensity": lambda p: posterior.logdensity(p),
        "logdensity_estimate": lambda p: posterior.logdensity_estimate(p, data),
        "pointwise_loglikelihood": lambda p: posterior.pointwise_loglikelihood(p),
        "loglikelihood": lambda p: posterior.loglikelihood(p, x, y),
        "constrain": lambda p: posterior.constrain(p),
        "module": lambda p: posterior.module(p),
        "log_prior": lambda p: posterior.log_prior(p),
    }


@pytest.mark.parametrize(
    "method",
    [
        "logdensity",
        "logdensity_estimate",
        "pointwise_loglikelihood",
        "loglikelihood",
        "constrain",
        "module",
        "log_prior",
    ],
)
@pytest.mark.parametrize("kind", ["module", "partition", "net_only", "list"])
def test_bare_parameters_name_the_position_structure(posterior, data, net, method, kind):
    bad = {
        "module": net,
        "partition": eqx.partition(net, eqx.is_inexact_array)[0],
        "net_only": {"net": eqx.partition(net, eqx.is_inexact_array)[0]},
        "list": weights(net),
    }[kind]
    call = _entry_points(posterior, data)[method]
    with pytest.raises(TypeError, match=POSITION_HINT) as info:
        call(bad)
    message = str(info.value)
    assert f"Posterior.{method}" in message  # names the method that was called
    assert "position(net)" in message  # and the helper that builds a position
    assert "not subscriptable" not in message


def test_position_check_under_jit_vmap_and_grad(posterior, net):
    position = posterior.position(net)
    eager = float(posterior.logdensity(position))
    assert float(jax.jit(lambda p: posterior.logdensity(p))(position)) == pytest.approx(
        eager, rel=1e-5
    )
    stacked = jax.tree.map(lambda v: jnp.stack([v, v]), position)
    batched = jax.vmap(lambda p: posterior.logdensity(p))(stacked)
    np.testing.assert_allclose(np.asarray(batched), eager, rtol=1e-5)
    grad = jax.grad(lambda p: posterior.logdensity(p))(position)
    assert jax.tree.structure(grad) == jax.tree.structure(position)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad))
    # the check fires at trace time too, with the same message
    bare = eqx.partition(net, eqx.is_inexact_array)[0]
    with pytest.raises(TypeError, match=POSITION_HINT):
        jax.jit(lambda p: posterior.logdensity(p))(bare)
    with pytest.raises(TypeError, match=POSITION_HINT):
        jax.grad(lambda p: posterior.logdensity(p))(bare)


def test_position_check_costs_under_a_few_microseconds(posterior, net):
    import timeit

    from bayesover.model._model import check_position

    position = posterior.position(net)
    seconds = min(timeit.repeat(lambda: check_position(position, "x"), number=2000, repeat=5))
    assert seconds / 2000 < 10e-6  # an eager logdensity call takes milliseconds


def test_position_round_trips_the_network(posterior, net):
    position = posterior.position(net)
    assert set(position) == {"net", "prior", "likelihood"}
    assert_same_weights(posterior.module(position), net, rtol=0, atol=0)
    # the model's own network gives exactly initial_position()
    start = posterior.initial_position()
    for a, b in zip(jax.tree.leaves(position), jax.tree.leaves(start), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.isfinite(float(posterior.logdensity(position)))
    # other weights of the same architecture (a network trained elsewhere), and the
    # parameter partition, are accepted too; the model's helper is the same
    other = make_net(key=7)
    for given in (other, eqx.partition(other, eqx.is_inexact_array)[0]):
        rebuilt = posterior.module(posterior.position(given))
        assert_same_weights(rebuilt, other, rtol=0, atol=0)
        x = jnp.ones((D,))
        np.testing.assert_allclose(np.asarray(rebuilt(x)), np.asarray(other(x)), rtol=1e-6)
    model_position = posterior.model.position(other)
    assert_same_weights(posterior.model.module(model_position["net"]), other, rtol=0, atol=0)
    assert float(posterior.logdensity(posterior.position(other))) != pytest.approx(
        float(posterior.logdensity(position))
    )


def test_position_fills_hyperparameters_at_the_defaults(hier_posterior, net):
    position = hier_posterior.position(make_net(key=7))
    start = hier_posterior.initial_position()
    assert jax.tree.structure(position) == jax.tree.structure(start)
    for part in ("prior", "likelihood"):
        for a, b in zip(jax.tree.leaves(position[part]), jax.tree.leaves(start[part]), strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b))
    assert set(position["prior"]) == {i.path for i in hier_posterior.model.infos}
    assert set(position["likelihood"]) == {"scale"}
    assert np.isfinite(float(hier_posterior.logdensity(position)))


def test_position_inverts_a_box_prior(data):
    net = make_net(key=3)
    model = bo.Model(net, bo.priors.Uniform(2.0), bo.likelihoods.Gaussian(0.1))
    posterior = bo.Posterior(model, data)
    position = posterior.position(net)
    # the "net" part is unconstrained (not the weights themselves) ...
    w = np.asarray(weights(net)[0])
    u = np.asarray(jax.tree.leaves(position["net"])[0])
    assert not np.allclose(u, w)
    # ... and constrain maps it back onto the weights
    assert_same_weights(posterior.module(position), net, rtol=1e-5, atol=1e-6)
    assert np.isfinite(float(posterior.logdensity(position)))
    params, static = eqx.partition(net, eqx.is_inexact_array)
    outside = eqx.combine(jax.tree.map(lambda v: v * 0 + 3.0, params), static)  # not in (-2, 2)
    with pytest.raises(ValueError, match=r"`net` parameter layers\[0\]\.weight lies outside"):
        posterior.position(outside)


def test_position_rejects_wrong_shapes_and_structures(posterior):
    with pytest.raises(ValueError, match=r"layers\[0\]\.weight has shape \(6, 3\).*\(5, 3\)"):
        posterior.position(make_net(width=6))
    with pytest.raises(TypeError, match="structure of the model's network"):
        posterior.position(make_net(depth=2))
    with pytest.raises(TypeError, match="already a position dict"):
        posterior.position(posterior.initial_position())
    with pytest.raises(TypeError, match="equinox Module"):
        posterior.position(weights(make_net()))


# -- 2. predictions at one point ---------------------------------------------------------------
@pytest.fixture(scope="module")
def ensemble(posterior):
    draws = [posterior.constrain(posterior.initial_position(jax.random.key(k))) for k in range(4)]
    params = jax.tree.map(lambda *xs: jnp.stack(xs).reshape(2, 2, *xs[0].shape), *draws)
    config = {"sampler_name": "prior"}
    return bo.Ensemble(params, None, config, posterior.model, posterior.data.target_shape)


def test_predict_at_one_point_says_to_pass_a_batch_of_one(ensemble, data):
    x = data.inputs[0]
    with pytest.raises(ValueError, match=r"pass `x\[None\]` \(a batch of one\)") as info:
        ensemble.predict(x)
    assert "(3,)" in str(info.value)
    with pytest.raises(ValueError, match=r"x\[None\]"):
        ensemble.predict(np.asarray(x).tolist())  # a plain list of one input
    one = ensemble.predict(x[None])
    np.testing.assert_allclose(
        np.asarray(one.mean), np.asarray(ensemble.predict(data.inputs).mean)[:1], rtol=1e-5
    )
    # a batch with the wrong feature shape keeps the predictive's own message
    with pytest.raises(ValueError, match="feature shape") as info:
        ensemble.predict(jnp.ones((4, D + 1)))
    assert "x[None]" not in str(info.value)


# -- 3. DataTree files, and an atomic save ----------------------------------------------------
def test_load_reads_the_ensemble_group_of_a_datatree_file(tmp_path, ensemble, posterior):
    path = tmp_path / "run.nc"
    bo.save_datatree(bo.to_datatree(ensemble, posterior, weights="none"), path)
    loaded = bo.Ensemble.load(path, like=posterior)
    expected = bo.from_datatree(bo.load_datatree(path), like=posterior)
    for a, b, c in zip(
        jax.tree.leaves(loaded.params),
        jax.tree.leaves(expected.params),
        jax.tree.leaves(ensemble.params),
        strict=True,
    ):
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert np.array_equal(np.asarray(a), np.asarray(c))
    assert loaded.config == ensemble.config and loaded.model is posterior.model
    assert loaded.target_shape == ensemble.target_shape


def test_load_of_a_datatree_without_ensemble_points_to_load_datatree(tmp_path):
    path = tmp_path / "tree.nc"
    tree = xr.DataTree.from_dict(
        {"posterior": xr.Dataset({"mu": (("chain", "draw"), np.zeros((2, 3)))})}
    )
    bo.save_datatree(tree, path)
    with pytest.raises(ValueError, match=r"no `ensemble` group.*bo\.load_datatree"):
        bo.Ensemble.load(path)


def test_save_goes_through_atomic_write(tmp_path, ensemble, monkeypatch):
    import bayesover._atomic as atomic

    calls = []
    real = atomic.atomic_write

    def spy(path, write):
        calls.append(path)
        return real(path, write)

    monkeypatch.setattr(atomic, "atomic_write", spy)
    path = tmp_path / "e.nc"
    ensemble.save(path)
    assert [os.fspath(p) for p in calls] == [os.fspath(path)]
    assert sorted(os.listdir(tmp_path)) == ["e.nc"]
    with pytest.raises(TypeError, match="`path`"):
        ensemble.save(3)


def test_disk_full_during_save_keeps_the_previous_file(tmp_path, ensemble, monkeypatch):
    path = tmp_path / "e.nc"
    ensemble.save(path)
    before = path.read_bytes()
    written = []

    def disk_full(target, *args, **kwargs):
        with open(target, "wb") as f:  # a partial file, then the disk fills up
            f.write(b"\x89HDF\r\n\x1a\n half of a file")
        written.append(target)
        raise OSError(errno.ENOSPC, "No space left on device")

    # the file is serialised in memory and written by Python: the disk fails at that write
    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError, match="No space left on device") as info:
        ensemble.subset(chains=[0]).save(path)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert str(path) in str(info.value)
    assert written and os.fspath(written[0]) != os.fspath(path)  # the writer got a temp file
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["e.nc"]  # the partial temp file is gone
    loaded = bo.Ensemble.load(path, like=ensemble.model)
    assert loaded.num_chains == ensemble.num_chains
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(ensemble.params), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


# -- 4. one key convention -----------------------------------------------------------------------
def test_every_public_function_takes_key_by_keyword():
    for function in (bo.sample, bo.deep_ensemble, bo.map_estimate, bo.distill):
        parameters = inspect.signature(function).parameters
        assert parameters["key"].kind is inspect.Parameter.KEYWORD_ONLY, function.__name__
    batch_size = inspect.signature(bo.deep_ensemble).parameters["batch_size"]
    assert batch_size.kind is inspect.Parameter.KEYWORD_ONLY


NUM_STEPS = 5


def test_deep_ensemble_key_by_keyword_and_deprecated_positions(posterior):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the keyword form does not warn
        new = bo.deep_ensemble(posterior, 2, None, NUM_STEPS, key=jax.random.key(0), batch_size=5)
    with pytest.warns(DeprecationWarning, match="key=") as record:
        old = bo.deep_ensemble(posterior, 2, None, NUM_STEPS, jax.random.key(0), 5)
    assert record[0].filename == __file__  # points at the caller
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(old.params), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.array_equal(np.asarray(new.stats["lp"]), np.asarray(old.stats["lp"]))
    assert new.config == old.config and new.config["batch_size"] == 5
    # the key alone positionally (full batch), with batch_size by keyword
    with pytest.warns(DeprecationWarning, match="deprecated"):
        full = bo.deep_ensemble(posterior, 2, None, NUM_STEPS, jax.random.key(0))
    assert full.config["batch_size"] is None


def test_deep_ensemble_positional_errors(posterior):
    key = jax.random.key(0)
    with pytest.raises(TypeError, match="takes 4 positional arguments .* but 7 were given"):
        bo.deep_ensemble(posterior, 2, None, NUM_STEPS, key, 5, None)
    with pytest.raises(TypeError, match="`key` both positionally and as `key=`"):
        bo.deep_ensemble(posterior, 2, None, NUM_STEPS, key, key=key)
    with pytest.raises(TypeError, match="`batch_size` both"):
        bo.deep_ensemble(posterior, 2, None, NUM_STEPS, key, 5, batch_size=5)
    with pytest.raises(TypeError, match="needs `key=`"):
        bo.deep_ensemble(posterior, 2, None, NUM_STEPS)
