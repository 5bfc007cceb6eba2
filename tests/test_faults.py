"""The fault matrix: every fault is a clear error or a flag, and nothing already written is lost.

Files. A truncated checkpoint, or one of another format version, is refused and left untouched;
a checkpoint in a directory that cannot be written fails before any sampling. A full disk while
writing a DataTree, a report or a checkpoint leaves the previous file intact, leaves no
temporary file, and the error names the path. The full disk is a real write failure: the
process's file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the kernel refuse every write
past a byte count (EFBIG), the path through the writers that ENOSPC takes, without root to
mount a tiny tmpfs.

NaN storm. A double-well posterior (wells at f = -10 and f = 10) whose log density is NaN
beyond f > 11, two chains started in each well. NUTS: the two chains of the right well meet NaN
in about a quarter of their transitions (rejected as divergent), the left ones never; SGLD: the
right-well chains step past 11 mid-run and stop. In both, every chain runs to the end, the bad
chains are flagged in `sample_stats` and by `bo.diagnose`, and the DataTree and report build.
"""

import contextlib
import hashlib
import resource
import signal
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from conftest import model_file

import bayesover as bo
from bayesover.inference import _checkpoint
from bayesover.inference import _sample as sample_module
from bayesover.model.likelihoods import AbstractLikelihood

NUM_CHAINS = 4
BAD_CHAINS = [2, 3]


@contextlib.contextmanager
def disk_full_after(nbytes: int):
    """Writes past `nbytes` in any file fail (EFBIG) inside the block, as on a full disk."""
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_intact_after_failed_write(path, before, error, folder):
    assert str(path) in str(error.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # no temporary file left


# -- the NaN storm ------------------------------------------------------------------------------


class DoubleWellWithHole(AbstractLikelihood):
    """log p = logaddexp(N(f | -10, 1), N(f | 10, 1)) whatever the target; NaN where f > 11."""

    def distribution(self, output, hyper):
        return dist.Normal(output, 1.0)

    def log_prob(self, output, target, hyper):
        f = jnp.sum(output)
        wells = jnp.logaddexp(
            dist.Normal(-10.0, 1.0).log_prob(f), dist.Normal(10.0, 1.0).log_prob(f)
        )
        return jnp.where(f > 11.0, jnp.nan, wells)


@pytest.fixture(scope="module")
def storm():
    """The posterior and a start in each well for chains (0, 1) left and (2, 3) right."""
    net = eqx.nn.Linear("scalar", "scalar", use_bias=False, key=jax.random.key(0))
    model = bo.Model(net, bo.priors.Normal(10.0), DoubleWellWithHole())
    posterior = bo.Posterior(model, bo.Data(jnp.ones((1,)), jnp.zeros((1,))))
    wells = jnp.array([-10.0, -10.0, 10.0, 10.0]).reshape(NUM_CHAINS, 1, 1)
    init = jax.vmap(lambda w: model.position(eqx.tree_at(lambda m: m.weight, net, w)))(wells)
    return posterior, init


def _storm_run(storm, sampler, num_warmup, seed):
    posterior, init = storm
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ensemble = bo.sample(
            posterior,
            sampler,
            key=jax.random.key(seed),
            num_chains=NUM_CHAINS,
            num_warmup=num_warmup,
            num_draws=200,
            init=init,
            progress=False,
        )
    tree = bo.to_datatree(ensemble, posterior)
    return ensemble, tree, bo.diagnose(tree), [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def nuts_storm(storm):
    return _storm_run(storm, bo.NUTS(max_tree_depth=5), num_warmup=100, seed=0)


@pytest.fixture(scope="module")
def sgld_storm(storm):
    return _storm_run(storm, bo.SGLD(step_size=1e-2, batch_size=1), num_warmup=0, seed=1)


def test_nuts_nan_storm_flags_the_bad_chains_and_the_others_finish(nuts_storm):
    ensemble, tree, diagnostics, _ = nuts_storm
    non_finite = np.asarray(ensemble.stats["non_finite"])
    assert non_finite.shape == (NUM_CHAINS, 200)
    fractions = non_finite.mean(axis=1)
    assert np.all(fractions[:2] == 0.0)
    assert np.all(fractions[BAD_CHAINS] > 0.1)  # ~0.25: mid-run, not at the start only
    assert np.all(non_finite[BAD_CHAINS, 100:].any(axis=1))
    # a non-finite trajectory is rejected: every draw is finite, every chain ran to the end
    w = np.asarray(ensemble.params["net"].weight)
    assert w.shape == (NUM_CHAINS, 200, 1, 1) and np.all(np.isfinite(w))
    assert np.all(w[:2] < 0) and np.all(w[BAD_CHAINS] > 0)
    assert tree.sample_stats["non_finite"].shape == (NUM_CHAINS, 200)
    row = diagnostics.checks.loc["non_finite"]
    assert row["verdict"] == "fail"
    assert "2, 3" in row["reason"]


def test_sgld_nan_storm_stops_the_bad_chains_mid_run_and_the_others_finish(sgld_storm):
    ensemble, tree, diagnostics, caught = sgld_storm
    stopped = np.asarray(ensemble.stats["stopped"])
    assert not stopped[:2].any()
    first_stop = stopped[BAD_CHAINS].argmax(axis=1)
    assert stopped[BAD_CHAINS].any(axis=1).all() and np.all((first_stop > 5) & (first_stop < 190))
    w = np.asarray(ensemble.params["net"].weight).reshape(NUM_CHAINS, 200)
    assert np.all(np.isfinite(w[:2]))
    for chain, stop in zip(BAD_CHAINS, first_stop, strict=True):
        assert np.all(np.isfinite(w[chain, :stop])) and np.all(np.isnan(w[chain, stop:]))
    assert any("chains [2, 3] stopped" in message for message in caught)
    assert bool(tree.sample_stats["stopped"].any(dim="draw")[2])
    row = diagnostics.checks.loc["stopped_chains"]
    assert row["verdict"] == "fail" and "[2, 3]" in row["reason"]


def test_nan_storm_runs_make_a_report(nuts_storm, sgld_storm, tmp_path):
    path = bo.report({"NUTS": nuts_storm[1], "SGLD": sgld_storm[1]}, tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert "non_finite" in text and "stopped_chains" in text


# -- files ---------------------------------------------------------------------------------------


def test_datatree_write_on_a_full_disk_keeps_the_previous_file(sgld_storm, tmp_path):
    path = tmp_path / "run.nc"
    bo.save_datatree(sgld_storm[1], path)
    before = path.read_bytes()
    with disk_full_after(len(before) // 2), pytest.raises(OSError) as error:
        bo.save_datatree(sgld_storm[1], path)
    _assert_intact_after_failed_write(path, before, error, tmp_path)
    assert bo.load_datatree(path).posterior.sizes == sgld_storm[1].posterior.sizes


def test_report_write_on_a_full_disk_keeps_the_previous_file(sgld_storm, tmp_path):
    path = bo.report(sgld_storm[1], tmp_path / "report.html")
    before = path.read_bytes()
    with disk_full_after(len(before) // 2), pytest.raises(OSError) as error:
        bo.report(sgld_storm[1], path)
    _assert_intact_after_failed_write(path, before, error, tmp_path)


def test_ensemble_save_on_a_full_disk_keeps_the_previous_file(tmp_path):
    # HDF5 writing to the file itself raised a RuntimeError on EFBIG and then crashed the
    # process; the ensemble is now serialised in memory and written by Python.
    draws = np.random.default_rng(0).normal(size=(NUM_CHAINS, 500, 8)).astype(np.float32)
    ensemble = bo.Ensemble({"w": jnp.asarray(draws)}, {"lp": jnp.zeros((NUM_CHAINS, 500))}, {})
    path = tmp_path / "ensemble.nc"
    ensemble.save(path)
    before = path.read_bytes()
    with disk_full_after(len(before) // 2), pytest.raises(OSError) as error:
        ensemble.save(path)
    _assert_intact_after_failed_write(path, before, error, tmp_path)
    loaded = bo.Ensemble.load(path)
    assert np.array_equal(np.asarray(loaded.params["w"]), draws)


@pytest.fixture(scope="module")
def linear():
    return model_file("linear_gaussian").build(seed=0, num_features=3, num_points=50).posterior


def _sgld(posterior, checkpoint):
    return bo.sample(
        posterior,
        bo.SGLD(step_size=1e-3, batch_size=10),
        key=jax.random.key(3),
        num_chains=NUM_CHAINS,
        num_warmup=50,
        num_draws=200,
        chunk_size=20,
        progress=False,
        checkpoint=checkpoint,
    )


@pytest.fixture(scope="module")
def reference_checkpoint(linear, tmp_path_factory):
    path = tmp_path_factory.mktemp("reference") / "sgld.npz"
    return _sgld(linear, path), path


def test_checkpoint_write_on_a_full_disk_keeps_the_previous_checkpoint(
    linear, reference_checkpoint, tmp_path
):
    reference, reference_path = reference_checkpoint
    path = tmp_path / "sgld.npz"
    # the early, small checkpoints fit; one with more draws does not
    with disk_full_after(reference_path.stat().st_size // 2), pytest.raises(OSError) as error:
        _sgld(linear, path)
    assert str(path) in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    with np.load(path) as previous:  # the last complete checkpoint, whole
        assert 0 < int(previous["draws_done"]) < 200
    resumed = _sgld(linear, path)  # and the run resumes from it
    for ours, theirs in zip(jax.tree.leaves(resumed), jax.tree.leaves(reference), strict=True):
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_truncated_checkpoint_is_refused_and_left_untouched(linear, reference_checkpoint, tmp_path):
    data = reference_checkpoint[1].read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 2])
    before = _digest(path)
    with pytest.raises(ValueError, match="`checkpoint`.*not a readable checkpoint"):
        _sgld(linear, path)
    assert _digest(path) == before


def test_checkpoint_of_another_format_version_is_refused_and_left_untouched(
    linear, reference_checkpoint, tmp_path
):
    with np.load(reference_checkpoint[1]) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["version"] = np.asarray(_checkpoint.VERSION + 1)
    path = tmp_path / "future.npz"
    np.savez(path, **arrays)
    before = _digest(path)
    with pytest.raises(ValueError, match=f"`checkpoint`.*version {_checkpoint.VERSION + 1}"):
        _sgld(linear, path)
    assert _digest(path) == before


@pytest.mark.parametrize("folder", ["/proc", "/no/such/folder"])
def test_checkpoint_in_an_unwritable_folder_fails_before_any_sampling(linear, folder, monkeypatch):
    def no_sampling(*args, **kwargs):
        raise AssertionError("sampling started")

    monkeypatch.setattr(sample_module, "_start_chains", no_sampling)
    with pytest.raises(OSError, match=f"`checkpoint` '{folder}/sgld.npz'"):
        _sgld(linear, f"{folder}/sgld.npz")
