"""`attach`: lens results as the `lens` group of a run's DataTree, for the HTML report.

Every lens result (`RegretResult`, `WeightCurve`, `Bounds`, ...) has `to_dataset()`; the
report plots the variables `regret`/`regret_stderr` against `n` and
`neg_log_weight`/`neg_log_weight_stderr` against `eps` from the group `lens`.
"""

from __future__ import annotations

from typing import Any

import xarray as xr


def attach(tree: xr.DataTree, *results: Any) -> xr.DataTree:
    """A copy of `tree` whose `lens` group holds the merged `to_dataset()` of `results`
    (merged with an existing `lens` group; later results win on name clashes)."""
    if not isinstance(tree, xr.DataTree):
        raise TypeError(f"`tree` must be an xarray.DataTree, got {type(tree).__name__}.")
    if not results:
        raise ValueError("`results` is empty: pass at least one lens result.")
    datasets = []
    for index, result in enumerate(results):
        to_dataset = getattr(result, "to_dataset", None)
        if not callable(to_dataset):
            raise TypeError(
                f"`results[{index}]` ({type(result).__name__}) has no to_dataset(); pass "
                "bo.lens results (RegretResult, WeightCurve, Bounds, ...)."
            )
        datasets.append(to_dataset())
    out = tree.copy()
    if "lens" in out.children:
        datasets.insert(0, out["lens"].to_dataset())
    merged = datasets[0]
    for dataset in datasets[1:]:
        merged = _overlay(merged, dataset)
    out["lens"] = xr.DataTree(merged)
    return out


def _overlay(base: xr.Dataset, top: xr.Dataset) -> xr.Dataset:
    """`base` with every variable of `top` added or replacing its namesake (outer join on
    shared coordinates)."""
    kept = base.drop_vars([v for v in top.data_vars if v in base.data_vars])
    unused = [d for d in kept.dims if not any(d in v.dims for v in kept.data_vars.values())]
    kept = kept.drop_dims(unused)
    return xr.merge([kept, top], join="outer", combine_attrs="drop_conflicts")
