"""`EvidenceResult`: what every evidence estimator returns.

The value is log M(x^n) = log integral w(theta) prod_i P_theta(x_i)^(1/T) d theta in nats, the
mean over `num_runs` independent runs; its standard error is std(runs, ddof=1) / sqrt(num_runs).
An estimator whose effective sample size collapsed sets `collapsed=True`: its number is then not
to be trusted, and printing the result says so.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True, repr=False)
class EvidenceResult:
    """A log-evidence estimate (host values).

    **Fields:**

    - `value`: log M in nats (the mean of `runs`, unless the method pools its runs: "ais"
      takes log-mean-exp over all runs' weights, "laplace" the highest mode).
    - `stderr`: std(runs, ddof=1) / sqrt(num_runs); NaN with one run (0 for deterministic
      methods such as "laplace").
    - `runs`: `(num_runs,)` per-run estimates.
    - `method`: the estimator's name.
    - `ess`: the smallest effective sample size seen (None where it has no meaning).
    - `collapsed`: the effective sample size collapsed (or the method failed, see
      `diagnostics["reason"]`); `value` is then not trustworthy.
    - `num_nonfinite`: particles whose log-likelihood was non-finite (their weight was set to 0).
    - `diagnostics`: extra per-method information (tempering steps, acceptance rates, ...).
    - `terms`: `(num_runs, n)` prequential terms log M(x_t | x^{t-1}), or None.
    """

    value: float
    stderr: float
    runs: np.ndarray
    method: str
    ess: float | None = None
    collapsed: bool = False
    num_nonfinite: int = 0
    diagnostics: dict[str, Any] = dataclasses.field(default_factory=dict)
    terms: np.ndarray | None = None

    @classmethod
    def from_runs(cls, runs: Any, method: str, **fields: Any) -> EvidenceResult:
        """Value = mean of `runs` (unless `value` is given, e.g. a pooled estimate), stderr =
        std(runs, ddof=1) / sqrt(num_runs) (NaN for one run)."""
        runs = np.asarray(runs, np.float64).reshape(-1)
        if runs.size == 0:
            raise ValueError("`runs` is empty.")
        value = float(fields.pop("value", np.mean(runs)))
        if runs.size > 1 and np.all(np.isfinite(runs)):
            stderr = float(np.std(runs, ddof=1) / math.sqrt(runs.size))
        else:
            stderr = float("nan")
        fields.setdefault("stderr", stderr)
        return cls(value=value, runs=runs, method=method, **fields)

    @property
    def num_runs(self) -> int:
        return int(np.size(self.runs))

    @property
    def reliable(self) -> bool:
        """Not collapsed, and the value is finite."""
        return (not self.collapsed) and math.isfinite(self.value)

    def __str__(self) -> str:
        runs = f"{self.num_runs} run" + ("s" if self.num_runs != 1 else "")
        text = f"log M = {self.value:.2f} ± {self.stderr:.2f} nats ({self.method}, {runs})"
        if self.collapsed:
            reason = self.diagnostics.get("reason", "the effective sample size collapsed")
            text += f" [UNRELIABLE: {reason}]"
        elif not math.isfinite(self.value):
            text += " [UNRELIABLE: non-finite value]"
        if self.num_nonfinite:
            text += f" ({self.num_nonfinite} non-finite particles dropped)"
        return text

    def __repr__(self) -> str:
        ess = "None" if self.ess is None else f"{self.ess:.1f}"
        return f"EvidenceResult({self}; ess={ess})"
