"""The `mesh` argument of `bo.sample` and `bo.deep_ensemble`: what is accepted, what is refused.

In the test process JAX sees one CPU device, so every mesh that asks for more is refused
before anything is compiled; the meshes over several devices run in tests/test_devices.py,
tests/test_data_parallel.py and tests/test_distributed.py (subprocesses with more devices).
"""

import jax
import numpy as np
import pytest
from conftest import model_file

import bayesover as bo
from bayesover.inference._sharding import choose_mesh

lg = model_file("linear_gaussian")


@pytest.fixture(scope="module")
def posterior():
    return lg.build(seed=0, num_features=3, num_points=20).posterior


def test_default_mesh_on_one_device(posterior):
    mesh = choose_mesh(None, 4, posterior)
    assert dict(mesh.shape) == {"chains": 1, "data": 1}


def test_a_jax_mesh_with_the_right_axes_is_accepted(posterior):
    devices = np.asarray(jax.devices()[:1]).reshape(1, 1)
    mesh = choose_mesh(jax.sharding.Mesh(devices, ("chains", "data")), 4, posterior)
    assert dict(mesh.shape) == {"chains": 1, "data": 1}


@pytest.mark.parametrize(
    "mesh, error, words",
    [
        ("4x1", TypeError, "`mesh` must be None, a tuple (chains, data)"),
        ((4,), TypeError, "`mesh` must be None"),
        ((0, 1), ValueError, "must be positive ints, got (0, 1)"),
        ((1.0, 1), TypeError, "a tuple (chains, data) of positive ints"),
        ((3, 1), ValueError, "do not divide num_chains=4"),
        ((2, 1), ValueError, "needs 2 devices; 1 are visible"),
        ((1, 2), ValueError, "needs 2 devices; 1 are visible"),
        ((1, 50), ValueError, "50 data shards exceed the N=20 points"),
    ],
)
def test_bad_mesh_is_refused_before_any_work(posterior, mesh, error, words):
    with pytest.raises(error) as info:
        bo.sample(posterior, bo.NUTS(), key=jax.random.key(0), num_chains=4, mesh=mesh)
    assert words in str(info.value)


def test_mesh_with_other_axis_names_is_refused(posterior):
    devices = np.asarray(jax.devices()[:1]).reshape(1, 1)
    mesh = jax.sharding.Mesh(devices, ("batch", "model"))
    with pytest.raises(ValueError, match=r"`mesh` must have the axes \('chains', 'data'\)"):
        bo.sample(posterior, bo.NUTS(), key=jax.random.key(0), mesh=mesh)


def test_data_axis_needs_a_network_posterior():
    import numpyro
    import numpyro.distributions as dist

    def model():
        numpyro.sample("x", dist.Normal())

    target = bo.Posterior.from_numpyro(model)
    with pytest.raises(ValueError, match="needs a network bo.Posterior"):
        choose_mesh((1, 2), 4, target)
    assert dict(choose_mesh(None, 4, target).shape) == {"chains": 1, "data": 1}


def test_deep_ensemble_takes_the_mesh(posterior):
    with pytest.raises(ValueError, match="needs 2 devices"):
        bo.deep_ensemble(posterior, 2, None, 10, key=jax.random.key(0), mesh=(2, 1))
