"""The ready models build (the command line is tested in test_cli.py)."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT

import bayesover as bo
from bayesover.cli.builders import OptionError, build_options, load_problem


@pytest.mark.parametrize(
    "name, options",
    [
        ("regression_mlp", {}),
        ("classifier_mlp", {"dataset": "breast_cancer"}),
        ("classifier_mlp", {"dataset": "digits"}),
        ("linear_gaussian", {}),
        ("teacher_student", {"width": 8, "num_points": 20}),
    ],
)
def test_ready_models_build_with_finite_logdensity(name, options):
    problem = load_problem(name, seed=0, **options)
    assert isinstance(problem, bo.Problem)
    assert problem.test is not None and problem.test.num_points > 0
    position = problem.posterior.initial_position(jax.random.key(0))
    assert np.isfinite(float(problem.posterior.logdensity(position)))


def test_teacher_student_targets_follow_the_teacher():
    module = bo.builders.load_module(bo.builders.resolve_model_path("teacher_student"))
    problem = module.build(0, width=4, num_points=200, noise_scale=0.1)
    teacher = module.teacher(0)
    outputs = jax.vmap(teacher)(problem.posterior.data.inputs)[:, 0]
    residual = np.asarray(problem.posterior.data.targets - outputs)
    assert abs(residual.std() - 0.1) < 0.02


def test_build_options_are_the_parameters_after_the_seed():
    def named(seed=0, *, width=16, depth=1): ...
    def open_ended(seed=0, **options): ...
    def positional(seed, width, /, depth=2): ...

    assert build_options(named) == (("width", "depth"), False)
    assert build_options(open_ended) == ((), True)
    assert build_options(positional) == (("depth",), False)


def test_an_option_build_does_not_take_is_refused_before_build_runs(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(
        "calls = []\n"
        "def build(seed=0, *, width=16, test_fraction=0.2):\n"
        "    calls.append(seed)\n"
        "    raise AssertionError('build must not run')\n"
    )
    with pytest.raises(OptionError, match=r"no option 'widht'; it takes width, test_fraction"):
        load_problem(model, seed=0, widht=8)
    with pytest.raises(TypeError) as info:  # an OptionError is a TypeError
        load_problem(model, widht=8, depht=2)
    assert info.value.unknown == ("depht", "widht")
    assert info.value.accepted == ("width", "test_fraction")


def test_a_bundled_model_resolves_from_outside_the_repository(tmp_path):
    """`regression_mlp` ships in `bayesover/models/`: found with no `models/` in the cwd."""
    script = (
        "from pathlib import Path\n"
        "import bayesover\n"
        "from bayesover.cli.builders import load_problem, package_models_dir, resolve_model_path\n"
        "path = resolve_model_path('regression_mlp')\n"
        "assert path.parent == package_models_dir(), path\n"
        "assert path.is_relative_to(Path(bayesover.__file__).parent), path\n"
        "problem = load_problem('regression_mlp', seed=0, width=4)\n"
        "print(problem.name, problem.posterior.model.num_params)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["regression_mlp", str(10 * 4 + 4 + 4 + 1)]


def test_names_are_looked_up_in_the_package_then_in_cwd_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "mine").mkdir(parents=True)
    (tmp_path / "models" / "mine" / "model.py").write_text("def build(seed=0): ...\n")
    (tmp_path / "models" / "regression_mlp.py").write_text("def build(seed=0): ...\n")
    bundled = bo.builders.resolve_model_path("regression_mlp")
    assert bundled == bo.builders.package_models_dir() / "regression_mlp.py"
    assert bo.builders.resolve_model_path("mine/model") == tmp_path / "models" / "mine" / "model.py"
    with pytest.raises(FileNotFoundError, match=r"mine/model.*regression_mlp"):
        bo.builders.resolve_model_path("nope")


def test_model_files_import_their_siblings_relatively(tmp_path):
    (tmp_path / "_shared.py").write_text("LOADS = []\nWIDTH = 3\n")
    (tmp_path / "a.py").write_text(
        "from . import _shared\n_shared.LOADS.append('a')\ndef build(seed=0): ...\n"
    )
    (tmp_path / "b.py").write_text("from ._shared import LOADS, WIDTH\nLOADS.append('b')\n")
    first = bo.builders.load_module(tmp_path / "a.py")
    second = bo.builders.load_module(tmp_path / "b.py")
    assert second.WIDTH == 3
    assert first._shared.LOADS == ["a", "b"]  # one sibling module per folder
    assert str(tmp_path) not in sys.path
