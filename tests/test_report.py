"""`bo.report`: one self-contained HTML file whose standard plots all render on real runs."""

import base64
import io
import re

import arviz as az
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from PIL import Image

import bayesover as bo
from bayesover.diagnostics import report as report_module

IMAGE = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


# -- real runs, one program each ------------------------------------------------------------------
@pytest.fixture(scope="module")
def regression():
    """10-D diabetes regression: HMC (energy, as NUTS, at half NUTS's compile time), SGLD and
    a deep ensemble, each with held-out metrics. Equal draw counts share one compile of the
    tree's function-space quantities."""
    problem = bo.builders.load_problem("regression_mlp")
    key = jax.random.key(0)
    runs = {
        name: bo.sample(
            problem.posterior,
            sampler,
            key=key,
            num_chains=2,
            num_warmup=40,
            num_draws=30,
            progress=False,
        )
        for name, sampler in (("HMC", bo.HMC()), ("SGLD", bo.SGLD(step_size=1e-5, batch_size=64)))
    }
    runs["deep ensemble"] = bo.deep_ensemble(problem.posterior, 4, None, 200, key=key)
    return {
        name: bo.to_datatree(ensemble, problem.posterior, test=problem.test)
        for name, ensemble in runs.items()
    }


@pytest.fixture(scope="module")
def gap():
    """1-D regression with a gap in the inputs, sampled with SGLD."""
    data = bo.data.gap_regression_1d(jax.random.key(1), 40)
    net = eqx.nn.MLP(1, 1, 16, 1, activation=jnp.tanh, key=jax.random.key(0))
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(scale=0.1))
    posterior = bo.Posterior(model, data)
    ensemble = bo.sample(
        posterior,
        bo.SGLD(step_size=1e-5, batch_size=20),
        key=jax.random.key(0),
        num_chains=2,
        num_warmup=50,
        num_draws=50,
        progress=False,
    )
    return bo.to_datatree(ensemble, posterior)


@pytest.fixture(scope="module")
def classification():
    """Breast-cancer classifier, a deep ensemble of four members, with held-out metrics."""
    problem = bo.builders.load_problem("classifier_mlp")
    ensemble = bo.deep_ensemble(problem.posterior, 4, None, 200, key=jax.random.key(0))
    return bo.to_datatree(ensemble, problem.posterior, test=problem.test)


def _lens():
    n, eps = [10, 20, 40, 80], [0.01, 0.1, 1.0, 10.0]
    return xr.Dataset(
        {
            "regret": ("n", [1.0, 2.0, 2.5, 2.8]),
            "regret_stderr": ("n", [0.1, 0.2, 0.2, 0.1]),
            "bound": ("n", [2.0, 3.0, 3.5, 4.0]),
            "neg_log_weight": ("eps", [10.0, 6.0, 3.0, 1.0]),
            "neg_log_weight_stderr": ("eps", [1.0, 0.5, 0.3, 0.1]),
        },
        coords={"n": n, "eps": eps},
    )


# -- checks ---------------------------------------------------------------------------------------
def _images(text: str) -> list[np.ndarray]:
    """Every embedded PNG, decoded; each must be a real picture, not an empty canvas."""
    images = []
    for payload in IMAGE.findall(text):
        image = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("L"))
        assert image.shape[0] > 50 and image.shape[1] > 50
        assert np.ptp(image) > 0, "blank image"
        images.append(image)
    assert len(images) == text.count("data:image/png;base64,")
    assert len(images) == text.count("<img ")
    return images


def _self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>") and text.count("<html") == 1
    assert text.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", text, flags=re.I)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert "@import" not in text and "url(" not in text


def _unavailable(text: str) -> list[str]:
    return re.findall(r'class="unavailable">([^<]*)<', text)


@pytest.mark.slow
# -- reports of real runs -------------------------------------------------------------------------
def test_three_runs_comparison_then_one_section_each(regression, tmp_path):
    figures = plt.get_fignums()
    path = report_module.report(regression, tmp_path / "report.html", title="HMC, SGLD, DE")
    assert path == tmp_path / "report.html" and path.is_file()
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert plt.get_fignums() == figures  # every figure closed
    text = path.read_text()
    _self_contained(text)
    assert path.stat().st_size < 3_000_000
    assert _unavailable(text) == []
    # comparison: verdicts, metrics side by side, LOO of the two samplers, DE left out
    comparison = text[text.index('<section id="comparison">') : text.index("</section>")]
    for name in regression:
        assert f"<td>{name}</td>" in comparison
    for metric in ("nll", "rmse", "coverage_90"):
        assert f"<th>{metric}</th>" in comparison
    assert "<th>elpd</th>" in comparison and "elpd_diff" in comparison
    assert "deep ensemble (one draw per chain" in comparison
    # one section per run, in order, each with config, verdict and metrics
    starts = [text.index(f"<h2>Run: {name}</h2>") for name in regression]
    assert starts == sorted(starts) and starts[0] > text.index("<h2>Comparison</h2>")
    assert text.count('<table class="config">') == 3
    assert text.count('<table class="diagnostics"') == 3
    assert text.count("<h3>Predictive metrics</h3>") == 3 and text.count("<td>rmse</td>") == 3
    assert "<td>sampler</td><td>HMC(" in text and "SGLD(step_size=1e-05" in text
    # plots: HMC trace, rank, ESS, energy, check; SGLD the same less energy; DE a check only
    alts = re.findall(r'<img alt="([^"]*)"', text)
    assert alts == [
        "LOO comparison",
        *("trace plots", "rank plots", "ESS plots", "energy plot", "posterior predictive check"),
        *("trace plots", "rank plots", "ESS plots", "posterior predictive check"),
        "posterior predictive check",
    ]
    assert len(_images(text)) == 11
    assert "No energy plot" in text and "trace, rank, ESS and energy plots do not apply" in text
    assert "weight-space R-hat is meaningless" in text


def test_one_tree_1d_regression_has_bands_and_lens(gap, tmp_path):
    tree = gap.copy()
    tree["lens"] = xr.DataTree(_lens())
    text = report_module.report(tree, tmp_path / "gap.html").read_text()
    _self_contained(text)
    assert _unavailable(text) == []
    assert "Comparison" not in text  # one run: no comparison section
    alts = re.findall(r'<img alt="([^"]*)"', text)
    assert alts == [
        *("trace plots", "rank plots", "ESS plots", "predictive bands"),
        *("regret vs n", "-log W(eps) vs eps"),
    ]
    assert len(_images(text)) == 6
    assert "<h3>Lens</h3>" in text and "No predictive metrics" in text


@pytest.mark.slow
def test_classification_has_a_reliability_diagram(classification, tmp_path):
    text = report_module.report({"DE": classification}, tmp_path / "c.html").read_text()
    _self_contained(text)
    assert _unavailable(text) == []
    assert re.findall(r'<img alt="([^"]*)"', text) == ["reliability diagram"]
    assert len(_images(text)) == 1
    for metric in ("nll", "accuracy", "brier", "ece"):
        assert f"<td>{metric}</td>" in text
    assert "One draw per chain" in text


def test_numpyro_style_tree_with_classes_and_no_extras(tmp_path):
    """A tree of named sites and one of class probabilities, built without sampling."""
    rng = np.random.default_rng(0)
    sites = az.from_dict(
        {
            "posterior": {"mu": rng.normal(size=(2, 40)), "theta": rng.normal(size=(2, 40, 8))},
            "log_likelihood": {"y": rng.normal(-1, 0.1, size=(2, 40, 8))},
        }
    )
    sites.attrs["task"] = "numpyro"
    probs = rng.dirichlet(np.ones(3), size=(2, 40, 5))
    classes = az.from_dict(
        {"posterior": {"f": probs, "log_lik": rng.normal(size=(2, 40))}},
        dims={"f": ["probe", "class"]},
    )
    classes.attrs.update(task="classification", name="SGLD")
    text = report_module.report({"sites": sites, "classes": classes}, tmp_path / "s.html")
    text = text.read_text()
    _self_contained(text)
    alts = re.findall(r'<img alt="([^"]*)"', text)
    assert alts.count("trace plots") == 2 and alts.count("rank plots") == 2
    assert len(_images(text)) == len(alts)
    assert "No LOO comparison" in text and "classes (no log_likelihood group)" in text
    assert _unavailable(text) == []
    assert "No reliability diagram" in text and "No predictive plot for this task" in text


# -- robustness -----------------------------------------------------------------------------------
def test_a_failing_plot_becomes_a_sentence_and_text_is_escaped(gap, tmp_path, monkeypatch):
    def boom(tree):
        raise RuntimeError("no <bands> today")

    monkeypatch.setattr(report_module, "_bands_figure", boom)
    name = "<script>alert('x')</script> & co"
    text = report_module.report({name: gap}, tmp_path / "r.html", title="a < b").read_text()
    _self_contained(text)
    assert _unavailable(text) == ["plot unavailable: RuntimeError: no &lt;bands&gt; today"]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in text
    assert "<title>a &lt; b</title>" in text
    assert len(_images(text)) == 3  # trace, rank, ESS still there


def test_overwrite_false_refuses_an_existing_report(gap, tmp_path, monkeypatch):
    monkeypatch.setattr(report_module, "_document", lambda runs, title: "new")  # files only
    path = tmp_path / "r.html"
    path.write_text("old")
    with pytest.raises(FileExistsError, match=re.escape(str(path))):
        report_module.report(gap, path, overwrite=False)
    assert path.read_text() == "old"
    report_module.report(gap, path)
    assert path.read_text() == "new"
    report_module.report(gap, tmp_path / "sub" / "new.html", overwrite=False)  # folder made


def test_a_failure_while_writing_leaves_the_old_report(gap, tmp_path, monkeypatch):
    path = tmp_path / "r.html"
    path.write_text("old")
    with monkeypatch.context() as patch:
        patch.setattr(report_module, "_document", lambda runs, title: "new")

        def fail(*args):
            raise OSError("disk full")

        patch.setattr(report_module.os, "replace", fail)
        with pytest.raises(OSError, match="disk full"):
            report_module.report(gap, path)
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone too

    def interrupt(*args):
        raise KeyboardInterrupt  # not an Exception: stops the report, like Ctrl-C

    monkeypatch.setattr(report_module, "_diagnose", interrupt)
    with pytest.raises(KeyboardInterrupt):
        report_module.report(gap, path)
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_bad_input_names_the_argument(gap, tmp_path):
    path = tmp_path / "r.html"
    with pytest.raises(TypeError, match="`trees`"):
        report_module.report(42, path)
    with pytest.raises(TypeError, match="`trees`"):
        report_module.report([gap], path)
    with pytest.raises(ValueError, match="`trees`"):
        report_module.report({}, path)
    with pytest.raises(TypeError, match=r"`trees\['a'\]`"):
        report_module.report({"a": gap["posterior"].to_dataset()}, path)
    with pytest.raises(TypeError, match="`trees`"):
        report_module.report({1: gap}, path)
    with pytest.raises(ValueError, match="`trees`.*no `posterior` group"):
        report_module.report(xr.DataTree(), path)
    with pytest.raises(ValueError, match="`trees`.*'b'.*no `posterior` group"):
        report_module.report({"a": gap, "b": gap.drop_nodes("posterior")}, path)
    with pytest.raises(TypeError, match="`path`"):
        report_module.report(gap, 3)
    with pytest.raises(ValueError, match="`path`.*folder"):
        report_module.report(gap, tmp_path)
    with pytest.raises(TypeError, match="`title`"):
        report_module.report(gap, path, title=3)
    with pytest.raises(TypeError, match="`overwrite`"):
        report_module.report(gap, path, overwrite="yes")
    assert not path.exists()


def test_exported_as_bo_report():
    assert bo.report is report_module.report
