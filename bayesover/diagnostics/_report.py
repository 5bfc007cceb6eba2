"""`bo.report`: one self-contained HTML file that says whether runs can be trusted, and why.

The file has no external resource: plots are PNGs rendered by matplotlib and embedded as
`data:` URIs, the CSS is inline, there is no script. It opens offline in any browser, can be
mailed or archived next to the run, and shows the same thing in ten years.

Sections (several runs: a comparison first, then one section per run):

- comparison: each run's verdict and predictive metrics side by side, and `arviz.compare` of
  the PSIS-LOO of the runs with pointwise log-likelihoods and several draws per chain, its
  numbers unrounded (2 decimals);
- per run: the configuration, the verdict table of `bo.diagnose` (fail rows, then warn rows;
  the ok and n/a rows folded under their count), trace (one panel per probe point of `f`),
  rank and local-ESS plots of the function-space quantities that are diagnosed (never the raw
  weights; `f` at up to 6 evenly spaced probe points), the energy plot of HMC/NUTS, the
  predictions (bands for 1-D regression, a predictive check otherwise, a
  reliability diagram for classification), the predictive metrics and, when the tree has a
  `lens` group, the regret and hypothesis-weight curves.

A plot that cannot be drawn becomes a one-line "plot unavailable: <reason>" paragraph; the rest
of the report is still written. The file is written to a temporary name and renamed
(`bayesover._atomic`), so an existing report is never half-overwritten: a failed write (a full
disk) raises an OSError naming the path and leaves the previous report as it was.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayesover._atomic import atomic_write_text
from bayesover._checks import ArgumentTypeError, check_bool

_DPI = 72
_MAX_VARIABLES = 6  # trace/rank/ESS panels: a handful of variables ...
_MAX_ELEMENTS = 3  # ... and of elements along each of their dims (classes, sites, ...)
_MAX_PROBES = 6  # f: probe points shown, evenly spaced (per class shown: 6 // classes)
_MAX_CONFIG_CHARS = 160
_MAX_POINTS = 200  # predictive check: observations shown
_SAMPLE_DIMS = ("chain", "draw")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 1100px; padding: 1em 2em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; padding-bottom: .15em; }
h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .2em .6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.ok td, td.ok { background: #e7f5e9; }
tr.warn td, td.warn { background: #fff4d6; }
tr.fail td, td.fail { background: #fde2e1; }
figure { margin: .5em 0 1.5em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: .9em; }
.unavailable { color: #a33; font-style: italic; }
.verdict { font-weight: bold; text-transform: uppercase; }
code { background: #f5f5f5; padding: 0 .2em; }
details.diagnostics-folded { margin: -.5em 0 1em; }
details.diagnostics-folded > summary { cursor: pointer; color: #2e6b34; }
nav ul { columns: 2; }
"""


def report(
    trees: xr.DataTree | Mapping[str, xr.DataTree],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write one self-contained HTML diagnostics report of one or several runs.

    **Arguments:**

    - `trees`: a DataTree from `bo.to_datatree`, or a dict `{run name: DataTree}` (e.g. NUTS,
      SGLD and a deep ensemble of the same model, which are then compared).
    - `path`: the HTML file to write; its folder is created if missing.
    - `title`: the page title (default: "bayesover diagnostics report").
    - `overwrite`: `False` refuses to replace an existing `path`.

    **Returns:** `path` as a `Path`. A failed write raises an `OSError` naming `path`, and
    the previous file at `path`, if any, is left intact.
    """
    runs = _check_trees(trees)
    if title is not None and not isinstance(title, str):
        raise ArgumentTypeError(f"`title` must be a str or None, got {type(title).__name__}.")
    path = _check_path(path, overwrite)
    document = _document(runs, title or "bayesover diagnostics report")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, document)  # an OSError names `path`; the old file stays whole
    return path


# -- input ----------------------------------------------------------------------------------------
def _check_trees(trees: Any) -> dict[str, xr.DataTree]:
    if isinstance(trees, xr.DataTree):
        runs = {str(trees.attrs.get("name", "run")): trees}
    elif isinstance(trees, Mapping):
        if not trees:
            raise ValueError("`trees` is an empty dict; give at least one run.")
        runs = {}
        for name, tree in trees.items():
            if not isinstance(name, str):
                raise ArgumentTypeError(f"`trees` keys must be run names (str), got {name!r}.")
            if not isinstance(tree, xr.DataTree):
                raise ArgumentTypeError(
                    f"`trees[{name!r}]` must be an xarray.DataTree, got {type(tree).__name__}."
                )
            runs[name] = tree
    else:
        raise ArgumentTypeError(
            "`trees` must be an xarray.DataTree or a dict {run name: DataTree}, got "
            f"{type(trees).__name__}."
        )
    for name, tree in runs.items():
        if "posterior" not in tree.children:
            raise ValueError(f"`trees` run {name!r} has no `posterior` group.")
        missing = [d for d in _SAMPLE_DIMS if d not in tree["posterior"].dims]
        if missing:
            raise ValueError(f"`trees` run {name!r}: the posterior has no {missing} dims.")
    return runs


def _check_path(path: Any, overwrite: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"`path` must be a str or os.PathLike, got {type(path).__name__}.")
    overwrite = check_bool("overwrite", overwrite)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"`path` {str(path)!r} is a folder; give a file name.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"`path` {str(path)!r} exists; pass overwrite=True to replace it.")
    return path


# -- document -------------------------------------------------------------------------------------
def _document(runs: dict[str, xr.DataTree], title: str) -> str:
    from bayesover import __version__

    ids = _section_ids(runs)
    diagnostics = {name: _diagnose(tree) for name, tree in runs.items()}
    parts = []
    if len(runs) > 1:
        parts.append(_comparison(runs, diagnostics))
    for name, tree in runs.items():
        parts.append(_run_section(name, tree, ids[name], diagnostics[name]))
    toc = "".join(
        f'<li><a href="#{ids[name]}">{_e(name)}</a> ({_e(_run_summary(tree))})</li>'
        for name, tree in runs.items()
    )
    if len(runs) > 1:
        toc = '<li><a href="#comparison">Comparison</a></li>' + toc
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n"
        f'<p class="note">Written by bayesover {_e(__version__)}. One file, no external '
        "resources. How to read it: docs/reading-a-report.md.</p>\n"
        f"<nav><ul>{toc}</ul></nav>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
    )


def _section_ids(runs: dict[str, xr.DataTree]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for i, name in enumerate(runs):
        slug = re.sub(r"[^0-9A-Za-z_-]+", "-", name).strip("-").lower() or "run"
        ids[name] = f"run-{i}-{slug}"
    return ids


def _run_section(name: str, tree: xr.DataTree, anchor: str, diagnostics: Any) -> str:
    parts = [
        f'<section id="{anchor}">',
        f"<h2>Run: {_e(name)}</h2>",
        f"<p>{_e(_run_summary(tree))}. Groups: {_e(', '.join(sorted(tree.children)))}.</p>",
        "<h3>Configuration</h3>",
        _config_table(tree),
        "<h3>Verdict</h3>",
        _verdict_html(diagnostics),
        "<h3>Convergence</h3>",
        _convergence(tree),
        "<h3>Predictions</h3>",
        _predictions(tree),
        "<h3>Predictive metrics</h3>",
        _metrics_table(tree),
    ]
    if "lens" in tree.children:
        parts += ["<h3>Lens</h3>", _lens(tree)]
    parts.append("</section>")
    return "\n".join(parts)


def _run_summary(tree: xr.DataTree) -> str:
    sizes = tree["posterior"].sizes
    words = [
        f"sampler {tree.attrs.get('name', '?')}",
        f"task {tree.attrs.get('task', '?')}",
        f"{sizes['chain']} chains x {sizes['draw']} draws",
    ]
    if "num_params" in tree.attrs:
        words.append(f"{tree.attrs['num_params']} parameters")
    return ", ".join(words)


# -- tables ---------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not np.isfinite(x):
        return str(x)
    return f"{x:.4g}" if x != int(x) or abs(x) >= 1e6 else str(int(x))


def _table(
    header: list[str],
    rows: list[list[Any]],
    numeric_from: int = 1,
    number: Callable[[Any], str] = _number,
) -> str:
    """A plain table; columns from `numeric_from` on are right-aligned, printed by `number`."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [
            f'<td class="num">{_e(number(v))}</td>' if i >= numeric_from else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _config_table(tree: xr.DataTree) -> str:
    raw = tree.attrs.get("bayesover_config")
    if raw is None:
        return '<p class="note">No configuration recorded (attribute bayesover_config).</p>'
    try:
        config = json.loads(raw)
    except (TypeError, ValueError):
        config = {"bayesover_config": raw}
    if not isinstance(config, dict):
        config = {"bayesover_config": config}
    rows = []
    for key, value in config.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > _MAX_CONFIG_CHARS:
            text = text[: _MAX_CONFIG_CHARS - 3] + "..."
        rows.append([key, text])
    return _table(["setting", "value"], rows, numeric_from=2).replace(
        "<table>", '<table class="config">', 1
    )


def _diagnose(tree: xr.DataTree) -> Any:
    """`bo.diagnose(tree)`, or the exception that stopped it (shown in the report)."""
    try:
        from bayesover.diagnostics._verdict import diagnose

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return diagnose(tree)
    except Exception as error:  # the report must still be written
        return error


def _verdict_html(diagnostics: Any) -> str:
    """The verdict and the table of `bo.diagnose`: the fail rows, then the warn rows; the ok
    and n/a rows folded under their count, so the plots are not pages down."""
    if isinstance(diagnostics, Exception):
        return f'<p class="unavailable">verdict unavailable: {_e(_reason(diagnostics))}</p>'
    verdict = str(diagnostics.verdict)
    return (
        f'<p>Overall verdict: <span class="verdict {_e(verdict)}">{_e(verdict)}</span></p>\n'
        + diagnostics.to_html(fold=True)
    )


def _scalar_metrics(tree: xr.DataTree) -> dict[str, float]:
    if "predictive_metrics" not in tree.children:
        return {}
    dataset = tree["predictive_metrics"].to_dataset()
    return {str(k): float(v.values) for k, v in dataset.data_vars.items() if v.ndim == 0}


def _metrics_table(tree: xr.DataTree) -> str:
    metrics = _scalar_metrics(tree)
    if not metrics:
        hint = (
            " (pass <code>test=</code> to <code>bo.to_datatree</code>)"
            if tree.attrs.get("task") in ("regression", "classification")
            else ""
        )
        return f'<p class="note">No predictive metrics: the tree has no held-out data{hint}.</p>'

    num_test = tree["predictive_metrics"].attrs.get("num_test")
    note = f'<p class="note">On {_e(num_test)} held-out points.</p>' if num_test else ""
    return note + _table(["metric", "value"], [[k, v] for k, v in metrics.items()])


# -- comparison -----------------------------------------------------------------------------------
def _comparison(runs: dict[str, xr.DataTree], diagnostics: dict[str, Any]) -> str:
    metric_names = list(dict.fromkeys(k for t in runs.values() for k in _scalar_metrics(t)))
    header = ["run", "verdict", "sampler", "chains x draws", *metric_names]
    rows = []
    for name, tree in runs.items():
        d = diagnostics[name]
        verdict = "n/a" if isinstance(d, Exception) else str(d.verdict)
        sizes = tree["posterior"].sizes
        metrics = _scalar_metrics(tree)
        cells = [
            f"<td>{_e(name)}</td>",
            f'<td class="verdict {_e(verdict)}">{_e(verdict)}</td>',
            f"<td>{_e(tree.attrs.get('name', '?'))}</td>",
            f"<td>{sizes['chain']} x {sizes['draw']}</td>",
        ]
        cells += [f'<td class="num">{_e(_number(metrics.get(m, "")))}</td>' for m in metric_names]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return "\n".join(
        [
            '<section id="comparison">',
            "<h2>Comparison</h2>",
            '<p class="note">Predictive metrics are on held-out data; lower is better for nll, '
            "rmse, brier and ece, higher for accuracy; coverage_90 should be near 0.9.</p>",
            f'<table class="comparison"><tr>{head}</tr>{"".join(rows)}</table>',
            "<h3>PSIS-LOO</h3>",
            _loo_comparison(runs),
            "</section>",
        ]
    )


def _loo_comparison(runs: dict[str, xr.DataTree]) -> str:
    """`arviz.compare` of the PSIS-LOO of the runs that have one, or a sentence saying why
    there is none. LOO needs pointwise log-likelihoods and several draws from one posterior;
    deep-ensemble members are not such draws."""
    from bayesover.diagnostics._verdict import loo_unavailable

    eligible, skipped = {}, []
    for name, tree in runs.items():
        sizes = tree["posterior"].sizes
        why = loo_unavailable(int(sizes["chain"]), int(sizes["draw"]))
        if "log_likelihood" not in tree.children:
            skipped.append(f"{name} (no log_likelihood group)")
        elif why is not None:
            skipped.append(f"{name} ({why})")
        else:
            eligible[name] = tree
    left_out = (
        f'<p class="note">Left out of the LOO comparison: {_e("; ".join(skipped))}.</p>'
        if skipped
        else ""
    )
    if len(eligible) < 2:
        return left_out + '<p class="note">No LOO comparison: fewer than two runs qualify.</p>'
    try:
        import arviz as az

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = az.compare(eligible, round_to="none")  # "auto" shows -28.53 as -29
    except Exception as error:
        return (
            left_out
            + f'<p class="unavailable">LOO comparison unavailable: {_e(_reason(error))}</p>'
        )
    columns = [c for c in ("rank", "elpd", "se", "elpd_diff", "dse", "p", "weight") if c in table]
    rows = [[name, *(_loo_number(c, table.loc[name, c]) for c in columns)] for name in table.index]
    messages = sorted({str(w.message).split(". ")[0] for w in caught})
    note = "".join(f'<p class="note">ArviZ warned: {_e(m)}.</p>' for m in messages)
    return (
        left_out
        + '<p class="note">elpd: expected log predictive density (PSIS-LOO) on the training '
        "data, higher is better; elpd_diff and dse: difference to the best run and its standard "
        "error; p: effective number of parameters. Only meaningful for runs on the same "
        "training data.</p>"
        + _table(["run", *columns], rows, number=str)
        + note
        + _figure(lambda: _azp_figure("plot_compare", table), "LOO comparison", "elpd +- se.")
    )


def _loo_number(column: str, value: Any) -> str:
    """A LOO comparison cell: the rank as an integer, every other number with 2 decimals
    (elpd -28.53, never ArviZ's rounded -29)."""
    if column == "rank":
        return str(int(value))
    x = float(value)
    return f"{x:.2f}" if np.isfinite(x) else str(x)


# -- figures --------------------------------------------------------------------------------------
def _reason(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= 300 else text[:297] + "..."


def _figure(draw: Callable[[], Any], alt: str, caption: str) -> str:
    """Run `draw() -> Figure` and embed it as a PNG; any failure becomes one sentence."""
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = draw()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=_DPI)
    except Exception as error:
        return f'<p class="unavailable">plot unavailable: {_e(_reason(error))}</p>'
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _azp_figure(function: str, *args: Any, **kwargs: Any) -> Any:
    """An arviz_plots plot with the matplotlib backend, as a matplotlib Figure."""
    import arviz_plots as azp

    collection = getattr(azp, function)(*args, backend="matplotlib", **kwargs)
    figure = collection.viz["figure"].item()
    figure.set_layout_engine("constrained")  # no clipped titles, no overlapping labels
    return figure


def _flat_labeller() -> Any:
    """Panel titles `f[0]` on one line (ArviZ's default stacks `f` over `0`)."""
    from arviz_base.labels import BaseLabeller

    class FlatLabeller(BaseLabeller):
        def make_label_vert(self, var_name, sel, isel):
            return self.make_label_flat(var_name, sel, isel)

    return FlatLabeller()


def _titled(figure: Any, title: str) -> Any:
    """`figure` with `title` above all its panels."""
    figure.suptitle(title)
    return figure


def _new_figure(width: float = 7.0, height: float = 4.0) -> Any:
    """A Figure outside pyplot's registry: no GUI backend involved, nothing to close."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


# -- convergence ----------------------------------------------------------------------------------
def _diagnosed_tree(tree: xr.DataTree) -> tuple[xr.DataTree, list[str]]:
    """The handful of diagnosed variables the plots show, and a phrase per dim saying how many
    elements were left out. For a network: `log_lik`, `lp`, hyperparameters and `f` at up to 6
    evenly spaced probe points (fewer per class for classifiers; the raw weights `w` are never
    diagnosed); for a NumPyro model the first sites. Other dims: the first few elements."""
    posterior = tree["posterior"].to_dataset()
    names = [
        str(v)
        for v, da in posterior.data_vars.items()
        if v != "w" and all(d in da.dims for d in _SAMPLE_DIMS)
    ]
    if tree.attrs.get("task") in ("regression", "classification"):
        head = [v for v in ("log_lik", "lp") if v in names]
        hyper = [v for v in names if v not in ("log_lik", "lp", "f")]
        tail = ["f"] if "f" in names else []
        names = (head + hyper)[: _MAX_VARIABLES - len(tail)] + tail
    else:
        names = names[:_MAX_VARIABLES]
    subset = posterior[names]
    left_out = []
    classes = 1
    if "class" in subset.dims:
        size = subset.sizes["class"]
        if size == 2:
            subset = subset.isel({"class": [1]})  # binary: P(class 1) says it all
        else:
            classes = min(size, _MAX_ELEMENTS)
            subset = subset.isel({"class": slice(0, classes)})
            if size > classes:
                left_out.append(
                    f"the first {classes} of {size} classes ({size - classes} left out)"
                )
    for dim in list(subset.dims):
        if dim in (*_SAMPLE_DIMS, "class"):
            continue
        size = subset.sizes[dim]
        if dim == "probe":
            shown = max(1, _MAX_PROBES // classes)
            keep = np.unique(np.linspace(0, size - 1, min(size, shown)).round().astype(int))
            what = f"{keep.size} of {size} probe points, evenly spaced"
        else:
            keep = np.arange(min(size, _MAX_ELEMENTS))
            what = f"the first {keep.size} of {size} along {dim}"
        subset = subset.isel({dim: keep})
        if keep.size < size:
            left_out.append(f"{what} ({size - keep.size} left out)")
    groups = {"posterior": subset}
    if "sample_stats" in tree.children:
        groups["sample_stats"] = tree["sample_stats"].to_dataset()
    return xr.DataTree.from_dict(groups), left_out


def _per_probe(subset: xr.DataTree) -> xr.DataTree:
    """`f` split into one variable per probe point, `f[i]` (its classes stay together), so
    the compact trace plot draws one panel per probe point instead of all f[i, k] in one."""
    posterior = subset["posterior"].to_dataset()
    if "f" not in posterior or "probe" not in posterior["f"].dims:
        return subset
    f = posterior["f"]
    labels = [str(v) for v in np.asarray(f["probe"])] if "probe" in f.coords else None
    variables: dict[str, xr.DataArray] = {}
    for name, value in posterior.data_vars.items():
        if name != "f":
            variables[str(name)] = value
            continue
        for i in range(f.sizes["probe"]):
            label = labels[i] if labels else str(i)
            variables[f"f[{label}]"] = f.isel(probe=i, drop=True)
    groups = {"posterior": xr.Dataset(variables, attrs=posterior.attrs)}
    if "sample_stats" in subset.children:
        groups["sample_stats"] = subset["sample_stats"].to_dataset()
    return xr.DataTree.from_dict(groups)


def _convergence(tree: xr.DataTree) -> str:
    sizes = tree["posterior"].sizes
    if sizes["draw"] < 2:
        return (
            '<p class="note">One draw per chain: every chain is an independently trained '
            "member (a deep ensemble), not a Markov chain, so trace, rank, ESS and energy "
            "plots do not apply. The spread between members shows in the predictions "
            "below.</p>"
        )
    (subset, left_out), labeller = _diagnosed_tree(tree), _flat_labeller()
    per_probe = _per_probe(subset)
    min_ess = 100 * int(sizes["chain"])
    names = ", ".join(str(v) for v in subset["posterior"].data_vars)
    shown = f" Shown: {'; '.join(left_out)}." if left_out else ""
    parts = [
        f'<p class="note">Diagnosed variables shown: {_e(names)}.{_e(shown)} The verdict '
        "table above has every element. Raw weights are not diagnosed: permuting hidden "
        "units gives the same function, so weight-space R-hat is meaningless.</p>",
        _figure(
            lambda: _azp_figure("plot_trace_dist", per_probe, compact=True, labeller=labeller),
            "trace plots",
            "Trace (right) and per-chain distributions (left), one row per variable and per "
            "probe point of f: chains should overlap and look like stationary noise, without "
            "trends or stuck stretches.",
        ),
    ]
    if sizes["chain"] > 1:
        parts.append(
            _figure(
                lambda: _azp_figure("plot_rank", subset, labeller=labeller),
                "rank plots",
                "Rank ECDF differences per chain, with a simultaneous envelope: lines leaving "
                "the envelope mean the chains explore different regions.",
            )
        )
    parts.append(
        _figure(
            lambda: _titled(
                _azp_figure("plot_ess", subset, kind="local", labeller=labeller, min_ess=min_ess),
                "local ESS (not the bulk ESS of the verdict table)",
            ),
            "local ESS plots",
            "Local ESS: the effective sample size of the probability of each small interval "
            "between quantiles, along the distribution. It is not the bulk ESS of the verdict "
            f"table (which is for the mean and median); the dashed line is {min_ess}, 100 per "
            "chain, the table's threshold (Vehtari et al. 2021). Low local ESS in the tails "
            "means intervals are the least reliable estimates.",
        )
    )
    stats = tree["sample_stats"] if "sample_stats" in tree.children else None
    if stats is not None and "energy" in stats.data_vars:
        parts.append(
            _figure(
                lambda: _azp_figure("plot_energy", tree),
                "energy plot",
                "Marginal energy vs energy transitions, E-BFMI per chain: a transition "
                "distribution much narrower than the marginal (E-BFMI < 0.3) means HMC "
                "explores the tails poorly.",
            )
        )
    else:
        parts.append(
            '<p class="note">No energy plot: the sampler recorded no Hamiltonian energy '
            "(only HMC and NUTS do).</p>"
        )
    return "\n".join(parts)


# -- predictions ----------------------------------------------------------------------------------
def _feature_shape(tree: xr.DataTree) -> list[int] | None:
    try:
        return list(json.loads(tree.attrs["feature_shape"]))
    except (KeyError, TypeError, ValueError):
        return None


def _predictions(tree: xr.DataTree) -> str:
    task = tree.attrs.get("task")
    if task == "regression" and _feature_shape(tree) == [1]:
        return _figure(
            lambda: _bands_figure(tree),
            "predictive bands",
            "1-D regression: 90% posterior predictive interval of y (light), 90% interval and "
            "median of f = E[y | x] at the probe inputs (dark, line); dots: training data.",
        )
    if task == "regression":
        return _figure(
            lambda: _check_figure(tree),
            "posterior predictive check",
            "Training targets against the posterior predictive median with its 90% interval; "
            "points should scatter around the diagonal, about 90% of intervals crossing it.",
        )
    if task == "classification" and "predictive_metrics" not in tree.children:
        return (
            '<p class="note">No reliability diagram: it is drawn on held-out data, and the tree '
            "has none (pass <code>test=</code> to <code>bo.to_datatree</code>).</p>"
        )
    if task == "classification":
        return _figure(
            lambda: _reliability_figure(tree),
            "reliability diagram",
            "Reliability on held-out data: accuracy per confidence bin (bars) against the "
            "diagonal of perfect calibration; bars below it mean over-confidence.",
        )
    return '<p class="note">No predictive plot for this task.</p>'


def _var(tree: xr.DataTree, group: str, name: str) -> xr.DataArray:
    """Variable `name` of `group`; KeyError (shown as the reason) when either is missing."""
    return tree[group].to_dataset()[name]


def _quantiles(values: xr.DataArray, dim: str) -> np.ndarray:
    """5%, 50% and 95% over chains and draws, shaped (3, size of `dim`)."""
    values = values.stack(sample=_SAMPLE_DIMS).transpose("sample", dim)
    return np.nanquantile(np.asarray(values, dtype=float), [0.05, 0.5, 0.95], axis=0)


def _bands_figure(tree: xr.DataTree) -> Any:
    x = np.asarray(_var(tree, "constant_data", "x")).reshape(-1)
    y = np.asarray(_var(tree, "observed_data", "y")).reshape(-1)
    fig = _new_figure()
    ax = fig.add_subplot()
    if "posterior_predictive" in tree.children:
        band = _quantiles(_var(tree, "posterior_predictive", "y"), "obs")
        order = np.argsort(x)
        ax.fill_between(x[order], band[0, order], band[2, order], color="C0", alpha=0.2,
                        label="y: 90% predictive")  # fmt: skip
    f = _var(tree, "posterior", "f")
    x_probe = np.asarray(_var(tree, "constant_data", "x_probe")).reshape(-1)
    order = np.argsort(x_probe)
    band = _quantiles(f, "probe")[:, order]
    ax.fill_between(x_probe[order], band[0], band[2], color="C0", alpha=0.45, label="f: 90%")
    ax.plot(x_probe[order], band[1], color="C0", label="f: median")
    ax.scatter(x, y, s=10, color="k", zorder=3, label="data")
    ax.set(xlabel="x", ylabel="y")
    ax.legend(loc="best", fontsize="small")
    return fig


def _check_figure(tree: xr.DataTree) -> Any:
    y = np.asarray(_var(tree, "observed_data", "y"))
    pp = _var(tree, "posterior_predictive", "y")
    if y.ndim != 1 or pp.dims != ("chain", "draw", "obs"):
        raise ValueError("the predictive check needs one scalar target per observation")
    keep = np.linspace(0, y.shape[0] - 1, min(y.shape[0], _MAX_POINTS)).round().astype(int)
    y, band = y[keep], _quantiles(pp.isel(obs=keep), "obs")
    fig = _new_figure(5.0, 4.5)
    ax = fig.add_subplot()
    ax.errorbar(y, band[1], yerr=[band[1] - band[0], band[2] - band[1]], fmt="o", ms=3,
                alpha=0.5, elinewidth=0.8)  # fmt: skip
    lo, hi = float(np.nanmin(band)), float(np.nanmax(band))
    lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    inside = float(np.mean((band[0] <= y) & (y <= band[2])))
    ax.set(xlabel="observed y", ylabel="predictive median and 90% interval",
           title=f"{inside:.0%} of training targets inside their 90% interval")  # fmt: skip
    return fig


def _reliability_arrays(tree: xr.DataTree) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(confidence, accuracy, count) per bin from the `predictive_metrics` curve arrays."""
    if "predictive_metrics" not in tree.children:
        raise ValueError("no predictive_metrics group (pass test= to bo.to_datatree)")
    dataset = tree["predictive_metrics"].to_dataset()
    curves = {str(k): v for k, v in dataset.data_vars.items() if "bin" in v.dims}

    def find(word: str) -> np.ndarray | None:
        names = [k for k in curves if word in k]
        return np.asarray(curves[names[0]], dtype=float) if names else None

    confidence, accuracy, count = find("confidence"), find("accuracy"), find("count")
    if confidence is None or accuracy is None:
        raise ValueError("predictive_metrics has no per-bin confidence and accuracy arrays")
    return confidence, accuracy, count


def _reliability_figure(tree: xr.DataTree) -> Any:
    confidence, accuracy, count = _reliability_arrays(tree)
    bins = confidence.shape[0]
    edges = np.linspace(0.0, 1.0, bins + 1)
    centers = 0.5 * (edges[:-1] + edges[1:])
    fig = _new_figure(5.0, 5.5)
    ax, hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.bar(centers, np.nan_to_num(accuracy), width=1.0 / bins, edgecolor="k", alpha=0.7,
           label="accuracy")  # fmt: skip
    ax.plot(confidence, accuracy, "o", color="C3", ms=4, label="mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ece = _scalar_metrics(tree).get("ece")
    title = "reliability" if ece is None else f"reliability (ECE {ece:.3f})"
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(loc="upper left", fontsize="small")
    if count is not None:
        hist.bar(centers, count, width=1.0 / bins, color="C7", edgecolor="k")
    hist.set(xlabel="top-class confidence", ylabel="count")
    return fig


# -- lens -----------------------------------------------------------------------------------------
def _lens(tree: xr.DataTree) -> str:
    lens = tree["lens"].to_dataset()
    parts = []
    if "regret" in lens:
        parts.append(
            _figure(
                lambda: _curve_figure(lens, "regret", "n", "number of data points n", "regret"),
                "regret vs n",
                "Regret of the Bayesian predictor against the number of data points, with "
                "standard errors; the bound, when given, should lie above it.",
            )
        )
    if "neg_log_weight" in lens:
        parts.append(
            _figure(
                lambda: _curve_figure(
                    lens, "neg_log_weight", "eps", "eps", "-log W(eps)", logx=True
                ),
                "-log W(eps) vs eps",
                "-log W(eps): how little prior weight the hypotheses within eps of the truth "
                "get; it should fall as eps grows.",
            )
        )
    if not parts:
        return '<p class="note">The lens group has neither regret nor neg_log_weight.</p>'
    if lens.attrs.get("collapsed"):
        parts.insert(0, '<p class="unavailable">UNRELIABLE: an estimate collapsed.</p>')
    return "\n".join(parts)


def _curve_figure(
    lens: xr.Dataset, name: str, dim: str, xlabel: str, ylabel: str, logx: bool = False
) -> Any:
    values = lens[name]
    if values.dims != (dim,):
        raise ValueError(f"lens `{name}` must have the single dim {dim!r}, got {values.dims}")
    x = np.asarray(values[dim], dtype=float)
    y = np.asarray(values, dtype=float)
    stderr = lens.get(f"{name}_stderr")
    fig = _new_figure(6.0, 3.8)
    ax = fig.add_subplot()
    yerr = None if stderr is None else np.asarray(stderr, dtype=float)
    ax.errorbar(x, y, yerr=yerr, fmt="o-", ms=4, capsize=3, label=name)
    if name == "regret" and "bound" in lens and lens["bound"].dims == (dim,):
        bound = lens["bound"]
        ax.plot(np.asarray(bound[dim], dtype=float), np.asarray(bound), "k--", label="bound")
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(loc="best", fontsize="small")
    return fig
