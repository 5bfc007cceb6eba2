"""`bo.diagnose(tree)`: every convergence diagnostic of a run as one verdict table.

Each line of the table gets a verdict, `"ok"` < `"warn"` < `"fail"`, or `"n/a"` when its
statistic is undefined, and every line that is not ok says why in one line. All statistics
come from ArviZ 1.x (`arviz.rhat`, `ess`, `mcse`, `bfmi`, `loo`), which reproduces the R
package `posterior` to about 1e-11; nothing is re-implemented here.

**Per variable** (one line per scalar element of each `posterior` variable; S draws in C chains):

- `r_hat`: rank-normalised split R-hat: split each chain in halves, replace the draws by the
  normal scores of their pooled ranks, R-hat = sqrt(var_plus / W); the maximum of that on the
  draws and on the folded draws |x - median(x)|.
  ok < 1.01 <= warn < 1.1 <= fail.
- `ess_bulk`: S / tau of the rank-normalised split chains, tau = 1 + 2 sum_t rho_t (Geyer's
  initial monotone sequence). `ess_tail`: the smaller ESS of the indicators I(x <= q_0.05)
  and I(x <= q_0.95). Each: ok > 100 C >= warn > 10 C >= fail (100 per chain).
- `mcse_mean` = sd / sqrt(ESS_mean); `mcse_sd`: the delta-method error of sd from the ESS of
  (x - mean)^2. Reported, no verdict.
- A non-finite R-hat or ESS (a constant variable, one draw per chain, NaN draws) is "n/a".

**Checks** (each only when its statistic is in the tree, except `non_finite`):

- `divergences` (`sample_stats.diverging`): ok 0, warn <= 1% of draws, fail > 1%.
- `non_finite` (`sample_stats.non_finite`, HMC/NUTS): the fraction of transitions per chain
  whose trajectory met a non-finite log density (rejected, so the draws stay finite, but the
  region is never sampled); ok 0, fail >= 1. Listed as n/a when the tree has no such
  statistic (SG-MCMC: a chain that meets a non-finite value stops, see `stopped_chains`).
- `e_bfmi` (`sample_stats.energy`): E-BFMI = sum_t (E_t - E_{t-1})^2 / sum_t (E_t - mean E)^2
  per chain; ok if every chain >= 0.3, else warn.
- `tree_depth` (`sample_stats.tree_depth`): draws at the maximum tree depth
  (`bayesover_config["max_tree_depth"]`, default 10); ok 0, warn <= 10%, fail > 10%.
  Saturation costs efficiency, not validity.
- `pareto_k` (`log_likelihood` group, `arviz.loo`): k is the shape of the generalised Pareto
  fitted to the largest importance ratios 1 / p(y_i | theta_s) of PSIS-LOO. With
  k_thr = min(1 - 1 / log10(S), 0.7): ok if max k <= k_thr, warn < 1, fail >= 1. Above
  2,000 observations, on a fixed random subset of 2,000 (ArviZ's PSIS runs per observation).
  n/a, with the reason as a sentence (`loo_unavailable`), for one draw per chain (a deep
  ensemble's members are not draws from one posterior) or fewer than 25 draws in all (PSIS
  fits its Pareto tail to the largest fifth of the draws and needs at least 5 there).
- `stopped_chains` (`sample_stats.stopped`, SG-MCMC): fail if any chain stopped after a
  non-finite iterate; the variables are then diagnosed on the healthy chains.
- `draws`: C chains x D draws; warn when C < 4; n/a with one draw per chain (a deep
  ensemble, whose members are its chains).

Sources: Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021), "Rank-normalization, folding,
and localization: an improved R-hat", Bayesian Analysis 16(2) (R-hat, ESS, MCSE, >= 4 chains);
Betancourt (2016), "Diagnosing suboptimal cotangent disintegrations in Hamiltonian Monte
Carlo" (E-BFMI 0.3); Vehtari, Simpson, Gelman, Yao, Gabry (2024), "Pareto smoothed
importance sampling", JMLR 25 (k thresholds); Stan's `diagnose` (divergences, tree depth).

The table's text and HTML forms (`str(d)`, `d.to_html()`) are drawn by `_render`; the
thresholds above are in `_thresholds`.

Network trees (`task` "regression" or "classification", from `bo.to_datatree`): the weight
subsample `w` is not diagnosed by default, since weight-space R-hat is meaningless under the
permutation symmetries of a network; the function-space `f`, `log_lik`, `lp` and the
hyperparameters are. For other trees every posterior variable is diagnosed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesover._checks import ArgumentTypeError, check_bool
from bayesover.diagnostics import _render
from bayesover.diagnostics._thresholds import (
    CHECK_COLUMNS,
    DIVERGENCES_WARN,
    EBFMI_OK,
    ESS_OK_PER_CHAIN,
    ESS_WARN_PER_CHAIN,
    LEVEL,
    MIN_CHAINS,
    PARETO_K_OK,
    PARETO_K_WARN,
    PSIS_MIN_DRAWS,
    RHAT_OK,
    RHAT_WARN,
    STAT_COLUMNS,
    TREE_DEPTH_WARN,
    VARIABLE_COLUMNS,
    beside,
)

__all__ = ["Diagnostics", "diagnose"]

_SAMPLE_DIMS = ("chain", "draw")
_NETWORK_TASKS = ("regression", "classification")
_NOT_DIAGNOSED = ("w",)  # network trees: weight-space subsample
_TAIL_PROB = (0.05, 0.95)  # as R `posterior`'s ess_tail
_LOO_MAX_OBS = 2000  # above this, Pareto k on a random subset of observations
_LIST_CHAINS = 10  # reasons name at most this many chains


@dataclasses.dataclass(frozen=True, eq=False)
class Diagnostics:
    """The verdict table of a run, from `bo.diagnose(tree)`.

    **Fields:**

    - `variables`: one row per scalar element of each diagnosed posterior variable (index:
      labels such as `f[3]`, `f[3, 1]`, `mu`); columns `mean, sd, mcse_mean, mcse_sd,
      ess_bulk, ess_tail, r_hat` (ArviZ's values, unrounded), `verdict`, `reason`.
    - `checks`: one row per sampler-level check (index: `divergences`, `non_finite`,
      `e_bfmi`, `tree_depth`, `pareto_k`, `stopped_chains`, `draws`); columns `value`,
      `threshold` (text), `verdict`, `reason`.
    - `name`, `task`: the run's sampler name and task, from the tree's attributes.
    """

    variables: pd.DataFrame
    checks: pd.DataFrame
    name: str | None = None
    task: str | None = None

    @property
    def verdict(self) -> str:
        """The worst verdict of all lines ("ok" < "warn" < "fail"; "n/a" lines do not count;
        "n/a" if every line is)."""
        levels = [LEVEL[v] for v in self._verdicts() if v != "n/a"]
        return {0: "ok", 1: "warn", 2: "fail"}[max(levels)] if levels else "n/a"

    @property
    def counts(self) -> dict[str, int]:
        """How many lines (variables and checks) have each verdict."""
        found = pd.Series(self._verdicts()).value_counts()
        return {v: int(found.get(v, 0)) for v in ("fail", "warn", "ok", "n/a")}

    @property
    def table(self) -> pd.DataFrame:
        """All lines in one DataFrame, checks first: columns `kind` ("check" or
        "variable"), `verdict`, `reason`, the checks' `value` and `threshold`, and the
        variables' statistics."""
        checks = self.checks.assign(kind="check")
        variables = self.variables.assign(kind="variable")
        columns = ["kind", "verdict", "reason", "value", "threshold", *STAT_COLUMNS]
        table = pd.concat([checks, variables]).reindex(columns=columns)
        table.index.name = "name"
        return table

    def to_dict(self) -> dict[str, Any]:
        """The table as JSON-serialisable data (non-finite numbers become None):
        `{"verdict", "name", "task", "counts", "checks": {name: {...}}, "variables": [...]}`."""
        checks = self.checks.reindex(columns=list(CHECK_COLUMNS)).to_dict(orient="index")
        variables = self.variables.reindex(columns=list(VARIABLE_COLUMNS))
        return {
            "verdict": self.verdict,
            "name": self.name,
            "task": self.task,
            "counts": self.counts,
            "checks": {
                str(name): {k: _json_value(v) for k, v in row.items()}
                for name, row in checks.items()
            },
            "variables": [
                {"name": str(name), **{k: _json_value(v) for k, v in row.items()}}
                for name, row in zip(
                    variables.index, variables.to_dict(orient="records"), strict=True
                )
            ],
        }

    def to_html(self, *, fold: bool = False) -> str:
        """A self-contained `<table class="diagnostics">` (no external CSS or JS): checks,
        then variables, each worst first; each row `<tr class="ok|warn|fail|n/a">`.

        `fold=True` (as `bo.report` shows it): the table holds only the fail rows, then the
        warn rows (every check; the first 10 variables that fail or warn, fail first, and
        the others folded in a `<details>` under their count), and the ok and n/a rows follow
        folded in a `<details>` whose summary counts them ("41 ok, 3 n/a"), so the table
        stays short and the plots after it are not pages down.
        """
        return _render.to_html(self, fold=check_bool("fold", fold))

    def __str__(self) -> str:
        """A fixed-width text table: every check; every fail and warn variable, the first
        15 n/a and the first 15 ok variables, and a count of the rest."""
        return _render.to_text(self)

    def __repr__(self) -> str:
        return (
            f"Diagnostics(verdict={self.verdict!r}, variables={len(self.variables)}, "
            f"checks={list(self.checks.index)})"
        )

    def _verdicts(self) -> list[str]:
        return [*self.checks["verdict"], *self.variables["verdict"]]


def diagnose(tree: xr.DataTree, *, var_names: str | list[str] | None = None) -> Diagnostics:
    """R-hat, ESS and MCSE of every posterior variable, and the sampler's checks, each with a
    verdict and a reason (thresholds and maths: the module docstring).

    **Arguments:**

    - `tree`: an ArviZ `xarray.DataTree` with a `posterior` group (dims `chain`, `draw`),
      e.g. from `bo.to_datatree`; `sample_stats` and `log_likelihood` add checks.
    - `var_names`: the posterior variables to diagnose. Default: all of them, except the
      weight subsample `w` of a network tree (`task` "regression" or "classification").

    **Returns:** a `bo.Diagnostics`; `str(d)` prints the table, `d.verdict` is the worst line.
    """
    if not isinstance(tree, xr.DataTree):
        raise ArgumentTypeError(
            "`tree` must be an xarray.DataTree with a `posterior` group (e.g. from "
            f"bo.to_datatree or arviz.from_dict), got {type(tree).__name__}."
        )
    if "posterior" not in tree.children:
        raise ValueError(
            "`tree` has no `posterior` group; expected an ArviZ DataTree with groups "
            f"`posterior` (dims chain, draw) and optionally `sample_stats`, `log_likelihood`; "
            f"found groups {sorted(tree.children)}."
        )
    posterior = tree["posterior"].to_dataset()
    if any(dim not in posterior.dims for dim in _SAMPLE_DIMS):
        raise ValueError(
            f"`tree`'s `posterior` group must have dims `chain` and `draw`, has "
            f"{sorted(map(str, posterior.dims))}."
        )
    task = tree.attrs.get("task")
    names = _select(posterior, task, var_names)
    stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
    num_chains, num_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    healthy = _healthy_chains(stats, num_chains)
    with warnings.catch_warnings():  # ArviZ warns about NaN, constants, large k: we report them
        warnings.simplefilter("ignore")
        dataset = posterior[names].astype(np.float64)
        if not healthy.all() and healthy.any():
            dataset = dataset.isel(chain=np.flatnonzero(healthy))
        variables = _variables(dataset)
        checks = _checks(tree, posterior, stats, healthy, num_chains, num_draws)
    name = tree.attrs.get("name")
    return Diagnostics(
        variables,
        checks,
        name=None if name is None else str(name),
        task=None if task is None else str(task),
    )


# --------------------------------------------------------------------------------------------
# Variables


def _select(posterior: xr.Dataset, task: Any, var_names: str | list[str] | None) -> list[str]:
    available = [
        str(k)
        for k, v in posterior.data_vars.items()
        if all(d in v.dims for d in _SAMPLE_DIMS)
        and (np.issubdtype(v.dtype, np.number) or v.dtype == bool)
    ]
    if var_names is None:
        if task in _NETWORK_TASKS:
            return [k for k in available if k not in _NOT_DIAGNOSED]
        return available
    requested = [var_names] if isinstance(var_names, str) else list(var_names)
    unknown = [k for k in requested if k not in available]
    if unknown:
        raise ValueError(
            f"`var_names` has unknown variables {unknown}; the posterior's numeric variables "
            f"with dims (chain, draw) are {available}."
        )
    return list(dict.fromkeys(requested))


def _variables(dataset: xr.Dataset) -> pd.DataFrame:
    """ArviZ's statistics of every element, vectorised over each variable."""
    import arviz as az
    from arviz_base import dataset_to_dataframe

    if not dataset.data_vars:
        return pd.DataFrame(columns=list(VARIABLE_COLUMNS), index=pd.Index([], dtype=object))
    dims = list(_SAMPLE_DIMS)
    parts = {
        "mean": dataset.azstats.mean(dim=dims),
        "sd": dataset.azstats.std(dim=dims),
        "mcse_mean": az.mcse(dataset, sample_dims=dims, method="mean"),
        "mcse_sd": az.mcse(dataset, sample_dims=dims, method="sd"),
        "ess_bulk": az.ess(dataset, sample_dims=dims, method="bulk"),
        "ess_tail": az.ess(dataset, sample_dims=dims, method="tail", prob=_TAIL_PROB),
        "r_hat": az.rhat(dataset, sample_dims=dims, method="rank"),
    }
    stacked = xr.concat([v.expand_dims(summary=[k]) for k, v in parts.items()], dim="summary")
    table = dataset_to_dataframe(stacked, sample_dims=["summary"]).T
    table = table.reindex(columns=list(STAT_COLUMNS)).astype(np.float64)
    table.columns.name = None
    table.index = pd.Index([str(i) for i in table.index], dtype=object)
    verdicts, reasons = _variable_verdicts(table, dataset.sizes["chain"], dataset.sizes["draw"])
    return table.assign(verdict=verdicts, reason=reasons)


def _variable_verdicts(
    table: pd.DataFrame, num_chains: int, num_draws: int
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised levels per statistic; the reason text only for lines that are not ok."""
    rhat = table["r_hat"].to_numpy()
    ess = {k: table[k].to_numpy() for k in ("ess_bulk", "ess_tail")}
    ess_ok, ess_warn = ESS_OK_PER_CHAIN * num_chains, ESS_WARN_PER_CHAIN * num_chains
    with np.errstate(invalid="ignore"):
        levels = {
            "r_hat": np.where(rhat < RHAT_OK, 0, np.where(rhat < RHAT_WARN, 1, 2)),
            **{k: np.where(v > ess_ok, 0, np.where(v > ess_warn, 1, 2)) for k, v in ess.items()},
        }
    # ArviZ gives a constant variable ESS = S but R-hat NaN: treat all three as undefined.
    varies = ~(table["sd"].to_numpy() == 0)
    finite = {
        "r_hat": np.isfinite(rhat) & varies,
        **{k: np.isfinite(v) & varies for k, v in ess.items()},
    }
    for k in levels:
        levels[k] = np.where(finite[k], levels[k], -1)
    worst = np.max(np.stack(list(levels.values())), axis=0)
    any_undefined = ~np.all(np.stack(list(finite.values())), axis=0)
    verdicts = np.array(["n/a", "ok", "warn", "fail"], dtype=object)[worst + 1]
    reasons = np.full(len(table), "", dtype=object)
    mean, sd = table["mean"].to_numpy(), table["sd"].to_numpy()
    for i in np.flatnonzero((worst != 0) | any_undefined):
        level_of = {k: int(levels[k][i]) for k in levels}
        values = {"r_hat": rhat[i], **{k: v[i] for k, v in ess.items()}}
        parts = [_reason(level_of, values, num_chains)] if worst[i] > 0 else []
        if any_undefined[i]:
            undefined = [k for k in ("r_hat", "ess_bulk", "ess_tail") if not finite[k][i]]
            parts.append(_undefined_reason(undefined, mean[i], sd[i], num_chains, num_draws))
        reasons[i] = "; ".join(parts)
    return verdicts, reasons


def _reason(level: dict[str, int], value: dict[str, float], num_chains: int) -> str:
    """E.g. "R-hat 1.034 >= 1.01; ESS bulk 212 < 400 (100 per chain x 4 chains): chains not
    fully mixed; run longer"."""
    findings = []
    if level["r_hat"] > 0:
        bound = RHAT_WARN if level["r_hat"] == 2 else RHAT_OK
        findings.append(f"R-hat {beside(value['r_hat'], bound, 3)} >= {bound}")
    for lv in (2, 1):
        low = [k for k in ("ess_bulk", "ess_tail") if level[k] == lv]
        if low:
            per_chain = ESS_WARN_PER_CHAIN if lv == 2 else ESS_OK_PER_CHAIN
            bound = per_chain * num_chains
            which = ", ".join(f"{k[4:]} {beside(value[k], bound, 0)}" for k in low)
            cmp = "<" if all(value[k] < bound for k in low) else "<="
            findings.append(
                f"ESS {which} {cmp} {bound} ({per_chain} per chain x {num_chains} chains)"
            )
    if level["r_hat"] == 2:
        advice = "chains disagree; run longer or reparameterise"
    elif level["r_hat"] == 1:
        advice = "chains not fully mixed; run longer"
    else:
        advice = "too few effective draws; run longer"
    return "; ".join(findings) + ": " + advice


def _undefined_reason(
    undefined: list[str], mean: float, sd: float, num_chains: int, num_draws: int
) -> str:
    if len(undefined) == 3:
        names = "R-hat and ESS"
    else:
        names = " and ".join(
            {"r_hat": "R-hat", "ess_bulk": "ESS bulk", "ess_tail": "ESS tail"}[n] for n in undefined
        )
    if num_draws == 1:
        why = "one draw per chain (a deep ensemble's members are its chains)"
    elif not (np.isfinite(mean) and np.isfinite(sd)):
        why = "non-finite draws (NaN or inf)"
    elif sd == 0:
        why = "constant across all draws"
    elif num_chains == 1 and undefined == ["r_hat"]:
        why = "a single chain"
    else:
        why = "too few draws or degenerate draws"
    return f"{names} undefined: {why}"


# --------------------------------------------------------------------------------------------
# Checks


def _healthy_chains(stats: xr.Dataset | None, num_chains: int) -> np.ndarray:
    if stats is None or "stopped" not in stats:
        return np.ones(num_chains, dtype=bool)
    stopped = stats["stopped"].astype(bool)
    other = [d for d in stopped.dims if d != "chain"]
    return ~np.asarray(stopped.any(dim=other).transpose("chain"))


def _checks(
    tree: xr.DataTree,
    posterior: xr.Dataset,
    stats: xr.Dataset | None,
    healthy: np.ndarray,
    num_chains: int,
    num_draws: int,
) -> pd.DataFrame:
    rows: dict[str, tuple[str, str, str, str]] = {}
    if stats is not None and "diverging" in stats:
        rows["divergences"] = _divergences(stats["diverging"])
    rows["non_finite"] = _non_finite(stats)
    if stats is not None and "energy" in stats:
        rows["e_bfmi"] = _e_bfmi(stats)
    if stats is not None and "tree_depth" in stats:
        rows["tree_depth"] = _tree_depth(stats["tree_depth"], _max_tree_depth(tree))
    if "log_likelihood" in tree.children:
        loglik = tree["log_likelihood"].to_dataset()
        names = [
            str(k) for k, v in loglik.data_vars.items() if all(d in v.dims for d in _SAMPLE_DIMS)
        ]
        groups = {"posterior": posterior, "log_likelihood": loglik}
        if not healthy.all() and healthy.any():
            keep = np.flatnonzero(healthy)
            groups = {g: ds.isel(chain=keep) for g, ds in groups.items()}
        for k in names:
            key = "pareto_k" if len(names) == 1 else f"pareto_k[{k}]"
            rows[key] = _pareto_k(groups, k)
    if stats is not None and "stopped" in stats:
        rows["stopped_chains"] = _stopped(healthy)
    rows["draws"] = _draws(num_chains, num_draws)
    checks = pd.DataFrame.from_dict(rows, orient="index", columns=list(CHECK_COLUMNS))
    checks.index = pd.Index(list(rows), dtype=object)
    return checks


def _divergences(diverging: xr.DataArray) -> tuple[str, str, str, str]:
    values = np.asarray(diverging).astype(bool)
    count, total = int(values.sum()), values.size
    frac = count / total if total else 0.0
    value = f"{count} of {total} draws ({100 * frac:.3g}%)"
    threshold = f"ok 0, warn <= {100 * DIVERGENCES_WARN:g}%, fail > {100 * DIVERGENCES_WARN:g}%"
    if count == 0:
        return value, threshold, "ok", ""
    verdict = "warn" if frac <= DIVERGENCES_WARN else "fail"
    cmp = "<=" if verdict == "warn" else ">"
    reason = (
        f"{count} divergent transitions ({100 * frac:.3g}% {cmp} 1%): the sampler missed "
        "regions of high curvature, so the draws may be biased; raise "
        "target_acceptance_rate or reparameterise"
    )
    return value, threshold, verdict, reason


def _e_bfmi(stats: xr.Dataset) -> tuple[str, str, str, str]:
    import arviz as az

    threshold = f"ok >= {EBFMI_OK} in every chain, else warn"
    try:
        bfmi = np.asarray(az.bfmi(stats, var_names="energy")["energy"], dtype=np.float64)
    except Exception as err:  # noqa: BLE001  (the check is optional; say why it is missing)
        return "-", threshold, "n/a", f"arviz.bfmi failed: {_one_line(err)}"
    bfmi = np.atleast_1d(bfmi)
    if not np.all(np.isfinite(bfmi)):
        return "-", threshold, "n/a", "E-BFMI undefined (constant or non-finite energy)"
    low = np.flatnonzero(bfmi < EBFMI_OK)
    per_chain = ", ".join(f"{b:.3g}" for b in bfmi) if bfmi.size <= 8 else None
    value = f"min {bfmi.min():.3g}" + (f" (per chain: {per_chain})" if per_chain else "")
    if low.size == 0:
        return value, threshold, "ok", ""
    reason = (
        f"E-BFMI {bfmi.min():.3g} < {EBFMI_OK} in chain(s) {low.tolist()}: momentum "
        "resampling explores the energy poorly; reparameterise or check for heavy tails"
    )
    return value, threshold, "warn", reason


def _max_tree_depth(tree: xr.DataTree) -> int:
    try:
        config = json.loads(tree.attrs.get("bayesover_config", "{}"))
        return int(config.get("max_tree_depth", 10))
    except (TypeError, ValueError, AttributeError):
        return 10


def _tree_depth(depth: xr.DataArray, max_depth: int) -> tuple[str, str, str, str]:
    values = np.asarray(depth)
    count, total = int((values >= max_depth).sum()), values.size
    frac = count / total if total else 0.0
    value = f"{count} of {total} draws ({100 * frac:.3g}%) at max depth {max_depth}"
    threshold = f"ok 0, warn <= {100 * TREE_DEPTH_WARN:g}%, fail > {100 * TREE_DEPTH_WARN:g}%"
    if count == 0:
        return value, threshold, "ok", ""
    verdict = "warn" if frac <= TREE_DEPTH_WARN else "fail"
    reason = (
        f"{100 * frac:.3g}% of trajectories stopped at max tree depth {max_depth}: "
        "inefficient (not biased) exploration; raise max_tree_depth or reparameterise"
    )
    return value, threshold, verdict, reason


def _pareto_k(groups: dict[str, xr.Dataset], var_name: str) -> tuple[str, str, str, str]:
    """`arviz.loo` on `log_likelihood[var_name]` (it reads the draw counts from `posterior`);
    on a fixed random subset of `_LOO_MAX_OBS` observations when there are more, since
    ArviZ's PSIS works one observation at a time (a few ms each)."""
    import arviz as az

    loglik = groups["log_likelihood"][[var_name]]
    num_samples = loglik.sizes["chain"] * loglik.sizes["draw"]
    k_thr = _pareto_k_threshold(num_samples)
    why = loo_unavailable(loglik.sizes["chain"], loglik.sizes["draw"])
    if why is not None:
        threshold = _pareto_threshold(f"min(1 - 1/log10(S), {PARETO_K_OK})")
        return "-", threshold, "n/a", f"PSIS-LOO does not apply: {why}"
    num_obs = int(np.prod([n for d, n in loglik[var_name].sizes.items() if d not in _SAMPLE_DIMS]))
    subset = num_obs > _LOO_MAX_OBS
    if subset:
        loglik = _subsample_obs(loglik[var_name], _LOO_MAX_OBS)
    try:
        loo = az.loo(xr.DataTree.from_dict({**groups, "log_likelihood": loglik}), var_name=var_name)
        k = np.asarray(loo.pareto_k, dtype=np.float64).ravel()
        k_thr = float(getattr(loo, "good_k", k_thr))  # ArviZ's own value, the same formula
    except Exception as err:  # noqa: BLE001  (an optional check: say why it is missing)
        threshold = _pareto_threshold(f"min(1 - 1/log10(S), {PARETO_K_OK})")
        return "-", threshold, "n/a", f"arviz.loo failed: {_one_line(err)}"
    threshold = _pareto_threshold(f"{k_thr:.2f}")
    if k.size == 0 or not np.any(np.isfinite(k)):
        return "-", threshold, "n/a", "Pareto k undefined (no finite log-likelihood values)"
    undefined = int(np.sum(~np.isfinite(k)))  # e.g. importance ratios that overflow
    max_k = math.inf if undefined else float(np.max(k))
    bad = int(np.sum(k > k_thr)) + undefined
    if subset:
        value = (
            f"{bad} of {k.size} random obs (of {num_obs}) with k > {k_thr:.2f}; max k "
            f"{max_k:.3g}; elpd_loo per obs {loo.elpd / k.size:.4g} (SE {loo.se / k.size:.3g})"
        )
    else:
        value = (
            f"{bad} of {k.size} obs with k > {k_thr:.2f}; max k {max_k:.3g}; "
            f"elpd_loo {loo.elpd:.4g} (SE {loo.se:.3g})"
        )
    if max_k <= k_thr:
        return value, threshold, "ok", ""
    if max_k >= PARETO_K_WARN:
        what = f"{undefined} obs with undefined k, " if undefined else ""
        reason = (
            f"max Pareto k {max_k:.3g} >= {PARETO_K_WARN:g} ({what}{bad} obs > {k_thr:.2f}): "
            "PSIS-LOO is unreliable; use K-fold CV or a more robust model"
        )
        return value, threshold, "fail", reason
    reason = (
        f"{bad} obs with Pareto k > {k_thr:.2f} = min(1 - 1/log10({num_samples} draws), "
        f"{PARETO_K_OK}) (max {max_k:.3g}): PSIS-LOO is unreliable for them; "
        "more draws, moment matching or K-fold CV"
    )
    return value, threshold, "warn", reason


def _subsample_obs(loglik: xr.DataArray, size: int) -> xr.Dataset:
    """`size` observations drawn without replacement (numpy seed 0), flattened to `obs`."""
    loglik = loglik.transpose(*_SAMPLE_DIMS, ...)
    values = np.asarray(loglik).reshape(loglik.sizes["chain"], loglik.sizes["draw"], -1)
    keep = np.sort(np.random.default_rng(0).choice(values.shape[-1], size, replace=False))
    coords = {d: loglik[d] for d in _SAMPLE_DIMS if d in loglik.coords}
    data = xr.DataArray(values[..., keep], dims=(*_SAMPLE_DIMS, "obs"), coords=coords)
    return xr.Dataset({loglik.name: data})


def loo_unavailable(num_chains: int, num_draws: int) -> str | None:
    """Why PSIS-LOO does not apply to `num_chains` x `num_draws` draws, as a phrase for a
    sentence, or None when it does.

    It does not with one draw per chain (a deep ensemble: its members are independently
    trained, not draws from one posterior, so importance ratios between them mean nothing),
    nor with fewer than 25 draws in all (PSIS fits a generalised Pareto to the largest
    floor(S / 5) importance ratios and needs at least 5 of them). `bo.diagnose` and
    `bo.report` both word it with this function.
    """
    if num_draws < 2:
        return (
            "one draw per chain (a deep ensemble), whose members are trained independently, "
            "not drawn from one posterior"
        )
    total = num_chains * num_draws
    if total < PSIS_MIN_DRAWS:
        return (
            f"only {total} draws in all, and PSIS needs at least {PSIS_MIN_DRAWS} (it fits a "
            "Pareto tail to the largest fifth of the importance ratios, at least 5 of them)"
        )
    return None


def _pareto_k_threshold(num_samples: int) -> float:
    """min(1 - 1 / log10(S), 0.7): ArviZ 1.x's sample-size-dependent k threshold."""
    if num_samples <= 1:
        return -math.inf
    return min(1.0 - 1.0 / math.log10(num_samples), PARETO_K_OK)


def _pareto_threshold(k_thr: str) -> str:
    return f"ok k <= {k_thr}, warn < {PARETO_K_WARN:g}, fail >= {PARETO_K_WARN:g}"


def _non_finite(stats: xr.Dataset | None) -> tuple[str, str, str, str]:
    """Per chain, the fraction of transitions whose trajectory met a non-finite log density
    (HMC/NUTS's `non_finite`): ok when none did, fail otherwise, n/a without the statistic."""
    threshold = "ok 0, fail >= 1 transition"
    if stats is None or "non_finite" not in stats:
        sgmcmc = stats is not None and "stopped" in stats
        reason = (
            "SG-MCMC records no non_finite statistic: a chain that meets a non-finite value "
            "stops (see stopped_chains)"
            if sgmcmc
            else "the tree has no sample_stats.non_finite (bayesover's HMC and NUTS record it)"
        )
        return "-", threshold, "n/a", reason
    flags = stats["non_finite"].astype(bool)
    flags = flags.transpose("chain", ...) if "chain" in flags.dims else flags.expand_dims("chain")
    per_chain = np.asarray(flags, dtype=bool).reshape(flags.sizes["chain"], -1)
    total = per_chain.size
    count = int(per_chain.sum())
    fraction = per_chain.mean(axis=1) if per_chain.shape[1] else np.zeros(per_chain.shape[0])
    bad = np.flatnonzero(fraction > 0)
    value = (
        f"{count} of {total} transitions ({_percent(count / total if total else 0.0)}) in "
        f"{bad.size} of {per_chain.shape[0]} chains"
    )
    if bad.size == 0:
        return value, threshold, "ok", ""
    shown = bad[:_LIST_CHAINS]
    more = f" (and {bad.size - shown.size} more)" if bad.size > shown.size else ""
    chains = ", ".join(str(c) for c in shown.tolist())
    fractions = ", ".join(_percent(f) for f in fraction[shown])
    reason = (
        f"chain{'s' if bad.size > 1 else ''} {chains}{more} met a non-finite log density in "
        f"{fractions} of transitions: the "
        "model is undefined (NaN/inf) where the sampler went; those trajectories were "
        "rejected, so the draws miss that region as if the posterior were cut off there; "
        "fix the model's numerics (overflow, log of 0) or constrain its parameters"
    )
    return value, threshold, "fail", reason


def _stopped(healthy: np.ndarray) -> tuple[str, str, str, str]:
    stopped = np.flatnonzero(~healthy)
    value = f"{stopped.size} of {healthy.size} chains stopped"
    threshold = "ok 0, fail >= 1"
    if stopped.size == 0:
        return value, threshold, "ok", ""
    rest = (
        f"the variables are diagnosed on the {int(healthy.sum())} healthy chains"
        if healthy.any()
        else "no healthy chain is left"
    )
    reason = (
        f"chains {stopped.tolist()} stopped after a non-finite iterate (step size too "
        f"large?), their later draws are NaN; {rest}"
    )
    return value, threshold, "fail", reason


def _draws(num_chains: int, num_draws: int) -> tuple[str, str, str, str]:
    value = f"{num_chains} chains x {num_draws} draws"
    threshold = f"ok >= {MIN_CHAINS} chains, else warn"
    if num_draws == 1:
        reason = (
            "one draw per chain (a deep ensemble's members are its chains): "
            "R-hat and ESS are undefined"
        )
        return value, threshold, "n/a", reason
    if num_chains < MIN_CHAINS:
        reason = (
            f"{num_chains} chain{'s' if num_chains != 1 else ''} < {MIN_CHAINS}: Vehtari et "
            f"al. (2021) recommend at least {MIN_CHAINS} chains to detect non-convergence"
        )
        return value, threshold, "warn", reason
    return value, threshold, "ok", ""


# --------------------------------------------------------------------------------------------
# Formatting


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}"


def _percent(fraction: float) -> str:
    """27.3% and 0.5%: three significant digits, as the other checks print fractions."""
    return f"{100 * fraction:.3g}%"


def _json_value(x: Any) -> Any:
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x
