"""The `bayesover` command line: demo, sample, diagnose, report, and bad input."""

import subprocess
import sys

import pytest
from conftest import ROOT

import bayesover as bo
from bayesover.cli._main import main


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """One quick demo run (every step of the real demo at tiny sizes), shared by the tests."""
    out = tmp_path_factory.mktemp("runs") / "demo"
    code = main(["demo", "--quick", "--max-tree-depth", "4", "--out", str(out), "--quiet"])
    assert code == 0
    return out


@pytest.mark.slow
def test_demo_writes_trees_and_a_report_and_prints_verdicts(demo_dir, capsys):
    names = sorted(p.name for p in demo_dir.iterdir())
    assert names == ["ensemble.nc", "nuts.nc", "psgld.nc", "report.html", "timings.json"]
    tree = bo.load_datatree(demo_dir / "nuts.nc")
    assert {"posterior", "sample_stats", "log_likelihood", "predictive_metrics"} <= set(
        tree.children
    )
    html = (demo_dir / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "data:image/png;base64" in html
    assert not list(demo_dir.parent.glob(".demo.*"))  # no temporary directories left behind


def test_demo_refuses_an_existing_directory_without_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.nc").write_bytes(b"earlier results")
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not empty; pass --overwrite" in err
    assert [p.name for p in out.iterdir()] == ["keep.nc"]
    assert (out / "keep.nc").read_bytes() == b"earlier results"


@pytest.mark.slow
def test_diagnose_and_report_read_a_run_directory(demo_dir, tmp_path, capsys):
    assert main(["diagnose", str(demo_dir)]) == 0
    out = capsys.readouterr().out
    for name in ("nuts", "psgld", "ensemble"):
        assert f"== {name}: verdict" in out
    target = tmp_path / "again.html"
    assert main(["report", str(demo_dir), "--out", str(target), "--quiet"]) == 0
    assert target.stat().st_size > 10_000


def test_sample_writes_one_tree_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["sample", "regression_mlp", "--sampler", "ensemble", "--chains", "2"]
    args += ["--map-steps", "50", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ensemble.nc"]
    capsys.readouterr()
    assert main(args) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_corrupt_tree_is_one_clear_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "bad.nc").write_bytes(b"definitely not netcdf" * 50)
    for command in ("diagnose", "report"):
        assert main([command, str(run)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"bayesover {command}: error:") and err.count("\n") == 1
        assert "not a readable DataTree" in err
    assert not (run / "report.html").exists()
    assert main(["diagnose", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "holds no .nc" in capsys.readouterr().err


def test_bad_model_files_are_one_clear_line(tmp_path, capsys):
    def error(*extra):
        code = main(["sample", *extra, "--sampler", "nuts", "--out", str(tmp_path / "o")])
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith("bayesover sample: error:") and err.count("\n") == 1
        return err

    assert "does not exist" in error(str(tmp_path / "missing.py"))
    assert "neither a file nor a name" in error("no_such_model")
    broken = tmp_path / "broken.py"
    broken.write_text("def build(:\n")
    assert "not valid Python" in error(str(broken))
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert "defines no `build" in error(str(empty))
    raising = tmp_path / "raising.py"
    raising.write_text("def build(seed=0):\n    raise RuntimeError('no data here')\n")
    assert "RuntimeError: no data here" in error(str(raising))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "regression_mlp", "--sampler", "mcmc", "--out", "x"], "invalid choice"),
        (["sample", "regression_mlp", "--sampler", "nuts", "--out", "x", "--chains", "0"], "pos"),
        (["sample", "regression_mlp", "--sampler", "nuts", "--out", "x", "--draws", "-3"], "pos"),
        (["sample", "regression_mlp", "--sampler", "sgld", "--out", "x", "--step-size", "0"], "p"),
        (["sample", "regression_mlp", "--sampler", "nuts", "--out", "x", "--warmup", "a"], "int"),
        (["sample", "regression_mlp", "--sampler", "nuts"], "--out"),
    ],
)
def test_bad_arguments_exit_two_with_a_usage_line(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "sample", "diagnose", "report"])
def test_every_command_has_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "bayesover.cli", command, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0 and "usage: bayesover" in result.stdout
