"""`bo.Ensemble`: construction, sizes, subsets, concatenation and the netCDF round trip.

Ensembles are built directly from stacked perturbed weights (no sampling): tiny MLPs (width 4) on 20
points, so everything here runs in seconds.
"""

import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayesover as bo

CONFIG = {
    "sampler": "NUTS(step_size=0.1)",
    "sampler_name": "NUTS",
    "num_chains": 2,
    "num_draws": 5,
    "thinning": 1,
    "init": "prior",
    "key": (0, 7),
    "temperature": 1.0,
}


def make_posterior(width, prior=None, seed=0):
    x = jax.random.normal(jax.random.key(seed), (20, 2))
    y = jnp.sin(x[:, 0]) + 0.1 * x[:, 1]
    net = eqx.nn.MLP(2, 1, width, 1, activation=jnp.tanh, key=jax.random.key(seed + 1))
    prior = bo.priors.FanInNormal(1.0) if prior is None else prior
    model = bo.Model(net, prior, bo.likelihoods.Gaussian(scale=None))
    return bo.Posterior(model, bo.Data(x, y))


def stacked_draws(posterior, num_chains, num_draws, seed=0):
    """Distinct constrained draws with leading (chain, draw) axes, without sampling: the
    module's weights plus Normal noise, and its positive scales times log-normal noise."""
    template = posterior.constrain(posterior.initial_position())
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        noise = rng.normal(size=(num_chains, num_draws, *leaf.shape))
        if path[0].key == "net":
            value = np.asarray(leaf) + 0.7 * noise
        else:  # prior and likelihood scales: positive
            value = np.asarray(leaf) * np.exp(0.3 * noise)
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, template)


def make_ensemble(posterior, num_chains, num_draws, stats=None, seed=0, config=CONFIG):
    return bo.Ensemble(
        stacked_draws(posterior, num_chains, num_draws, seed),
        stats,
        config,
        model=posterior.model,
        target_shape=posterior.data.target_shape,
    )


def default_stats(num_chains, num_draws, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "lp": jnp.asarray(rng.normal(size=(num_chains, num_draws)), jnp.float32),
        "diverging": jnp.asarray(rng.random((num_chains, num_draws)) < 0.3),
        "tree_depth": jnp.asarray(rng.integers(1, 5, (num_chains, num_draws)), jnp.int32),
    }


def leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y)


@pytest.fixture(scope="module")
def posterior():
    return make_posterior(4)


@pytest.fixture(scope="module")
def hier_posterior():
    # a Hierarchical prior gives a non-empty `prior` entry (nested dicts keyed by leaf paths)
    return make_posterior(4, prior=bo.priors.Hierarchical())


@pytest.fixture(scope="module")
def wide_posterior():
    return make_posterior(8)


@pytest.fixture(scope="module")
def ensemble(posterior):
    return make_ensemble(posterior, 2, 5, default_stats(2, 5))


# -- construction -----------------------------------------------------------------------------


def test_construction_rejects_empty_params():
    with pytest.raises(ValueError, match="empty"):
        bo.Ensemble({}, None, {})


def test_construction_rejects_mismatched_leading_axes():
    with pytest.raises(ValueError, match="leading"):
        bo.Ensemble({"a": jnp.zeros((2, 3)), "b": jnp.zeros((2, 4))}, None, {})
    with pytest.raises(ValueError, match="leading"):
        bo.Ensemble({"a": jnp.zeros((2, 3)), "b": jnp.zeros((3, 3, 2))}, None, {})
    with pytest.raises(ValueError, match="leading"):
        bo.Ensemble({"a": jnp.zeros((3,))}, None, {})  # no draw axis


def test_construction_rejects_zero_members():
    with pytest.raises(ValueError, match="at least one member"):
        bo.Ensemble({"a": jnp.zeros((0, 3))}, None, {})
    with pytest.raises(ValueError, match="at least one member"):
        bo.Ensemble({"a": jnp.zeros((2, 0, 4))}, None, {})


def test_sizes_and_flat_params(ensemble):
    assert ensemble.num_chains == 2
    assert ensemble.num_draws == 5
    assert ensemble.num_members == 10
    assert ensemble.config == CONFIG
    assert ensemble.target_shape == ()
    flat = ensemble.flat_params()
    for full, merged in zip(jax.tree.leaves(ensemble.params), jax.tree.leaves(flat), strict=True):
        assert merged.shape == (10, *full.shape[2:])
        # member index = chain * num_draws + draw
        assert np.array_equal(merged[7], full[1, 2])
        assert np.array_equal(merged[3], full[0, 3])


def test_chain_ok_without_stopped(ensemble):
    assert np.array_equal(ensemble.chain_ok(), [True, True])


# -- subsets ----------------------------------------------------------------------------------


def test_subset_chains_and_draws(ensemble):
    sub = ensemble.subset(chains=[1], draws=slice(1, 4))
    assert (sub.num_chains, sub.num_draws) == (1, 3)
    for full, part in zip(
        jax.tree.leaves(ensemble.params), jax.tree.leaves(sub.params), strict=True
    ):
        assert np.array_equal(part, full[1:2, 1:4])
    for name, value in ensemble.stats.items():
        assert np.array_equal(sub.stats[name], value[1:2, 1:4])
    assert sub.config == ensemble.config
    assert sub.model is ensemble.model and sub.target_shape == ensemble.target_shape

    by_mask = ensemble.subset(draws=np.array([True, False, True, False, False]))
    assert (by_mask.num_chains, by_mask.num_draws) == (2, 2)
    for full, part in zip(
        jax.tree.leaves(ensemble.params), jax.tree.leaves(by_mask.params), strict=True
    ):
        assert np.array_equal(part, full[:, [0, 2]])

    only_chain = ensemble.subset(chains=np.array([0]))
    assert (only_chain.num_chains, only_chain.num_draws) == (1, 5)


def test_thin_keeps_last_draw(ensemble):
    leaf = jax.tree.leaves(ensemble.params)[0]
    for thinning, kept in [(1, [0, 1, 2, 3, 4]), (2, [0, 2, 4]), (3, [1, 4]), (5, [4]), (9, [4])]:
        thinned = ensemble.thin(thinning)
        assert thinned.num_draws == len(kept)
        assert np.array_equal(jax.tree.leaves(thinned.params)[0], leaf[:, kept])
        assert np.array_equal(thinned.stats["lp"], ensemble.stats["lp"][:, kept])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="thinning"):
            ensemble.thin(bad)


def test_healthy_drops_stopped_chains(posterior):
    stopped = np.zeros((3, 4), bool)
    stopped[1, 2:] = True  # chain 1 stopped half-way
    stats = {"stopped": jnp.asarray(stopped), "lp": jnp.arange(12.0).reshape(3, 4)}
    e = make_ensemble(posterior, 3, 4, stats)
    assert np.array_equal(e.chain_ok(), [True, False, True])
    h = e.healthy()
    assert h.num_chains == 2 and h.num_draws == 4
    for full, part in zip(jax.tree.leaves(e.params), jax.tree.leaves(h.params), strict=True):
        assert np.array_equal(part, full[np.array([0, 2])])
    assert np.array_equal(h.stats["lp"], stats["lp"][np.array([0, 2])])
    assert not np.any(h.stats["stopped"])

    all_stopped = make_ensemble(posterior, 3, 4, {"stopped": jnp.ones((3, 4), bool)})
    with pytest.raises(ValueError, match="stopped"):
        all_stopped.healthy()


# -- concatenation ----------------------------------------------------------------------------


def test_concat_along_chains(posterior):
    a = make_ensemble(posterior, 2, 5, default_stats(2, 5, seed=1), seed=1)
    b_stats = {"lp": jnp.full((3, 5), 7.0)}  # `diverging` and `tree_depth` absent
    b = make_ensemble(posterior, 3, 5, b_stats, seed=2)
    joined = bo.Ensemble.concat([a, b])
    assert (joined.num_chains, joined.num_draws) == (5, 5)
    for la, lb, lj in zip(
        jax.tree.leaves(a.params),
        jax.tree.leaves(b.params),
        jax.tree.leaves(joined.params),
        strict=True,
    ):
        assert np.array_equal(lj[:2], la) and np.array_equal(lj[2:], lb)
    assert set(joined.stats) == {"lp"}  # only the common statistics
    assert np.array_equal(joined.stats["lp"], np.concatenate([a.stats["lp"], b_stats["lp"]]))
    assert joined.model is a.model and joined.target_shape == ()
    assert joined.config["concat_axis"] == "chain"
    assert joined.config["sources"] == ("NUTS", "NUTS")
    # the joined ensemble predicts like any other
    assert joined.predict(posterior.data.inputs[:3]).mean.shape == (3,)


def test_concat_along_draws(posterior):
    a = make_ensemble(posterior, 2, 5, default_stats(2, 5, seed=1), seed=1)
    b = make_ensemble(posterior, 2, 3, default_stats(2, 3, seed=2), seed=2)
    joined = bo.Ensemble.concat([a, b], axis="draw")
    assert (joined.num_chains, joined.num_draws) == (2, 8)
    for la, lb, lj in zip(
        jax.tree.leaves(a.params),
        jax.tree.leaves(b.params),
        jax.tree.leaves(joined.params),
        strict=True,
    ):
        assert np.array_equal(lj[:, :5], la) and np.array_equal(lj[:, 5:], lb)
    assert set(joined.stats) == {"lp", "diverging", "tree_depth"}
    for name in joined.stats:
        expected = np.concatenate([a.stats[name], b.stats[name]], axis=1)
        assert np.array_equal(joined.stats[name], expected)
        assert joined.stats[name].dtype == a.stats[name].dtype
    assert joined.config["concat_axis"] == "draw"

    c = make_ensemble(posterior, 3, 5, seed=3)
    with pytest.raises(ValueError, match="number of chains"):
        bo.Ensemble.concat([a, c], axis="draw")
    with pytest.raises(ValueError, match="axis"):
        bo.Ensemble.concat([a, b], axis="member")


def test_concat_single_ensemble_is_a_copy(ensemble):
    joined = bo.Ensemble.concat([ensemble])
    leaves_equal(joined.params, ensemble.params)
    assert set(joined.stats) == set(ensemble.stats)


def test_concat_rejects_other_architecture(ensemble, wide_posterior):
    wide = make_ensemble(wide_posterior, 2, 5)
    with pytest.raises(ValueError, match=r"ensembles\[1\]"):
        bo.Ensemble.concat([ensemble, wide])
    with pytest.raises(ValueError, match=r"ensembles\[2\]"):
        bo.Ensemble.concat([ensemble, ensemble, wide], axis="draw")
    flat = bo.Ensemble({"mu": jnp.zeros((2, 5))}, None, {})
    with pytest.raises(ValueError, match=r"ensembles\[1\]"):
        bo.Ensemble.concat([ensemble, flat])


def test_concat_rejects_empty_list():
    with pytest.raises(ValueError, match="empty"):
        bo.Ensemble.concat([])


# -- save / load ------------------------------------------------------------------------------


def test_save_load_round_trip_network(tmp_path, hier_posterior):
    stats = default_stats(2, 3, seed=4)
    stats["stopped"] = jnp.zeros((2, 3), bool)
    e = make_ensemble(hier_posterior, 2, 3, stats, seed=4)
    assert jax.tree.leaves(e.params["prior"])  # the nested hyperparameter dicts are there
    path = tmp_path / "ensemble.nc"
    e.save(path)
    assert sorted(os.listdir(tmp_path)) == ["ensemble.nc"]  # atomic: no temporary file left

    for like in (hier_posterior, hier_posterior.model):
        loaded = bo.Ensemble.load(path, like=like)
        leaves_equal(loaded.params, e.params)
        assert set(loaded.stats) == set(e.stats)
        for name, value in e.stats.items():
            assert loaded.stats[name].dtype == value.dtype
            assert np.array_equal(loaded.stats[name], value)
        assert loaded.config == e.config
        assert loaded.target_shape == e.target_shape
        assert loaded.model is hier_posterior.model
    # the loaded ensemble predicts exactly as the original
    x = hier_posterior.data.inputs[:4]
    assert np.array_equal(loaded.predict(x).mean, e.predict(x).mean)


def test_save_load_round_trip_numpyro_dict(tmp_path):
    rng = np.random.default_rng(0)
    params = {
        "mu": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
        "sigma": jnp.asarray(rng.gamma(2.0, size=(3, 4)), jnp.float32),
        "theta": jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32),
        "L": jnp.asarray(rng.normal(size=(3, 4, 2, 2)), jnp.float32),
    }
    stats = {
        "lp": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
        "diverging": jnp.asarray(rng.random((3, 4)) < 0.5),
    }
    config = {"sampler_name": "NUTS", "num_draws": 4, "key": (1, 2), "extra": {"a": [1, 2]}}
    e = bo.Ensemble(params, stats, config)
    path = tmp_path / "numpyro.nc"
    e.save(path)
    loaded = bo.Ensemble.load(path)
    assert set(loaded.params) == set(params)
    leaves_equal(loaded.params, e.params)
    for name, value in stats.items():
        assert loaded.stats[name].dtype == value.dtype
        assert np.array_equal(loaded.stats[name], value)
    assert loaded.config == e.config
    assert loaded.model is None and loaded.target_shape is None
    with pytest.raises(TypeError):
        loaded.predict(np.zeros((3, 2)))


def test_save_overwrites_and_failed_save_keeps_old_file(tmp_path, ensemble, monkeypatch):

    path = tmp_path / "e.nc"
    first = ensemble.subset(chains=[0])
    first.save(path)
    ensemble.save(path)  # replaces the existing file
    assert bo.Ensemble.load(path, like=ensemble.model).num_chains == 2
    assert sorted(os.listdir(tmp_path)) == ["e.nc"]

    def broken(target, *args, **kwargs):
        with open(target, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    # the file is serialised in memory and written by Python: the disk fails at that write
    monkeypatch.setattr(Path, "write_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        first.save(path)
    monkeypatch.undo()
    # the previous complete file is untouched
    loaded = bo.Ensemble.load(path, like=ensemble.model)
    leaves_equal(loaded.params, ensemble.params)


def test_load_rejects_other_architecture(tmp_path, ensemble, hier_posterior, wide_posterior):
    path = tmp_path / "e.nc"
    ensemble.save(path)
    # same parameter names, other shapes (width 8 instead of 4)
    with pytest.raises(ValueError, match="architecture"):
        bo.Ensemble.load(path, like=wide_posterior)
    # other parameter names (a hierarchical prior adds `prior` entries)
    with pytest.raises(ValueError, match="architecture"):
        bo.Ensemble.load(path, like=hier_posterior)
    flat = tmp_path / "flat.nc"
    bo.Ensemble({"mu": jnp.zeros((2, 5))}, None, {}).save(flat)
    with pytest.raises(ValueError, match="architecture"):
        bo.Ensemble.load(flat, like=ensemble.model)
    with pytest.raises(TypeError, match="like"):
        bo.Ensemble.load(path, like="a model")


def test_load_rejects_corrupt_and_foreign_files(tmp_path, ensemble):
    import xarray as xr

    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"this is not a netCDF file\n" * 10)
    with pytest.raises(ValueError, match="not a readable ensemble file"):
        bo.Ensemble.load(garbage)

    good = tmp_path / "good.nc"
    ensemble.save(good)
    truncated = tmp_path / "truncated.nc"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        bo.Ensemble.load(truncated, like=ensemble.model)

    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"v": ("x", np.arange(3.0))}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(ValueError, match="not written by Ensemble.save"):
        bo.Ensemble.load(foreign)

    with pytest.raises(ValueError):
        bo.Ensemble.load(tmp_path / "missing.nc")

    # marked as an ensemble, but a listed parameter is missing / an attribute is not JSON
    attrs = {
        "bayesover_ensemble": 1,
        "param_names": '["mu", "sigma"]',
        "config": "{}",
        "target_shape": "null",
    }
    incomplete = tmp_path / "incomplete.nc"
    xr.Dataset({"params__mu": (("chain", "draw"), np.zeros((2, 3)))}, attrs=attrs).to_netcdf(
        incomplete, engine="h5netcdf"
    )
    with pytest.raises(ValueError, match="incomplete or corrupt"):
        bo.Ensemble.load(incomplete)
    attrs["param_names"], attrs["config"] = '["mu"]', "{not json"
    xr.Dataset({"params__mu": (("chain", "draw"), np.zeros((2, 3)))}, attrs=attrs).to_netcdf(
        incomplete, engine="h5netcdf"
    )
    with pytest.raises(ValueError, match="incomplete or corrupt"):
        bo.Ensemble.load(incomplete)
