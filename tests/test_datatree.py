"""`bo.to_datatree`: the ArviZ groups, ArviZ functions on them, the exact netCDF round trip."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr

import bayesover as bo

STANDARD_STATS = {"diverging", "tree_depth", "n_steps", "lp", "step_size", "acceptance_rate"}


@pytest.fixture(scope="module")
def problem():
    return bo.builders.load_problem("regression_mlp")


@pytest.fixture(scope="module")
def ensemble(problem):
    return bo.sample(
        problem.posterior,
        bo.NUTS(max_tree_depth=4),
        key=jax.random.key(0),
        num_chains=2,
        num_warmup=40,
        num_draws=30,
        init="map",
        map_steps=300,
        progress=False,
    )


@pytest.fixture(scope="module")
def tree(problem, ensemble):
    return bo.to_datatree(ensemble, problem.posterior, test=problem.test)


def test_standard_groups_dims_and_stat_names(tree, problem, ensemble):
    for group in (
        "posterior",
        "sample_stats",
        "log_likelihood",
        "posterior_predictive",
        "observed_data",
        "constant_data",
        "predictive_metrics",
    ):
        assert group in tree.children, group
    n = problem.posterior.num_data
    assert STANDARD_STATS | {"energy"} <= set(tree["sample_stats"].data_vars)
    assert tree["log_likelihood"]["y"].dims == ("chain", "draw", "obs")
    assert tree["log_likelihood"]["y"].shape == (2, 30, n)
    assert tree["posterior_predictive"]["y"].shape == (2, 30, n)
    assert tree["observed_data"]["y"].shape == (n,)
    post = tree["posterior"]
    assert post["f"].dims == ("chain", "draw", "probe")
    assert {"log_lik", "lp", "likelihood_scale", "w"} <= set(post.data_vars)
    # log_lik is the sum of the pointwise log-likelihood
    np.testing.assert_allclose(
        post["log_lik"].values, tree["log_likelihood"]["y"].values.sum(-1), rtol=1e-5
    )
    # the weight subsample: 20 named coordinates, drawn with a fixed key, sorted
    names = list(post["weight"].values)
    assert len(names) == 20 and all(str(x).startswith("layers.") for x in names)
    assert tree.attrs["task"] == "regression" and tree.attrs["name"] == "NUTS"
    assert tree["constant_data"]["x_probe"].shape == (10, 10)


def test_f_is_the_members_mean_at_the_probes(tree, ensemble, problem):
    x = jnp.asarray(tree["constant_data"]["x_probe"].values)
    member = jax.tree.map(lambda v: v[1, 3], ensemble.params)
    expected = jax.vmap(lambda xi: ensemble.model.apply(member["net"], xi))(x)[:, 0]
    np.testing.assert_allclose(tree["posterior"]["f"].values[1, 3], expected, rtol=1e-5, atol=1e-6)


def test_arviz_functions_work_unchanged(tree):
    summary = az.summary(tree, var_names=["f", "log_lik", "lp"])
    assert np.all(np.isfinite(summary["r_hat"].astype(float)))
    assert az.ess(tree)["log_lik"].values > 0
    assert float(az.rhat(tree)["log_lik"].values) > 0
    loo = az.loo(tree)
    assert np.isfinite(loo.elpd)
    compare = az.compare({"a": tree, "b": tree})
    assert len(compare) == 2
    assert np.all(np.isfinite(az.bfmi(tree)["energy"].values))


def test_arviz_plots_draw_from_it(tree):
    import arviz_plots as azp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for plot in (azp.plot_trace_dist, azp.plot_rank, azp.plot_ess):
        collection = plot(tree, var_names=["log_lik", "lp"], backend="matplotlib")
        assert collection is not None
    azp.plot_energy(tree, backend="matplotlib")
    plt.close("all")


def test_netcdf_round_trip_is_exact_and_rebuilds_the_ensemble(tree, ensemble, problem, tmp_path):
    path = bo.save_datatree(tree, tmp_path / "run.nc")
    loaded = bo.load_datatree(path)
    assert loaded.identical(tree)
    rebuilt = bo.from_datatree(loaded, problem.posterior)
    for a, b in zip(jax.tree.leaves(ensemble.params), jax.tree.leaves(rebuilt.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert rebuilt.config == ensemble.config
    for k in ensemble.stats:
        np.testing.assert_array_equal(np.asarray(ensemble.stats[k]), np.asarray(rebuilt.stats[k]))
    # the rebuilt ensemble predicts like the original
    x = problem.test.inputs[:5]
    np.testing.assert_allclose(rebuilt.predict(x).mean, ensemble.predict(x).mean, rtol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))


def test_save_refuses_to_overwrite_when_asked_and_never_half_writes(tree, tmp_path, monkeypatch):
    path = tmp_path / "run.nc"
    bo.save_datatree(tree, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="`path`"):
        bo.save_datatree(tree, path, overwrite=False)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        bo.save_datatree(tree, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.nc"]


def test_load_rejects_missing_corrupt_and_foreign_files(tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bo.load_datatree(tmp_path / "missing.nc")
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"not netcdf\n" * 20)
    with pytest.raises(ValueError, match="not a readable DataTree"):
        bo.load_datatree(garbage)
    good = bo.save_datatree(tree, tmp_path / "good.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a readable DataTree"):
        bo.load_datatree(truncated)
    foreign = tmp_path / "foreign.nc"
    xr.DataTree(xr.Dataset({"v": ("x", np.arange(3.0))})).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(ValueError, match="no `posterior` group"):
        bo.load_datatree(foreign)
    with pytest.raises(ValueError, match="no `ensemble` group"):
        bo.from_datatree(az.from_dict({"posterior": {"a": np.zeros((2, 3))}}))


def test_weight_options(ensemble, problem):
    every = bo.to_datatree(ensemble, problem.posterior, weights="all")
    assert every["posterior"]["w"].shape[-1] == problem.posterior.model.num_params
    assert "w" not in bo.to_datatree(ensemble, problem.posterior, weights="none")["posterior"]
    five = bo.to_datatree(ensemble, problem.posterior, num_weights=5)["posterior"]["w"]
    assert five.shape[-1] == 5
    with pytest.raises(ValueError, match="`weights`"):
        bo.to_datatree(ensemble, problem.posterior, weights="most")
    with pytest.raises(ValueError, match="`num_weights`"):
        bo.to_datatree(ensemble, problem.posterior, num_weights=0)
    with pytest.raises(ValueError, match="`probe_x`"):
        bo.to_datatree(ensemble, problem.posterior, probe_x=np.zeros((3, 2)))
    with pytest.raises(TypeError, match="`ensemble`"):
        bo.to_datatree("draws", problem.posterior)


def _coin(y):
    p = numpyro.sample("p", dist.Beta(2.0, 2.0))
    numpyro.sample("y", dist.Bernoulli(p), obs=y)


@pytest.mark.slow
def test_numpyro_target_gives_named_sites_and_pointwise_loglik():
    y = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    posterior = bo.Posterior.from_numpyro(_coin, y)
    ensemble = bo.sample(
        posterior,
        bo.NUTS(max_tree_depth=3),
        key=jax.random.key(1),
        num_chains=2,
        num_warmup=50,
        num_draws=50,
        progress=False,
    )
    tree = bo.to_datatree(ensemble, posterior)
    assert set(tree["posterior"].data_vars) == {"p"}
    assert tree["log_likelihood"]["y"].shape == (2, 50, 6)
    np.testing.assert_array_equal(tree["observed_data"]["y"].values, np.asarray(y))
    p = tree["posterior"]["p"].values
    expected = np.where(np.asarray(y) == 1, np.log(p)[..., None], np.log1p(-p)[..., None])
    np.testing.assert_allclose(tree["log_likelihood"]["y"].values, expected, rtol=1e-5)
    assert np.isfinite(az.loo(tree).elpd)
    rebuilt = bo.from_datatree(tree)
    np.testing.assert_array_equal(np.asarray(rebuilt.params["p"]), p)


def test_stopped_chains_are_left_out_of_the_test_metrics(ensemble, problem):
    nan_chain = jax.tree.map(lambda v: v.at[1].set(jnp.nan), ensemble.params)
    stopped = jnp.zeros((2, 30), bool).at[1, 10:].set(True)
    broken = bo.Ensemble(
        nan_chain,
        {"lp": ensemble.stats["lp"], "stopped": stopped},
        ensemble.config,
        ensemble.model,
        ensemble.target_shape,
    )
    tree = bo.to_datatree(broken, problem.posterior, test=problem.test)
    metrics = tree["predictive_metrics"].to_dataset()
    healthy = bo.to_datatree(ensemble.subset(chains=[0]), problem.posterior, test=problem.test)[
        "predictive_metrics"
    ].to_dataset()
    np.testing.assert_allclose(float(metrics["nll"]), float(healthy["nll"]), rtol=1e-6)
