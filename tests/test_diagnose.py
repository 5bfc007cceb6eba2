"""`bo.diagnose`: R-hat, ESS and MCSE against the R package `posterior`, verdicts on synthetic
trees, the three renderings, bad input."""

import html.parser
import json
import re
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from conftest import reference_folder

import bayesover as bo
from bayesover.diagnostics import _verdict as verdict_module

STAT_COLUMNS = ["mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"]


def _read_stan_csv(path: Path) -> pd.DataFrame:
    """Draws of one Stan chain: `#` lines are comments, `*__` columns sampler statistics."""
    frame = pd.read_csv(path, comment="#")
    return frame[[c for c in frame.columns if not c.endswith("__")]]


def _r_to_label(name: str) -> str:
    """R `posterior`'s `mu.1` (1-based) as our `mu[0]` (ArviZ's 0-based coordinates)."""
    match = re.fullmatch(r"(.+)\.(\d+)", name)
    return f"{match[1]}[{int(match[2]) - 1}]" if match else name


@pytest.fixture(scope="module")
def blocker():
    """The two `blocker` chains as a DataTree, vector parameters as vectors."""
    folder = reference_folder("diagnostics")
    if folder is None:  # only reached by tests without the marker
        pytest.skip("the R `posterior` reference data is not on this machine")
    chains = [_read_stan_csv(folder / f"blocker.{i}.csv") for i in (1, 2)]
    columns = list(chains[0].columns)
    draws = np.stack([c[columns].to_numpy() for c in chains])  # (chain, draw, column)
    posterior = {}
    for name in dict.fromkeys(c.split(".")[0] for c in columns):
        idx = [j for j, c in enumerate(columns) if c == name or c.startswith(f"{name}.")]
        posterior[name] = draws[..., idx[0]] if columns[idx[0]] == name else draws[..., idx]
    reference = pd.read_csv(folder / "reference_posterior.csv", index_col=0)
    return az.from_dict({"posterior": posterior}), reference


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


def _tree(posterior, attrs=None, **groups):
    """A synthetic tree; `attrs` are the root's (e.g. `task`, as bo.to_datatree writes)."""
    tree = az.from_dict({"posterior": posterior, **groups})
    tree.attrs.update(attrs or {})
    return tree


@pytest.fixture(scope="module")
def iid(rng):
    tree = _tree(
        {"mu": rng.normal(size=(4, 500)), "theta": rng.normal(size=(4, 500, 3))},
        sample_stats={
            "diverging": np.zeros((4, 500), bool),
            "energy": rng.normal(size=(4, 500)),
            "tree_depth": np.full((4, 500), 3),
        },
        log_likelihood={"obs": rng.normal(-1.0, 0.1, size=(4, 500, 20))},
    )
    return bo.diagnose(tree)


@pytest.fixture(scope="module")
def bad(rng):
    """Shifted chains, AR(1) chains, 5% divergences, one wildly influential observation."""
    shifted = rng.normal(size=(4, 500)) + np.array([0.0, 0.0, 0.0, 3.0])[:, None]
    ar = np.zeros((4, 500))
    for t in range(1, 500):
        ar[:, t] = 0.99 * ar[:, t - 1] + rng.normal(size=4) * np.sqrt(1 - 0.99**2)
    theta = rng.normal(size=(4, 500))
    loglik = rng.normal(-1.0, 0.1, size=(4, 500, 20))
    loglik[..., 0] = -0.5 * (2.0 * theta) ** 2  # an outlier only a few draws explain (k ~ 3)
    tree = _tree(
        {"shifted": shifted, "ar": ar, "theta": theta},
        sample_stats={"diverging": rng.random((4, 500)) < 0.05},
        log_likelihood={"obs": loglik},
    )
    return bo.diagnose(tree)


@pytest.mark.reference_data("diagnostics")
def test_reference_posterior(blocker):
    """R-hat, ESS and MCSE equal R `posterior`'s values (ArviZ's test data)."""
    tree, reference = blocker
    d = bo.diagnose(tree)
    reference.index = [_r_to_label(n) for n in reference.index]
    assert len(reference) == 48
    assert sorted(d.variables.index) == sorted(reference.index)
    ours = d.variables.loc[reference.index]
    pairs = {
        "r_hat": "rhat_rank",
        "ess_bulk": "ess_bulk",
        "ess_tail": "ess_tail",
        "mcse_mean": "mcse_mean",
        "mcse_sd": "mcse_sd",
    }
    for col, ref_col in pairs.items():
        np.testing.assert_allclose(
            ours[col].to_numpy(), reference[ref_col].to_numpy(), rtol=1e-8, atol=1e-8, err_msg=col
        )
    assert d.checks.loc["draws", "verdict"] == "warn"  # 2 chains < 4


def test_columns_and_labels(iid):
    assert list(iid.variables.columns) == [*STAT_COLUMNS, "verdict", "reason"]
    assert list(iid.variables.index) == ["mu", "theta[0]", "theta[1]", "theta[2]"]
    assert list(iid.checks.columns) == ["value", "threshold", "verdict", "reason"]
    assert set(iid.table["kind"]) == {"variable", "check"}
    assert {"kind", "verdict", "reason"} <= set(iid.table.columns)


def test_iid_all_ok(iid):
    assert iid.verdict == "ok", str(iid)
    assert set(iid.variables["verdict"]) == {"ok"}
    assert list(iid.checks.index) == [
        *("divergences", "non_finite", "e_bfmi", "tree_depth", "pareto_k", "draws")
    ]
    assert iid.checks.loc["non_finite", "verdict"] == "n/a"  # no such statistic in the tree
    assert "elpd_loo" in iid.checks.loc["pareto_k", "value"]


def test_shifted_chains_fail_rhat(bad):
    row = bad.variables.loc["shifted"]
    assert row["verdict"] == "fail"
    assert "R-hat" in row["reason"] and row["r_hat"] > 1.1
    assert bad.verdict == "fail"


def test_autocorrelated_chains_low_ess(bad):
    row = bad.variables.loc["ar"]
    assert row["verdict"] in ("warn", "fail")
    assert "ESS" in row["reason"] and row["ess_bulk"] < 400
    assert bad.variables.loc["theta", "verdict"] == "ok"


def test_divergences_fail(bad):
    row = bad.checks.loc["divergences"]
    assert row["verdict"] == "fail" and "divergent" in row["reason"]


def test_influential_observation_pareto_k(bad):
    row = bad.checks.loc["pareto_k"]
    assert row["verdict"] == "fail" and "Pareto k" in row["reason"]


@pytest.mark.filterwarnings("ignore:Found chain dimension to be longer")
def test_one_draw_per_chain_is_na(rng):
    tree = _tree(
        {"f": rng.normal(size=(8, 1, 3)), "lp": rng.normal(size=(8, 1))},
        sample_stats={"lp": rng.normal(size=(8, 1))},
        attrs={"task": "regression", "name": "deep_ensemble"},
    )
    d = bo.diagnose(tree)
    assert set(d.variables["verdict"]) == {"n/a"}
    assert all("one draw per chain" in r for r in d.variables["reason"])
    assert d.checks.loc["draws", "verdict"] == "n/a"
    assert d.verdict == "n/a"
    assert np.isfinite(d.variables["mean"]).all()
    json.dumps(d.to_dict())
    str(d)


@pytest.mark.filterwarnings("ignore:Found chain dimension to be longer")
def test_deep_ensemble_loo_is_a_sentence_not_an_arviz_error(rng):
    """1 draw per chain (8 members) with pointwise log-likelihoods: PSIS-LOO does not apply,
    said as the report says it (one helper), never ArviZ's "n_draws_tail must be at least 5"."""
    tree = _tree(
        {"f": rng.normal(size=(8, 1, 3)), "log_lik": rng.normal(size=(8, 1))},
        log_likelihood={"obs": rng.normal(-1.0, 0.1, size=(8, 1, 20))},
        attrs={"task": "regression", "name": "deep_ensemble"},
    )
    d = bo.diagnose(tree)
    row = d.checks.loc["pareto_k"]
    assert row["verdict"] == "n/a"
    assert row["reason"] == f"PSIS-LOO does not apply: {verdict_module.loo_unavailable(8, 1)}"
    assert "one draw per chain" in row["reason"] and "not drawn from one posterior" in row["reason"]
    for text in (str(d), d.to_html(), json.dumps(d.to_dict())):
        assert "arviz.loo failed" not in text and "n_draws_tail" not in text
    # a few draws of a real chain: too few for PSIS's Pareto tail, said so
    few = bo.diagnose(
        _tree({"x": rng.normal(size=(2, 10))}, log_likelihood={"obs": rng.normal(size=(2, 10, 5))})
    )
    reason = few.checks.loc["pareto_k", "reason"]
    assert few.checks.loc["pareto_k", "verdict"] == "n/a"
    assert "only 20 draws in all" in reason and "at least 25" in reason
    assert verdict_module.loo_unavailable(4, 25) is None


def test_non_finite_fails_naming_the_chains_and_fractions(rng):
    non_finite = np.zeros((4, 200), bool)
    non_finite[2, rng.choice(200, 54, replace=False)] = True  # 27%
    non_finite[3, rng.choice(200, 62, replace=False)] = True  # 31%
    tree = _tree(
        {"x": rng.normal(size=(4, 200))},
        sample_stats={"non_finite": non_finite, "diverging": non_finite},
    )
    d = bo.diagnose(tree)
    row = d.checks.loc["non_finite"]
    assert row["verdict"] == "fail" and d.verdict == "fail"
    assert row["reason"].startswith(
        "chains 2, 3 met a non-finite log density in 27%, 31% of transitions: the model is "
        "undefined (NaN/inf) where the sampler went"
    )
    assert row["value"] == "116 of 800 transitions (14.5%) in 2 of 4 chains"
    # the three renderings carry the line
    assert re.search(r"^non_finite +fail +116 of 800", str(d), flags=re.M)
    page = d.to_html()
    assert "<th" in page and ">non_finite</th>" in page and "chains 2, 3 met" in page
    out = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert out["checks"]["non_finite"]["verdict"] == "fail"
    assert "27%, 31%" in out["checks"]["non_finite"]["reason"]
    # one chain: singular; the draws themselves are finite, so they are still diagnosed
    one = np.zeros((4, 200), bool)
    one[1, 0] = True
    row = bo.diagnose(_tree({"x": rng.normal(size=(4, 200))}, sample_stats={"non_finite": one}))
    assert row.checks.loc["non_finite", "reason"].startswith("chain 1 met a non-finite")


def test_non_finite_ok_when_all_false_na_when_absent(rng):
    x = rng.normal(size=(4, 200))
    ok = bo.diagnose(_tree({"x": x}, sample_stats={"non_finite": np.zeros((4, 200), bool)}))
    assert ok.checks.loc["non_finite", "verdict"] == "ok"
    assert ok.checks.loc["non_finite", "reason"] == ""
    assert ok.checks.loc["non_finite", "value"] == "0 of 800 transitions (0%) in 0 of 4 chains"
    assert ok.verdict == "ok"
    absent = bo.diagnose(_tree({"x": x}, sample_stats={"lp": x}))
    assert absent.checks.loc["non_finite", "verdict"] == "n/a"
    assert "no sample_stats.non_finite" in absent.checks.loc["non_finite", "reason"]
    assert absent.verdict == "ok"  # n/a lines do not count
    sgmcmc = bo.diagnose(_tree({"x": x}, sample_stats={"stopped": np.zeros((4, 200), bool)}))
    assert "see stopped_chains" in sgmcmc.checks.loc["non_finite", "reason"]
    assert bo.diagnose(_tree({"x": x})).checks.loc["non_finite", "verdict"] == "n/a"


def test_constant_variable_is_na(rng):
    d = bo.diagnose(_tree({"c": np.ones((4, 300)), "x": rng.normal(size=(4, 300))}))
    assert d.variables.loc["c", "verdict"] == "n/a"
    assert "constant" in d.variables.loc["c", "reason"]
    assert d.verdict == "ok"


def test_network_tree_skips_weights(rng):
    posterior = {
        "f": rng.normal(size=(4, 200, 5)),
        "log_lik": rng.normal(size=(4, 200)),
        "w": rng.normal(size=(4, 200, 7)),
    }
    tree = _tree(posterior, attrs={"task": "regression", "name": "NUTS"})
    d = bo.diagnose(tree)
    assert not any(label.startswith("w") for label in d.variables.index)
    assert "log_lik" in d.variables.index and "f[4]" in d.variables.index
    d_w = bo.diagnose(tree, var_names=["w"])
    assert len(d_w.variables) == 7
    # A tree from anybody else: every variable is diagnosed.
    assert "w[0]" in bo.diagnose(_tree(posterior)).variables.index


def test_stopped_chains_fail_and_healthy_chains_diagnosed(rng):
    x = rng.normal(size=(4, 200))
    stopped = np.zeros((4, 200), bool)
    stopped[1, 50:] = True
    x[1, 50:] = np.nan
    d = bo.diagnose(_tree({"x": x}, sample_stats={"stopped": stopped, "lp": x}))
    assert d.checks.loc["stopped_chains", "verdict"] == "fail"
    assert "[1]" in d.checks.loc["stopped_chains", "reason"]
    assert np.isfinite(d.variables.loc["x", "r_hat"])


def test_tree_depth_and_bfmi(rng):
    depth = np.full((4, 200), 4)
    depth[0, :40] = 7  # 5% at the configured maximum 7
    energy = np.cumsum(rng.normal(size=(4, 200)), axis=1)  # a random walk: E-BFMI << 0.3
    attrs = {"bayesover_config": json.dumps({"max_tree_depth": 7})}
    tree = _tree(
        {"x": rng.normal(size=(4, 200))},
        sample_stats={"tree_depth": depth, "energy": energy},
        attrs=attrs,
    )
    d = bo.diagnose(tree)
    assert d.checks.loc["tree_depth", "verdict"] == "warn"
    assert "max tree depth 7" in d.checks.loc["tree_depth", "reason"]
    assert d.checks.loc["e_bfmi", "verdict"] == "warn"


class _Rows(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tr_classes, self.tables = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "class" in attrs:
            self.tr_classes.append(attrs["class"])
        if tag == "table":
            self.tables.append(attrs.get("class"))


def test_renderings(bad, iid):
    text = str(bad)
    assert "FAIL" in text and "divergences" in text and "shifted" in text
    page = bad.to_html()
    parser = _Rows()
    parser.feed(page)
    assert parser.tables == ["diagnostics"]
    assert 'class="fail"' in page
    assert len(parser.tr_classes) == len(bad.variables) + len(bad.checks)
    assert parser.tr_classes[0] == "fail"  # worst first
    assert "<script" not in page and "<link" not in page
    for d in (bad, iid):
        out = json.loads(json.dumps(d.to_dict(), allow_nan=False))
        assert out["verdict"] == d.verdict
        assert [v["name"] for v in out["variables"]] == list(d.variables.index)


def test_html_fold_shows_fail_then_warn_and_folds_ok_and_na(bad, iid):
    """`to_html(fold=True)`, the report's table: fail rows, then warn rows (checks and
    variables), then a `<details>` whose summary counts the ok and n/a rows it holds."""
    page = bad.to_html(fold=True)
    head, _, folded = page.partition("<details")
    shown, hidden = _Rows(), _Rows()
    shown.feed(head)
    hidden.feed(folded)
    assert shown.tr_classes == sorted(shown.tr_classes, key=["fail", "warn"].index)
    assert shown.tr_classes[0] == "fail" and set(shown.tr_classes) <= {"fail", "warn"}
    assert set(hidden.tr_classes) <= {"ok", "n/a"}
    counts = bad.counts
    assert len(shown.tr_classes) == counts["fail"] + counts["warn"]
    assert len(hidden.tr_classes) == counts["ok"] + counts["n/a"]
    summary = ", ".join(f"{counts[v]} {v}" for v in ("ok", "n/a") if counts[v])
    assert f"<summary>{summary}</summary>" in folded
    assert shown.tables == ["diagnostics"] and hidden.tables == ["diagnostics folded"]
    # a clean run: one line in the table, everything folded
    clean = iid.to_html(fold=True)
    assert "no line warns or fails" in clean.partition("<details")[0]
    assert f"<summary>{iid.counts['ok']} ok, 1 n/a</summary>" in clean
    with pytest.raises(TypeError, match="`fold`"):
        iid.to_html(fold="yes")


def test_html_fold_keeps_many_failing_variables_short(rng):
    """30 failing variables: the first 10 in the table, the other 20 folded under their
    count; the text table still lists every one."""
    shifted = rng.normal(size=(4, 300, 30)) + np.array([0.0, 0.0, 0.0, 3.0])[:, None, None]
    d = bo.diagnose(_tree({"x": shifted}))
    assert set(d.variables["verdict"]) == {"fail"}
    head, _, folded = d.to_html(fold=True).partition("<details")
    shown, hidden = _Rows(), _Rows()
    shown.feed(head)
    hidden.feed(folded)
    assert shown.tr_classes.count("fail") == 10
    assert "<summary>20 more variables that fail or warn (20 fail)</summary>" in folded
    assert hidden.tr_classes.count("fail") == 20
    assert sum(line.split()[1:2] == ["fail"] for line in str(d).splitlines()) == 30


def test_text_summarises_many_ok_variables(rng):
    d = bo.diagnose(_tree({"x": rng.normal(size=(4, 300, 50))}))
    text = str(d)
    assert "more variables ok" in text
    assert len(text.splitlines()) < 30


def test_html_escapes(rng):
    posterior = {"x": rng.normal(size=(4, 100, 2))}
    tree = az.from_dict({"posterior": posterior}, dims={"x": ["k"]}, coords={"k": ["<b>", "a&b"]})
    page = bo.diagnose(tree).to_html()
    assert "<b>]" not in page and "x[&lt;b&gt;]" in page


def test_bad_input(iid, rng):
    with pytest.raises(ValueError, match="`tree`"):
        bo.diagnose({"posterior": {}})
    with pytest.raises(ValueError, match="`tree` has no `posterior`"):
        bo.diagnose(az.from_dict({"sample_stats": {"lp": rng.normal(size=(2, 10))}}))
    tree = _tree({"mu": rng.normal(size=(4, 50))})
    with pytest.raises(ValueError, match=r"`var_names`.*\['nope'\].*\['mu'\]"):
        bo.diagnose(tree, var_names=["nope"])


def test_speed_network_tree(rng):
    """A classifier's tree: 10 probes x 10 classes, a 20-weight subsample (not diagnosed),
    4 chains x 500 draws, 300 observations: seconds, not minutes."""
    tree = _tree(
        {"f": rng.random(size=(4, 500, 10, 10)), "w": rng.normal(size=(4, 500, 20))},
        log_likelihood={"obs": rng.normal(-1.0, 0.1, size=(4, 500, 300))},
        attrs={"task": "classification"},
    )
    start = time.perf_counter()
    d = bo.diagnose(tree)
    assert time.perf_counter() - start < 30
    assert len(d.variables) == 100 and d.variables.index[-1] == "f[9, 9]"
