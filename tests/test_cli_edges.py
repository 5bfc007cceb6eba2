"""The command line's edges: answers without JAX, `--out` checked first, `--name`, `--option`,
`--checkpoint` (issue 11)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

import bayesover as bo
from bayesover.cli._main import _option, main
from bayesover.inference import _checkpoint

# -- no JAX for help and argument errors ----------------------------------------------------------
# One subprocess runs every case in turn and records, after each, whether `jax` was imported.
_SCRIPT = r"""
import contextlib, io, json, os, pathlib, sys
from bayesover.cli import _main as cli

root = pathlib.Path(sys.argv[1])
(root / "file").write_text("a file")
(root / "full").mkdir()
(root / "full" / "old.nc").write_bytes(b"an earlier run")
sample = ["sample", "regression_mlp", "--sampler", "nuts"]
cases = {
    "help": ["--help"],
    "sample help": ["sample", "--help"],
    "demo help": ["demo", "--help"],
    "unknown sampler": ["sample", "regression_mlp", "--sampler", "mcmc", "--out", "x"],
    "bad number": [*sample, "--out", "x", "--chains", "0"],
    "malformed option": [*sample, "--out", "x", "--option", "width"],
    "twice option": [*sample, "--out", "x", "--option", "a=1", "--option", "a=2"],
    "bad name": [*sample, "--out", "x", "--name", "a/b"],
    "out is a file": [*sample, "--out", str(root / "file")],
    "out not empty": [*sample, "--out", str(root / "full")],
    "demo out not empty": ["demo", "--out", str(root / "full")],
    "name exists": [*sample, "--out", str(root / "full"), "--name", "old"],
    "out not writable": [*sample, "--out", str(root / "new")],
    "ensemble checkpoint": [
        "sample", "regression_mlp", "--sampler", "ensemble", "--out", str(root / "e"),
        "--checkpoint", str(root / "ck.npz"),
    ],
    "checkpoint inside out": [
        *sample, "--out", str(root / "new"), "--checkpoint", str(root / "new" / "ck.npz"),
    ],
}
write_bytes = pathlib.Path.write_bytes

def refuse_probes(self, data):  # a read-only folder, as root ignores permission bits
    if ".probe." in self.name:
        raise PermissionError(13, "Permission denied")
    return write_bytes(self, data)

results = {}
for name, argv in cases.items():
    out, err = io.StringIO(), io.StringIO()
    pathlib.Path.write_bytes = refuse_probes if name == "out not writable" else write_bytes
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit:
            code = exit.code
    pathlib.Path.write_bytes = write_bytes
    results[name] = dict(code=code, out=out.getvalue(), err=err.getvalue(),
                         jax="jax" in sys.modules, files=sorted(os.listdir(root)),
                         full=sorted(os.listdir(root / "full")))
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """The cases of `_SCRIPT`, run in one fresh interpreter."""
    folder = tmp_path_factory.mktemp("light")
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(folder)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "case, code, stream, message",
    [
        ("help", 0, "out", "usage: bayesover"),
        ("sample help", 0, "out", "--checkpoint PATH"),
        ("demo help", 0, "out", "--option KEY=VALUE"),
        ("unknown sampler", 2, "err", "invalid choice: 'mcmc'"),
        ("bad number", 2, "err", "expected a positive integer, got '0'"),
        ("malformed option", 2, "err", "argument --option: expected KEY=VALUE"),
        ("twice option", 2, "err", "--option a is given twice"),
        ("bad name", 2, "err", "argument --name: expected a file name"),
        ("out is a file", 2, "err", "exists and is not a directory"),
        ("out not empty", 2, "err", "not empty; pass --overwrite to replace it, or --name NAME"),
        ("demo out not empty", 2, "err", "not empty; pass --overwrite to replace it\n"),
        ("name exists", 2, "err", "run 'old' exists in"),
        ("out not writable", 2, "err", "`--out` "),
        ("ensemble checkpoint", 2, "err", "--checkpoint is not supported with --sampler ensemble"),
        ("checkpoint inside out", 2, "err", "is inside --out"),
    ],
)
def test_help_and_argument_errors_answer_without_importing_jax(light, case, code, stream, message):
    result = light[case]
    assert result["code"] == code
    assert message in result[stream]
    assert not result["jax"], f"{case!r} imported JAX"
    if code == 2:  # the error last (after the usage for argparse's), nothing written
        lines = result["err"].splitlines()
        assert lines[-1].startswith("bayesover ") and ": error: " in lines[-1]
        assert len(lines) == 1 or "error: argument " in lines[-1]
        assert result["files"] == ["file", "full"] and result["full"] == ["old.nc"]


def test_help_shows_the_new_options(light):
    text = light["sample help"]["out"]
    for flag in ("--name NAME", "--option KEY=VALUE", "--checkpoint PATH", "--overwrite"):
        assert flag in text
    assert "cannot write in" in light["out not writable"]["err"]


# -- option values --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("width=32", ("width", 32)),
        ("scale=0.5", ("scale", 0.5)),
        ("flag=True", ("flag", True)),
        ("sizes=[1, 2]", ("sizes", [1, 2])),
        ("dataset=digits", ("dataset", "digits")),
        ("dataset='digits'", ("dataset", "digits")),
        ("expr=a=b", ("expr", "a=b")),
        ("empty=", ("empty", "")),
        (" width = 8", ("width", 8)),
    ],
)
def test_option_values_are_literals_else_strings(text, expected):
    assert _option(text) == expected


def test_an_option_build_does_not_take_is_named_with_the_accepted_ones(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["sample", "regression_mlp", "--sampler", "nuts", "--out", str(out)]
    assert main([*argv, "--option", "widht=8", "--option", "width=8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--option widht: not an option of model 'regression_mlp'" in err
    assert "accepts width, test_fraction" in err
    assert not out.exists()


# -- --name, --option and --checkpoint on real (tiny) runs ----------------------------------------
TINY = ["--option", "num_points=20", "--option", "num_features=2", "--chains", "2"]
TINY += ["--warmup", "20", "--draws", "10", "--thinning", "2", "--quiet"]


def _sample(sampler, out, *extra):
    argv = ["sample", "linear_gaussian", "--sampler", sampler, *TINY, "--out", str(out)]
    return main([*argv, *extra])


def _posterior(path):
    dataset = bo.load_datatree(path)["posterior"].to_dataset()
    return {name: np.asarray(value) for name, value in dataset.data_vars.items()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A run folder: `sgld.nc` from a plain run (into an existing empty folder), a stand-in
    report, then `second.nc` added by `--name second --checkpoint`."""
    base = tmp_path_factory.mktemp("named")
    out = base / "runs"
    out.mkdir()  # an empty folder is a fine --out
    assert _sample("sgld", out) == 0
    (out / "report.html").write_text("the earlier report")
    checkpoint = base / "ck" / "second.npz"  # its folder is made
    assert _sample("nuts", out, "--name", "second", "--checkpoint", str(checkpoint)) == 0
    return out, checkpoint


def test_name_adds_a_run_beside_the_others_and_report_covers_all(folder, capsys):
    out, _ = folder
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "second.nc", "sgld.nc"]
    assert (out / "report.html").read_text() == "the earlier report"  # not wiped
    assert bo.load_datatree(out / "second.nc").attrs["name"] == "second"
    assert main(["report", str(out), "--quiet"]) == 0
    html = (out / "report.html").read_text()
    assert "second" in html and "sgld" in html
    capsys.readouterr()
    assert _sample("nuts", out, "--name", "second") == 2  # an existing name needs --overwrite
    assert "pass --overwrite to replace that run" in capsys.readouterr().err


def test_options_reach_build(folder):
    out, _ = folder
    tree = bo.load_datatree(out / "sgld.nc")
    sizes = tree["log_likelihood"].to_dataset().sizes
    assert 20 in {size for dim, size in sizes.items() if dim not in ("chain", "draw")}


def test_a_second_identical_run_resumes_from_the_checkpoint(folder):
    out, checkpoint = folder
    assert checkpoint.is_file()
    before = checkpoint.stat().st_mtime_ns, checkpoint.read_bytes()
    argv = ["--name", "third", "--checkpoint", str(checkpoint)]
    assert _sample("nuts", out, *argv) == 0
    # complete already: nothing sampled and nothing saved again, the same draws
    assert (checkpoint.stat().st_mtime_ns, checkpoint.read_bytes()) == before
    first, again = _posterior(out / "second.nc"), _posterior(out / "third.nc")
    assert first.keys() == again.keys()
    assert all(np.array_equal(first[name], again[name]) for name in first)


def test_an_interrupted_run_resumes_to_the_uninterrupted_draws(folder, tmp_path, monkeypatch):
    out, _ = folder
    checkpoint = tmp_path / "ck.npz"
    save, calls = _checkpoint.save, []

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:  # after warm-up and two chunks of draws
            raise KeyboardInterrupt

    target = tmp_path / "run"
    argv = ["--name", "resumed", "--checkpoint", str(checkpoint)]
    monkeypatch.setattr(_checkpoint, "save", save_then_stop)
    assert _sample("nuts", target, *argv) == 130
    assert checkpoint.is_file() and not (target / "resumed.nc").exists()
    saves = []
    monkeypatch.setattr(_checkpoint, "save", lambda *a, **k: saves.append(save(*a, **k)))
    assert _sample("nuts", target, *argv) == 0
    assert len(saves) == 10 - 2  # resumed after draw 2: only the remaining chunks ran
    expected, resumed = _posterior(out / "second.nc"), _posterior(target / "resumed.nc")
    assert all(np.array_equal(expected[name], resumed[name]) for name in expected)


def _config(path):
    return json.loads(bo.load_datatree(path).attrs["bayesover_config"])


def test_thinning_is_kept_by_nuts_too(folder):
    out, _ = folder
    assert _config(out / "second.nc")["thinning"] == 2  # --thinning reached bo.sample


def test_mclmc_runs_from_the_command_line_and_resumes_from_its_checkpoint(tmp_path):
    out, checkpoint = tmp_path / "runs", tmp_path / "mclmc.npz"
    at = TINY.index("--thinning")
    tiny = TINY[:at] + TINY[at + 2 :]  # its default thinning: 10
    argv = ["sample", "linear_gaussian", "--sampler", "mclmc", "--step-size", "0.5", *tiny]
    assert main([*argv, "--out", str(out), "--checkpoint", str(checkpoint)]) == 0
    config = _config(out / "mclmc.nc")
    assert (config["sampler"], config["thinning"]) == ("MCLMC(step_size=0.5)", 10)
    stats = bo.load_datatree(out / "mclmc.nc")["sample_stats"].to_dataset()
    assert {"energy_change", "step_size", "L"} <= set(stats.data_vars)
    again = ["--out", str(out), "--name", "again", "--checkpoint", str(checkpoint)]
    assert main([*argv, *again]) == 0
    first, resumed = _posterior(out / "mclmc.nc"), _posterior(out / "again.nc")
    assert all(np.array_equal(first[name], resumed[name]) for name in first)


def test_adjusted_mclmc_starts_its_tuner_at_a_small_step_on_networks(tmp_path):
    out = tmp_path / "runs"
    assert _sample("adjusted-mclmc", out) == 0
    config = _config(out / "adjusted-mclmc.nc")
    assert config["sampler"] == "AdjustedMCLMC(step_size=0.1)" and config["thinning"] == 2


def test_cycle_length_is_refused_for_mclmc(capsys):
    argv = ["sample", "linear_gaussian", "--sampler", "mclmc", "--cycle-length", "10"]
    assert main([*argv, "--out", "never"]) == 2
    assert "--cycle-length is a schedule of SG-MCMC, not of --sampler mclmc" in (
        capsys.readouterr().err
    )


def test_a_langevin_ensemble_is_map_members_then_mclmc(tmp_path, capsys):
    out = tmp_path / "runs"
    assert _sample("langevin-ensemble", out, "--map-steps", "50") == 0
    config = _config(out / "langevin-ensemble.nc")
    assert config["sampler_name"] == "deep_ensemble+MCLMC"
    assert (config["num_chains"], config["num_draws"], config["thinning"]) == (2, 10, 2)
    assert config["map_num_steps"] == 50
    checkpoint = ["--checkpoint", str(tmp_path / "ck.npz")]
    assert _sample("langevin-ensemble", tmp_path / "c", *checkpoint) == 2
    assert "not supported with --sampler langevin-ensemble" in capsys.readouterr().err
