"""Data parallelism beyond `bo.sample`'s chains: MAP starts and deep ensembles.

In a subprocess with 4 forced host devices (tests/scripts/data_parallel_runs.py), deep
ensembles (full batch and minibatch) and `bo.sample(init="map")` run on meshes that split the
training data over 2 or 4 devices, and equal the one-device results to float rounding: within
1e-5 for minibatch training and MAP starts, within 2e-5 for 150 full-batch Adam steps (Adam's
normalisation by sqrt(v) amplifies the rounding of the reordered sums; observed 5e-6 on
weights of size ~1). `predict(x, mesh=D)` splits the test points over D devices and gives the
one-device log_prob, mean and variance. The SG-MCMC and NUTS runs on data meshes are in
tests/test_devices.py.
"""

import json
import subprocess
import sys

import pytest
from scripts import launch

# About 70 s in one subprocess: in the slow suite, which CI runs too.
pytestmark = pytest.mark.slow

SCRIPT = launch.SCRIPT.parent / "data_parallel_runs.py"
TOLERANCE = {"deep_None": 2e-5, "deep_32": 1e-5, "sgld_map_init": 1e-5}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data_parallel")
    cache = tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    out = folder / "results.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)],
        cwd=launch.ROOT,
        env=launch.environment(4, cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("devices", [2, 4])
def test_predictive_with_points_split_over_devices_equals_one_device(results, devices):
    result = results[f"predict@{devices}"]
    assert result["devices"] == devices  # the batch program ran partitioned over them
    assert result["max_difference"] <= 1e-5 * max(1.0, result["max_value"]), result


def test_four_devices(results):
    assert results["devices"] == 4


@pytest.mark.parametrize(
    "case",
    [
        "deep_None@1x4",
        "deep_None@2x2",
        "deep_None@4x1",
        "deep_32@1x4",
        "deep_32@2x2",
        "deep_32@4x1",
        "sgld_map_init@1x4",
        "sgld_map_init@2x2",
    ],
)
def test_data_parallel_equals_one_device(results, case):
    result = results[case]
    chains, data = (int(n) for n in case.split("@")[1].split("x"))
    assert result["mesh"] == {"chains": chains, "data": data}
    assert result["max_value"] > 0.1  # the networks moved away from zero
    tolerance = TOLERANCE[case.split("@")[0]]
    assert result["max_difference"] <= tolerance, result
