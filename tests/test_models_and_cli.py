"""The ready models build (the command line is tested in test_cli.py)."""

import jax
import numpy as np
import pytest
from conftest import ROOT

import bayesover as bo
from bayesover.builders import load_problem


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
