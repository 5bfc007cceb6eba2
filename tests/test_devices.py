"""`bo.sample` over several devices: 4 virtual CPU devices against 1, in subprocesses.

The device count of JAX is fixed when it starts, so every run happens in a fresh process
(tests/scripts/sample_runs.py) with `JAX_PLATFORMS=cpu`, and for 4 devices
`XLA_FLAGS=--xla_force_host_platform_device_count=4`. The 1-device and the 4-device process
run at the same time; each does every sampler once, and the 4-device one repeats SGLD and NUTS.

- The 4-device process sees 4 devices; with 4 chains (SGLD, NUTS) `bo.sample` uses all 4
  for the chains (`config["num_devices"] == 4`, mesh 4 x 1) and every output array lives on 4
  devices; with 6 chains (SGHMC) the default mesh is chains first, gcd(6, 4) = 2 chain blocks,
  and the 2 devices left over split the data: mesh 2 x 2.
- Data parallelism: the 4-device process also runs SGLD on a data-only mesh (1 x 4) and a mixed
  one (2 x 2), and NUTS on a data-only mesh (1 x 4).
- SG-MCMC (SGLD, SGHMC): for the same key, draws on 1 and on 4 devices agree to 1e-5 (float
  rounding only), whatever the mesh.
- NUTS (4 x 1 and 1 x 4): the draws agree in distribution only. For each of the 4
  parameters, the difference of the 1- and 4-device means is within Z_MAX = 4 combined Monte
  Carlo standard errors
  (sqrt(mcse_1^2 + mcse_4^2), arviz_stats.mcse, method "mean"); each mean is also within
  Z_MAX MCSE of the exact posterior mean (the model is conjugate). Observed |z| < 1.
- Same key, same devices: two runs give bit-identical draws and statistics.
"""

import numpy as np
import pytest
from conftest import model_file
from scripts import launch

lg = model_file("linear_gaussian")

Z_MAX = 4.0
SG_TOLERANCE = 1e-5
MODEL = {"seed": 0, "num_features": 3, "num_points": 50}
# SGLD and NUTS compile to the same programs as in test_checkpoint.py (same model, chains,
# warm-up, thinning and chunk size; the key is an input), so a session compiles them once.
RUNS = [
    {
        "name": "sgld",
        "sampler": "sgld",
        "num_chains": 4,
        "num_warmup": 100,
        "num_draws": 200,
        "thinning": 2,
        "chunk_size": 20,
    },
    {
        "name": "sghmc",
        "sampler": "sghmc",
        "num_chains": 6,
        "num_warmup": 200,
        "num_draws": 200,
        "chunk_size": 200,
    },
    {
        "name": "nuts",
        "sampler": "nuts",
        "num_chains": 4,
        "num_warmup": 200,
        "num_draws": 500,
        "chunk_size": 25,
    },
]
# Only in the 4-device process; each is compared with the 1-device run of the name before "@".
MESH_RUNS = [
    {**RUNS[0], "name": "sgld@data", "mesh": [1, 4]},
    {**RUNS[0], "name": "sgld@mixed", "mesh": [2, 2]},
    {**RUNS[2], "name": "nuts@data", "mesh": [1, 4]},
]
SG_RUNS = ["sgld", "sghmc", "sgld@data", "sgld@mixed"]
REPEATED = {"sgld", "nuts"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{1: (arrays, meta), 4: (arrays, meta)}: both processes, run side by side."""
    folder = tmp_path_factory.mktemp("devices")
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    runs = [{**r, "seed": 7} for r in RUNS]
    procs = {}
    for n in (1, 4):
        spec_runs = [{**r, "repeat": n == 4 and r["name"] in REPEATED} for r in runs]
        if n == 4:
            spec_runs += [{**r, "seed": 7} for r in MESH_RUNS]
        procs[n] = launch.start(
            {"model": MODEL, "runs": spec_runs},
            folder,
            f"devices{n}",
            num_devices=n,
            cache_dir=cache,
        )
    return {n: launch.finish(proc, folder, f"devices{n}") for n, proc in procs.items()}


def test_four_devices_are_seen_and_used(results):
    arrays, meta = results[4]
    assert len(meta["devices"]) == 4
    for name in ["sgld", "sgld#2", "nuts", "nuts#2"]:  # 4 chains
        run = meta["runs"][name]
        assert run["num_devices"] == 4, name
        # every draw and statistic array is sharded over all 4 devices, one shard each
        assert all(leaf == [4, 4] for leaf in run["leaf_devices"]), (name, run["leaf_devices"])
        assert run["mesh"] == {"chains": 4, "data": 1}, name
    # 6 chains: 2 chain blocks (the largest device count dividing them), 2 data shards each;
    # the draws are split over the chain blocks and replicated over the data shards
    assert meta["runs"]["sghmc"]["mesh"] == {"chains": 2, "data": 2}
    assert meta["runs"]["sghmc"]["num_devices"] == 4
    assert all(leaf == [4, 4] for leaf in meta["runs"]["sghmc"]["leaf_devices"])
    for name, mesh in [("sgld@data", [1, 4]), ("sgld@mixed", [2, 2]), ("nuts@data", [1, 4])]:
        assert meta["runs"][name]["mesh"] == {"chains": mesh[0], "data": mesh[1]}, name
    # the chains on different devices are different chains (not one key copied to all)
    draws = arrays["nuts/draws"]
    for i in range(draws.shape[0]):
        for j in range(i):
            assert not np.allclose(draws[i], draws[j])


def test_one_device_run_uses_one_device(results):
    _, meta = results[1]
    assert len(meta["devices"]) == 1
    for name, run in meta["runs"].items():
        assert run["num_devices"] == 1, name
        assert all(leaf == [1, 1] for leaf in run["leaf_devices"]), name


@pytest.mark.parametrize("name", SG_RUNS)
def test_sgmcmc_draws_agree_across_device_counts(results, name):
    one, four = results[1][0], results[4][0]
    base = name.split("@")[0]
    one = {k.replace(base, name, 1): v for k, v in one.items() if k.startswith(f"{base}/")}
    assert one[f"{name}/draws"].shape == four[f"{name}/draws"].shape
    assert np.all(np.isfinite(one[f"{name}/draws"]))
    difference = np.max(np.abs(one[f"{name}/draws"] - four[f"{name}/draws"]))
    assert difference <= SG_TOLERANCE, f"{name}: max |draws_1 - draws_4| = {difference:.3g}"
    np.testing.assert_array_equal(one[f"{name}/stat/stopped"], four[f"{name}/stat/stopped"])
    np.testing.assert_array_equal(one[f"{name}/stat/step_size"], four[f"{name}/stat/step_size"])
    np.testing.assert_allclose(one[f"{name}/stat/lp"], four[f"{name}/stat/lp"], rtol=1e-5)


def _mean_and_mcse(draws):
    azs = pytest.importorskip("arviz_stats")
    return draws.mean(axis=(0, 1)), np.asarray(azs.mcse(draws, chain_axis=0, draw_axis=1))


@pytest.mark.parametrize("name", ["nuts", "nuts@data"])
def test_nuts_draws_agree_in_distribution_across_device_counts(results, name):
    one, four = results[1][0]["nuts/draws"], results[4][0][f"{name}/draws"]
    assert one.shape == four.shape == (4, 500, 4)
    mean_1, mcse_1 = _mean_and_mcse(one)
    mean_4, mcse_4 = _mean_and_mcse(four)
    z = (mean_1 - mean_4) / np.hypot(mcse_1, mcse_4)
    assert np.all(np.abs(z) < Z_MAX), f"z-scores of the mean differences: {z}"
    exact, _ = lg.exact_posterior(lg.build(**MODEL).posterior)
    for mean, mcse in [(mean_1, mcse_1), (mean_4, mcse_4)]:
        z_exact = (mean - exact) / mcse
        assert np.all(np.abs(z_exact) < Z_MAX), f"z-scores against the exact mean: {z_exact}"
    assert not results[1][0]["nuts/stat/diverging"].any()
    assert not results[4][0][f"{name}/stat/diverging"].any()


@pytest.mark.parametrize("name", sorted(REPEATED))
def test_same_key_same_devices_is_bit_identical(results, name):
    arrays = results[4][0]
    keys = [k for k in arrays if k.startswith(f"{name}/")]
    assert keys
    for k in keys:
        np.testing.assert_array_equal(arrays[k], arrays[k.replace(name, f"{name}#2", 1)], k)
