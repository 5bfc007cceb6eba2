"""The numbers of `bo.diagnose`'s verdicts: thresholds and table columns (see `_verdict`), shared
by the computing (`_verdict`) and the rendering (`_render`) of the table."""

from __future__ import annotations

LEVEL = {"n/a": -1, "ok": 0, "warn": 1, "fail": 2}
STAT_COLUMNS = ("mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")
VARIABLE_COLUMNS = (*STAT_COLUMNS, "verdict", "reason")
CHECK_COLUMNS = ("value", "threshold", "verdict", "reason")

RHAT_OK, RHAT_WARN = 1.01, 1.1
ESS_OK_PER_CHAIN, ESS_WARN_PER_CHAIN = 100, 10
PARETO_K_OK, PARETO_K_WARN = 0.7, 1.0
DIVERGENCES_WARN = 0.01
EBFMI_OK = 0.3
TREE_DEPTH_WARN = 0.10
MIN_CHAINS = 4
PSIS_MIN_DRAWS = 25  # arviz-stats fits the Pareto tail to floor(S / 5) >= 5 draws


def beside(x: float, bound: float, decimals: int) -> str:
    """`x` with `decimals` decimals, or more (up to 3 more) where it would print as `bound`:
    R-hat 1.0104 is not "1.010 >= 1.01"."""
    if x == bound:
        return f"{x:.{decimals}f}"
    for d in range(decimals, decimals + 4):
        if round(x, d) != round(bound, d):
            break
    return f"{x:.{d}f}"
