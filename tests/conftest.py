"""Shared fixtures: fixed keys, small problems built once per module; external reference data.

Reference data. Some tests compare against data nobody on this project wrote (posteriordb's
gold-standard draws, the R package `posterior`'s diagnostics), kept outside the repository in
`../shared/validation/` (see `REFERENCE_DATA`). A test that needs it carries
`@pytest.mark.reference_data("posteriordb")` (or `"diagnostics"`); on a clone without the data
it is skipped with the reason and where to point, and with `BAYESOVER_REQUIRE_REFERENCE_DATA=1`
(set by `.ci/run`) it fails instead, so CI never skips it silently.
"""

import os
import sys
from pathlib import Path

import jax
import numpyro  # noqa: F401  before any test file's `import arviz`: see bayesover/diagnostics/__init__.py
import pytest

from bayesover.cli.builders import load_module, package_models_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

REQUIRE_ENV = "BAYESOVER_REQUIRE_REFERENCE_DATA"
# kind -> (environment variable that points at the folder, the folder beside the repository,
#          a file that must be inside, what it is)
REFERENCE_DATA = {
    "posteriordb": (
        "BAYESOVER_POSTERIORDB",
        ROOT.parent / "shared" / "validation" / "posteriordb",
        "posteriors",
        "the Stan posterior database's reference posteriors (github.com/stan-dev/posteriordb)",
    ),
    "diagnostics": (
        "BAYESOVER_DIAGNOSTICS_REFERENCE",
        ROOT.parent / "shared" / "validation" / "diagnostics",
        "reference_posterior.csv",
        "R-hat/ESS/MCSE reference values of the R package `posterior` (ArviZ's test data)",
    ),
}


def reference_folder(kind: str) -> Path | None:
    """The folder of reference data `kind`, or None when it is not on this machine."""
    env, default, inside, _ = REFERENCE_DATA[kind]
    folder = Path(os.environ[env]).expanduser() if os.environ.get(env) else default
    return folder if (folder / inside).exists() else None


def _missing_reason(kind: str) -> str:
    env, default, inside, what = REFERENCE_DATA[kind]
    return (
        f"needs {what}, not found: put it at {default} (with {inside!r} inside) or set {env} "
        f"to its folder; {REQUIRE_ENV}=1 turns this skip into a failure"
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "reference_data(kind): needs external reference data ('posteriordb', 'diagnostics')",
    )


def pytest_runtest_setup(item):
    for mark in item.iter_markers("reference_data"):
        for kind in mark.args:
            if reference_folder(kind) is None:
                reason = _missing_reason(kind)
                if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
                    pytest.fail(f"{REQUIRE_ENV} is set and the test {reason}", pytrace=False)
                pytest.skip(reason)


@pytest.fixture
def key():
    return jax.random.key(0)


def model_file(name: str):
    """Import a model file by name: a bundled one (`bayesover/models/`, e.g. "linear_gaussian")
    or one of the repository's `models/` ("posteriordb/arK"), whatever the working directory."""
    bundled = package_models_dir() / f"{name}.py"
    return load_module(bundled if bundled.is_file() else ROOT / "models" / f"{name}.py")
