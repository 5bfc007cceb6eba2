"""`bo.report`: one self-contained HTML file whose standard plots all render on real runs."""

import base64
import errno
import html.parser
import io
import pathlib
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
from bayesover.diagnostics import _report as report_module

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
        *("trace plots", "rank plots", "local ESS plots", "energy plot"),
        "posterior predictive check",
        *("trace plots", "rank plots", "local ESS plots", "posterior predictive check"),
        "posterior predictive check",
    ]
    assert len(_images(text)) == 11
    assert "No energy plot" in text and "trace, rank, ESS and energy plots do not apply" in text
    assert "weight-space R-hat is meaningless" in text


@pytest.fixture(scope="module")
def gap_report(gap, tmp_path_factory):
    """The report of the 1-D regression with a lens group, written once for several tests."""
    tree = gap.copy()
    tree["lens"] = xr.DataTree(_lens())
    return report_module.report(tree, tmp_path_factory.mktemp("gap") / "gap.html").read_text()


def test_one_tree_1d_regression_has_bands_and_lens(gap_report):
    text = gap_report
    _self_contained(text)
    assert _unavailable(text) == []
    assert "Comparison" not in text  # one run: no comparison section
    alts = re.findall(r'<img alt="([^"]*)"', text)
    assert alts == [
        *("trace plots", "rank plots", "local ESS plots", "predictive bands"),
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
    # 3 classes shown: 6 // 3 = 2 probe points of 5, each its own trace panel
    assert "2 of 5 probe points, evenly spaced (3 left out)" in text


class _VerdictRows(html.parser.HTMLParser):
    """The verdict rows' classes, each with whether it is folded inside `<details>`, and the
    text of each `<summary>`."""

    def __init__(self):
        super().__init__()
        self.rows, self.summaries, self._details, self._in_summary = [], [], 0, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._details += tag == "details"
        if tag == "summary":
            self._in_summary = True
            self.summaries.append("")
        if tag == "tr" and "class" in attrs:
            self.rows.append((attrs["class"], self._details > 0))

    def handle_endtag(self, tag):
        self._details -= tag == "details"
        self._in_summary &= tag != "summary"

    def handle_data(self, data):
        if self._in_summary:
            self.summaries[-1] += data


def _verdict_rows(page: str) -> _VerdictRows:
    parser = _VerdictRows()
    parser.feed(page)
    return parser


def test_verdict_table_shows_fail_then_warn_and_folds_ok_and_na(rng_tree):
    d = bo.diagnose(rng_tree)
    assert {"fail", "warn", "ok", "n/a"} <= set(d.table["verdict"])
    parser = _verdict_rows(report_module._verdict_html(d))
    shown = [c for c, folded in parser.rows if not folded]
    folded = [c for c, folded in parser.rows if folded]
    assert shown == sorted(shown, key=["fail", "warn"].index)  # fail rows, then warn rows
    assert set(shown) == {"fail", "warn"} and set(folded) == {"ok", "n/a"}
    assert len(parser.rows) == len(d.table)  # every line is somewhere
    assert parser.summaries == [f"{d.counts['ok']} ok, {d.counts['n/a']} n/a"]


def test_healthy_run_verdict_is_folded_above_the_plots(gap_report):
    """SGLD's 2 x 50 draws fail: at most 10 variables in the open table (fail first), the
    other failing ones folded under their count, then the ok and n/a lines under theirs."""
    section = gap_report[gap_report.index("<h3>Verdict</h3>") : gap_report.index("<img ")]
    parser = _verdict_rows(section)
    shown = [c for c, folded in parser.rows if not folded]
    assert shown == sorted(shown, key=["fail", "warn"].index)
    assert set(shown) <= {"fail", "warn"} and 0 < len(shown) <= 10 + 3  # + the few checks
    counts = {v: sum(c == v for c, _ in parser.rows) for v in ("ok", "n/a")}
    assert parser.summaries[-1] == ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    if len(parser.summaries) == 2:
        assert re.fullmatch(r"\d+ more variables that fail or warn \(.*\)", parser.summaries[0])


@pytest.fixture(scope="module")
def rng_tree():
    """Lines of every verdict: shifted chains fail, 0.5% divergences warn, a constant is
    n/a, the rest ok."""
    rng = np.random.default_rng(0)
    diverging = np.zeros((4, 200), bool)
    diverging[0, :4] = True
    return az.from_dict(
        {
            "posterior": {
                "shifted": rng.normal(size=(4, 200)) + np.array([0.0, 0.0, 0.0, 3.0])[:, None],
                "c": np.ones((4, 200)),
                "x": rng.normal(size=(4, 200, 5)),
            },
            "sample_stats": {"diverging": diverging},
        }
    )


def test_loo_comparison_numbers_are_unrounded():
    """elpd -28.53 against -29.29 with se ~ 6: ArviZ's rounding shows whole numbers (-29,
    diff -1); the report shows 2 decimals of the unrounded values."""
    rng = np.random.default_rng(0)

    def run(elpd):
        pointwise = rng.normal(size=10) * 2.0
        pointwise += (elpd - pointwise.sum()) / 10  # sums to `elpd` exactly
        loglik = pointwise + 1e-4 * rng.normal(size=(4, 100, 10))  # ~ the same in every draw
        return az.from_dict(
            {"posterior": {"mu": rng.normal(size=(4, 100))}, "log_likelihood": {"y": loglik}}
        )

    runs = {"a": run(-28.53), "b": run(-29.29)}
    rounded = az.compare(runs)  # what this fixes: ArviZ's "auto" rounding by the se
    assert all(float(x).is_integer() for x in (*rounded["elpd"], *rounded["elpd_diff"]))
    text = report_module._loo_comparison(runs)
    cells = re.findall(r'<td class="num">([^<]*)</td>', text)
    assert "-28.53" in cells and "-29.29" in cells and "-0.76" in cells
    assert "-29" not in cells and "-1" not in cells
    exact = az.compare(runs, round_to="none")
    for name in runs:
        row = re.search(rf"<tr><td>{name}</td>(.*?)</tr>", text)[1]
        values = re.findall(r'<td class="num">([^<]*)</td>', row)
        for column, value in zip(["elpd", "se", "elpd_diff", "dse"], values[1:5], strict=True):
            assert value == f"{exact.loc[name, column]:.2f}", column


def test_convergence_plots_one_trace_panel_per_probe_and_local_ess(gap, gap_report, monkeypatch):
    subset, left_out = report_module._diagnosed_tree(gap)
    assert gap["posterior"].sizes["probe"] == 25 and subset["posterior"].sizes["probe"] == 6
    assert left_out == ["6 of 25 probe points, evenly spaced (19 left out)"]
    assert "6 of 25 probe points, evenly spaced (19 left out)" in gap_report
    figures = {}
    draw = report_module._azp_figure

    def record(function, *args, **kwargs):
        figures[function] = (args[0], draw(function, *args, **kwargs))
        return figures[function][1]

    monkeypatch.setattr(report_module, "_azp_figure", record)
    report_module._convergence(gap)
    trace_tree, trace = figures["plot_trace_dist"]
    names = list(trace_tree["posterior"].data_vars)
    assert names == ["log_lik", "lp", *(f"f[{i}]" for i in (0, 5, 10, 14, 19, 24))]
    assert all(trace_tree["posterior"][n].dims == ("chain", "draw") for n in names)
    assert len(trace.axes) == 2 * len(names)  # a distribution and a trace panel per row
    assert {a.get_ylabel() for a in trace.axes} >= {"f[0]", "f[24]"}
    _, ess = figures["plot_ess"]
    assert ess.get_suptitle().startswith("local ESS")


def test_ess_plot_is_labelled_local_ess(gap_report):
    caption = re.search(
        r'<img alt="local ESS plots"[^>]*><figcaption>([^<]*)</figcaption>', gap_report
    )
    assert caption and caption[1].startswith("Local ESS") and "not the bulk ESS" in caption[1]
    assert 'alt="ESS plots"' not in gap_report


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


def test_a_full_disk_leaves_the_old_report_intact(gap_report, gap, tmp_path, monkeypatch):
    """The disk fills up half-way through the new report: ENOSPC, naming the path; the old
    report's bytes are intact and no temporary file is left."""
    path = tmp_path / "report.html"
    path.write_text(gap_report, encoding="utf-8")
    before = path.read_bytes()
    write_text = pathlib.Path.write_text

    def disk_full(self, data, *args, **kwargs):
        write_text(self, data[: len(data) // 2], *args, **kwargs)  # part of it lands
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report_module, "_document", lambda runs, title: "new " * 10_000)
    monkeypatch.setattr(pathlib.Path, "write_text", disk_full)
    with pytest.raises(OSError) as error:
        report_module.report(gap, path)
    monkeypatch.undo()
    assert error.value.errno == errno.ENOSPC
    assert str(path) in str(error.value) and "No space left" in str(error.value)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


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
