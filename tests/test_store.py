"""`bo.sample(..., store=PATH)` and `bo.Ensemble.open`: draws streamed to disk, read in blocks.

One small SGLD run (an MLP of 17 weights, 2 chains x 30 draws, chunks of 7) is made in memory
and streamed to a store; everything read from the store (draws, the predictive, the DataTree,
the diagnostics) must equal the in-memory run: draws bit for bit, reductions to float
rounding (blocks of 4 draws and member batches of 3, which divide nothing, so every block
boundary is crossed). Fresh processes check that a run killed between writing a chunk and its
checkpoint resumes to exactly the uninterrupted draws, and that a streamed run of 1 GB of
draws, and the predictive on it, stay far below that in peak memory.
"""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import equinox as eqx
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import bayesover as bo
from bayesover.inference._store import store_attrs

ROOT = Path(__file__).resolve().parents[1]

POSTERIOR = """
import equinox as eqx, jax, jax.numpy as jnp
import bayesover as bo
from bayesover.inference._store import store_attrs

def make_posterior(width=4, features=2, points=20, hidden=1, scale=None):
    x = jax.random.normal(jax.random.key(0), (points, features))
    y = jnp.sin(x[:, 0])
    net = eqx.nn.MLP(features, 1, width, hidden, activation=jnp.tanh, key=jax.random.key(1))
    model = bo.Model(net, bo.priors.FanInNormal(1.0), bo.likelihoods.Gaussian(scale=scale))
    return bo.Posterior(model, bo.Data(x, y))

SAMPLER = bo.SGLD(1e-3, batch_size=10)
RUN = dict(key=jax.random.key(3), num_chains=2, num_warmup=10, num_draws=30, chunk_size=7,
           progress=False)
"""
namespace: dict = {}
exec(POSTERIOR, namespace)
make_posterior, SAMPLER, RUN = namespace["make_posterior"], namespace["SAMPLER"], namespace["RUN"]


def _child(
    code: str, folder: Path, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess:
    script = folder / "child.py"
    script.write_text(POSTERIOR + textwrap.dedent(code))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # one CPU device, as in this process
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_same_params(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)


def assert_same_stats(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.asarray(a[k]).dtype == np.asarray(b[k]).dtype, k
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k]), equal_nan=True), k


def close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    posterior = make_posterior()
    memory = bo.sample(posterior, SAMPLER, **RUN)
    stored = bo.sample(posterior, SAMPLER, store=folder / "run.nc", **RUN)
    return {"posterior": posterior, "memory": memory, "stored": stored, "folder": folder}


# -- the store and the lazy ensemble ---------------------------------------------------------------
def test_streamed_run_has_the_draws_statistics_and_config_of_the_in_memory_run(runs):
    memory, stored = runs["memory"], runs["stored"]
    assert isinstance(stored, bo.ensemble._stored.StoredEnsemble)
    assert (stored.num_chains, stored.num_draws, stored.num_members) == (2, 30, 60)
    assert stored.complete
    assert stored.config == memory.config
    assert stored.target_shape == memory.target_shape and stored.model is not None
    assert_same_stats(stored.stats, memory.stats)
    loaded = stored.load()
    assert isinstance(loaded, bo.Ensemble)
    assert_same_params(loaded.params, memory.params)
    assert_same_stats(loaded.stats, memory.stats)
    # a finished store is an ordinary ensemble file
    again = bo.Ensemble.load(stored.path, like=runs["posterior"])
    assert_same_params(again.params, memory.params)
    assert again.config == memory.config
    with xr.open_dataset(stored.path, engine="h5netcdf") as dataset:
        assert dataset.sizes["draw"] == 30 and dataset.attrs["complete"] == 1
        assert dataset["stats__stopped"].dtype == bool
    with h5py.File(stored.path) as file:  # HDF5 chunks of about 4 MB at most, one chain each
        assert file["params__net.layers.0.weight"].chunks == (1, 7, 4, 2)
        assert file["params__net.layers.0.weight"].maxshape[1] is None


def test_blocks_cover_every_draw_once_in_order(runs):
    stored, memory = runs["stored"], runs["memory"]
    starts, blocks = zip(*stored.iter_blocks(4), strict=True)
    assert starts == tuple(range(0, 30, 4)) and blocks[-1].num_draws == 2
    joined = bo.Ensemble.concat(list(blocks), axis="draw")
    assert_same_params(joined.params, memory.params)
    assert stored.default_draws_per_block() == 7  # the sampling chunk (far below 64 MB)


@pytest.mark.parametrize(
    "chains, draws",
    [
        (None, None),
        ([1], slice(2, None, 3)),
        ([1, 0], [5, 1, 1, 29, 0]),  # unsorted, repeated: HDF5 reads sorted unique indices
        (np.array([True, False]), slice(-4, None)),
        (0, -1),  # an int keeps that one chain or draw
    ],
)
def test_subset_reads_the_same_draws_as_the_in_memory_subset(runs, chains, draws):
    stored, memory = runs["stored"], runs["memory"]
    part = stored.subset(chains=chains, draws=draws)
    expected = memory.subset(
        chains=None if chains is None else np.atleast_1d(np.arange(2)[chains]),
        draws=None if draws is None else np.atleast_1d(np.arange(30)[draws]),
    )
    assert (part.num_chains, part.num_draws) == (expected.num_chains, expected.num_draws)
    loaded = part.load()
    assert_same_params(loaded.params, expected.params)
    assert_same_stats(loaded.stats, expected.stats)
    assert_same_params(
        jax.tree.leaves(
            bo.Ensemble.concat([b for _, b in part.iter_blocks(2)], axis="draw").params
        ),
        jax.tree.leaves(expected.params),
    )


def test_thin_and_healthy_as_in_memory(runs):
    stored, memory = runs["stored"], runs["memory"]
    assert_same_params(stored.thin(4).load().params, memory.thin(4).params)
    assert stored.healthy().num_chains == 2
    assert np.array_equal(stored.chain_ok(), memory.chain_ok())


# -- the predictive --------------------------------------------------------------------------------
def test_stored_predictive_equals_in_memory_predict(runs):
    memory, stored = runs["memory"], runs["stored"]
    x = jax.random.normal(jax.random.key(5), (9, 2))
    y = jnp.sin(x[:, 0])
    a = memory.predict(x)
    b = stored.predict(x, draws_per_block=4, member_batch_size=3, batch_size=4)
    assert b.num_members == a.num_members == 60
    close(b.mean, a.mean)
    for k, v in a.variance_parts().items():
        close(b.variance_parts()[k], v)
    close(b.log_prob(y), a.log_prob(y))
    for lo_hi_a, lo_hi_b in zip(
        a.interval(0.8, num_iterations=20), b.interval(0.8, num_iterations=20), strict=True
    ):
        close(lo_hi_b, lo_hi_a)
    key = jax.random.key(11)
    close(b.sample(key, 13), a.sample(key, 13))  # the same members, the same keys
    close(b.posterior_predictive(key), a.posterior_predictive(key))
    # the default blocks (the sampling chunk) and member batches give the same
    close(stored.predict(x).mean, a.mean)


def test_stored_classifier_predictive_equals_in_memory(tmp_path):
    x = jax.random.normal(jax.random.key(0), (12, 2))
    labels = (x[:, 0] > 0).astype(jnp.int32) + (x[:, 1] > 0).astype(jnp.int32)
    net = eqx.nn.MLP(2, 3, 5, 1, activation=jnp.tanh, key=jax.random.key(1))
    model = bo.Model(net, bo.priors.FanInNormal(1.0), bo.likelihoods.Categorical())
    posterior = bo.Posterior(model, bo.Data(x, labels))
    template = posterior.constrain(posterior.initial_position())
    rng = np.random.default_rng(0)
    params = jax.tree.map(
        lambda v: jnp.asarray(np.asarray(v) + rng.normal(size=(3, 5, *v.shape)), v.dtype), template
    )
    memory = bo.Ensemble(params, {}, {"sampler_name": "made"}, model, posterior.data.target_shape)
    memory.save(tmp_path / "classifier.nc")
    stored = bo.Ensemble.open(tmp_path / "classifier.nc", like=posterior)
    assert stored.complete and stored.stats == {}
    a, b = memory.predict(x), stored.predict(x, draws_per_block=2, member_batch_size=4)
    for name in ("probs", "entropy", "expected_entropy", "mutual_information"):
        close(getattr(b, name), getattr(a, name))
    close(b.log_prob(labels), a.log_prob(labels))


# -- DataTree and diagnostics ----------------------------------------------------------------------
def test_to_datatree_and_diagnose_on_the_store_equal_the_in_memory_ones(runs):
    posterior, memory, stored = runs["posterior"], runs["memory"], runs["stored"]
    test = bo.Data(jax.random.normal(jax.random.key(8), (10, 2)), jnp.zeros(10))
    a = bo.to_datatree(memory, posterior, test=test, num_weights=7)
    b = stored.to_datatree(posterior, test=test, num_weights=7)
    assert sorted(b.children) == sorted(set(a.children) - {"ensemble"})  # no draws in the tree
    for group in b.children:
        da, db = a[group].to_dataset(), b[group].to_dataset()
        assert sorted(da.data_vars) == sorted(db.data_vars), group
        for name in da.data_vars:
            assert da[name].dims == db[name].dims, (group, name)
            if da[name].dtype.kind in "fc":
                close(db[name].values, da[name].values)
            else:
                assert np.array_equal(db[name].values, da[name].values), (group, name)
        for name, coord in da.coords.items():
            assert np.array_equal(db[name].values, coord.values), (group, name)
    assert b.attrs["ensemble_store"] == str(stored.path.resolve())
    # diagnostics: the same table
    x, y = bo.diagnose(a), bo.diagnose(b)
    assert list(x.variables.index) == list(y.variables.index)
    numbers = ["mean", "sd", "ess_bulk", "ess_tail", "r_hat"]
    close(y.variables[numbers].to_numpy(float), x.variables[numbers].to_numpy(float))
    assert list(x.checks["verdict"]) == list(y.checks["verdict"])
    # the tree names its store; from_datatree reopens it, with the tree's selection
    part = stored.subset(chains=[1], draws=slice(0, 30, 2))
    reopened = bo.from_datatree(bo.to_datatree(part, posterior, weights="none"), posterior)
    assert reopened.selection() == part.selection()
    assert_same_params(reopened.load().params, part.load().params)


def test_to_datatree_refuses_every_weight_of_a_stored_ensemble(runs):
    with pytest.raises(ValueError, match=r"weights='all'.*every draw"):
        bo.to_datatree(runs["stored"], runs["posterior"], weights="all")


# -- resuming from a checkpoint, in fresh processes -----------------------------------------------
KILLED = """
import os, signal, sys
from bayesover.inference import _checkpoint
save = _checkpoint.save
def dying_save(path, fingerprint, states, draws_done, chunks):
    assert chunks == [], "with a store the checkpoint holds no draws"
    if draws_done == 14:  # the store has its 2nd chunk, the checkpoint still the 1st
        os.kill(os.getpid(), signal.SIGKILL)
    save(path, fingerprint, states, draws_done, chunks)
_checkpoint.save = dying_save
folder = sys.argv[1]
files = {"store": folder + "/run.nc", "checkpoint": folder + "/run.npz"}
bo.sample(make_posterior(), SAMPLER, **files, **RUN)
"""

RESUMED = """
import sys
import numpy as np
folder = sys.argv[1]
stored = bo.sample(make_posterior(), SAMPLER, store=folder + "/run.nc",
                   checkpoint=folder + "/run.npz", **RUN)
memory = bo.sample(make_posterior(), SAMPLER, **RUN)
loaded = stored.load()
arrays = {f"draws_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(loaded.params))}
arrays |= {f"ref_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(memory.params))}
arrays |= {f"stats_{k}": np.asarray(v) for k, v in loaded.stats.items()}
arrays |= {f"refstats_{k}": np.asarray(v) for k, v in memory.stats.items()}
np.savez(folder + "/out.npz", **arrays)
"""


@pytest.mark.slow  # about 19 s
def test_a_run_killed_between_store_and_checkpoint_resumes_to_the_uninterrupted_draws(
    runs, tmp_path
):
    killed = _child(KILLED, tmp_path, str(tmp_path))
    assert killed.returncode == -9, killed.stderr[-3000:]
    with np.load(tmp_path / "run.npz") as checkpoint:
        assert int(checkpoint["draws_done"]) == 7 and "draws_0" not in checkpoint.files
    attrs = store_attrs(tmp_path / "run.nc")
    assert (attrs["draws_done"], attrs["complete"], attrs["num_draws"]) == (14, 0, 30)
    # the store of an unfinished run opens with the draws so far, and says so
    with pytest.warns(UserWarning, match=r"has not finished.*14 of 30 draws"):
        partial = bo.Ensemble.open(tmp_path / "run.nc", like=runs["posterior"])
    assert not partial.complete
    assert_same_params(partial.load().params, runs["memory"].subset(draws=slice(0, 14)).params)

    resumed = _child(RESUMED, tmp_path, str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as out:
        arrays = {k: out[k] for k in out.files}
    draws = [k for k in arrays if k.startswith("draws_")]
    assert draws
    for k in draws:  # exactly the uninterrupted run, there and here
        assert np.array_equal(arrays[k], arrays["ref_" + k.removeprefix("draws_")])
    for k in [k for k in arrays if k.startswith("stats_")]:
        assert np.array_equal(arrays[k], arrays["ref" + k], equal_nan=True)
    ref = jax.tree.leaves(runs["memory"].params)
    for i, leaf in enumerate(ref):
        assert np.array_equal(arrays[f"draws_{i}"], np.asarray(leaf))
    attrs = store_attrs(tmp_path / "run.nc")
    assert (attrs["draws_done"], attrs["complete"]) == (30, 1)
    with h5py.File(tmp_path / "run.nc") as file:  # the 7 draws beyond the checkpoint cut off
        assert file["params__net.layers.0.weight"].shape[1] == 30


def test_checkpoint_and_store_must_come_from_the_same_kind_of_run(runs, tmp_path):
    posterior = runs["posterior"]
    streamed = {"store": tmp_path / "a.nc", "checkpoint": tmp_path / "a.npz"}
    bo.sample(posterior, SAMPLER, **streamed, **RUN)
    with pytest.raises(ValueError, match=r"draws in a draw store.*same `store`"):
        bo.sample(posterior, SAMPLER, checkpoint=tmp_path / "a.npz", **RUN)
    bo.sample(posterior, SAMPLER, checkpoint=tmp_path / "b.npz", **RUN)
    with pytest.raises(ValueError, match=r"draws of a run without `store=`"):
        bo.sample(posterior, SAMPLER, checkpoint=tmp_path / "b.npz", store=tmp_path / "b.nc", **RUN)
    # the fingerprint guards the store: a checkpoint resumed with another run's store
    other = {**RUN, "key": jax.random.key(4)}
    bo.sample(posterior, SAMPLER, store=tmp_path / "c.nc", checkpoint=tmp_path / "c.npz", **other)
    with pytest.raises(ValueError, match=r"`store` .*other arguments"):
        bo.sample(posterior, SAMPLER, checkpoint=tmp_path / "a.npz", store=tmp_path / "c.nc", **RUN)


# -- memory ---------------------------------------------------------------------------------------
CAPPED = """
import json, resource, sys
folder = sys.argv[1]
def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
posterior = make_posterior(width=256, features=8, points=64, hidden=2, scale=0.1)
sampler = bo.SGLD(1e-5, batch_size=8)
run = dict(key=jax.random.key(3), num_chains=4, num_warmup=10, chunk_size=25, progress=False)
x = posterior.data.inputs[:16]
# compile every program first (same chunk and block shapes), so the baseline includes them
small = bo.sample(posterior, sampler, num_draws=25, store=folder + "/small.nc", **run)
small.predict(x).mean.block_until_ready()
baseline = peak_mib()
big = bo.sample(posterior, sampler, num_draws=1000, store=folder + "/big.nc", **run)
after_sample = peak_mib()
mean = big.predict(x).mean.block_until_ready()
print(json.dumps({"num_params": int(posterior.model.num_params), "baseline": baseline,
                  "after_sample": after_sample, "after_predict": peak_mib(),
                  "finite": bool(jnp.all(jnp.isfinite(mean)))}))
"""
CAP_MIB = 350  # peak memory above the baseline allowed for 1 GB of draws


@pytest.mark.slow  # about 26 s: 1 GB of draws
def test_a_streamed_run_and_its_predictive_stay_under_a_memory_cap(tmp_path):
    done = _child(CAPPED, tmp_path, str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    draw_mib = 4 * 1000 * out["num_params"] * 4 / 2**20
    assert draw_mib > 2.9 * CAP_MIB  # the draws would not fit under the cap
    assert (tmp_path / "big.nc").stat().st_size > draw_mib * 2**20
    assert out["after_sample"] - out["baseline"] < CAP_MIB, out
    assert out["after_predict"] - out["baseline"] < CAP_MIB, out
    assert out["finite"]


# -- bad input -------------------------------------------------------------------------------------
def test_bad_store_arguments_are_refused_before_any_work(runs, tmp_path):
    posterior = runs["posterior"]
    with pytest.raises(FileNotFoundError, match=r"`store` .*does not exist"):
        bo.sample(posterior, SAMPLER, store=tmp_path / "missing" / "run.nc", **RUN)
    with pytest.raises(TypeError, match=r"`store` must be a file path"):
        bo.sample(posterior, SAMPLER, store=3, **RUN)
    with pytest.raises(ValueError, match=r"same file"):
        bo.sample(posterior, SAMPLER, store=tmp_path / "x", checkpoint=tmp_path / "x", **RUN)
    with pytest.raises(IsADirectoryError, match=r"`store` .*directory"):
        bo.sample(posterior, SAMPLER, store=tmp_path, **RUN)
    other = tmp_path / "notes.txt"
    other.write_text("not a store")
    with pytest.raises(ValueError, match=r"exists and is not a bayesover draw store"):
        bo.sample(posterior, SAMPLER, store=other, **RUN)
    assert other.read_text() == "not a store"  # left untouched


def test_bad_files_and_arguments_of_open_are_refused(runs, tmp_path):
    posterior, stored = runs["posterior"], runs["stored"]
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        bo.Ensemble.open(tmp_path / "missing.nc")
    with pytest.raises(TypeError, match=r"`path` must be"):
        bo.Ensemble.open(3)
    (tmp_path / "text.nc").write_text("hello")
    with pytest.raises(ValueError, match=r"not a readable draw store or ensemble file"):
        bo.Ensemble.open(tmp_path / "text.nc")
    xr.Dataset({"a": ("x", np.arange(3))}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
    with pytest.raises(ValueError, match=r"not a bayesover draw store or ensemble file"):
        bo.Ensemble.open(tmp_path / "other.nc")
    wider = make_posterior(width=5)
    with pytest.raises(ValueError, match=r"do not match the architecture"):
        bo.Ensemble.open(stored.path, like=wider)
    with pytest.raises(ValueError, match=r"keeps no member"):
        stored.subset(draws=slice(3, 3))
    with pytest.raises(ValueError, match=r"`draws_per_block`"):
        next(stored.iter_blocks(0))
    with pytest.raises(ValueError, match=r"`member_batch_size`"):
        stored.predict(posterior.data.inputs, member_batch_size=0)
    with pytest.raises(ValueError, match=r"feature shape"):
        stored.predict(jnp.ones((3, 5)))


def test_a_datatree_file_opens_through_its_ensemble_group(runs, tmp_path):
    tree = bo.to_datatree(runs["memory"], runs["posterior"])
    bo.save_datatree(tree, tmp_path / "tree.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opened = bo.Ensemble.open(tmp_path / "tree.nc", like=runs["posterior"])
    assert_same_params(opened.load().params, runs["memory"].params)
