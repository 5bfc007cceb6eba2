"""The ready models build, and the command line runs the demo and refuses bad input."""

import jax
import numpy as np
import pytest
from conftest import ROOT

import bayesover as bo
from bayesover.builders import load_problem
from bayesover.cli import main


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


def test_demo_fits_by_map_and_prints_metrics(capsys):
    assert main(["demo", "--steps", "300"]) == 0
    out = capsys.readouterr().out
    assert "log density at MAP" in out and "test NLL" in out and "test RMSE" in out
    nll = float(out.split("test NLL (mean -log p(y|x, MAP)):")[1].split()[0])
    assert nll < 1.3  # a standardised target: an untrained predictor scores ~1.42


def test_cli_bad_model_file_is_one_clear_line(tmp_path, capsys):
    assert main(["demo", "--model", str(tmp_path / "missing.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayesover demo: error:") and "does not exist" in err
    broken = tmp_path / "broken.py"
    broken.write_text("def build(:\n")
    assert main(["demo", "--model", str(broken)]) == 2
    assert "not valid Python" in capsys.readouterr().err
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert main(["demo", "--model", str(empty)]) == 2
    assert "defines no `build" in capsys.readouterr().err


def test_cli_rejects_non_positive_numbers(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--steps", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err
