"""The ready models build (the command line is tested in test_cli.py)."""

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
    module = bo.builders.load_module(ROOT / "models" / "teacher_student.py")
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
