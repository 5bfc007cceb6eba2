"""The bound chain of the universality lens, side by side for each sample size n:

    D(P_theta0^n || M)  <=  -log integral w(theta) e^(-n K(theta)) d theta
                        <=  min_eps [-log W(eps) + n eps]     (Barron's index of resolvability)

The middle term from the whole weight curve, by integration by parts:
integral w e^(-n K) = integral_0^inf n e^(-n eps) W(eps) d eps. W is known on a grid
eps_1 < ... < eps_G; between grid points it is taken as a power law (log W linear in log eps;
W is monotone, so this is the natural interpolation and it is exact for W ~ eps^lambda); the
integral is then done by 64-point Gauss-Legendre per grid interval in log eps. Above eps_G,
W is held at W(eps_G) (= 1 once the grid reaches the top; a lower bound of W otherwise), which
gives W(eps_G) e^(-n eps_G). Below eps_1 (`tail`):

- `"power_law"` (default): W(eps) = W(eps_1) (eps / eps_1)^s, s the least-squares slope of
  log W against log eps over the first `tail_points` grid points (the small-eps law
  W ~ eps^lambda), integrated exactly: W(eps_1) eps_1^-s n^-s Gamma(s + 1) P(s + 1, n eps_1);
- `"zero"`: W = 0 below eps_1 (and eps >= eps_1 in the min): both bounds then stay upper bounds
  without extrapolation, only looser.

`tail_fraction` is the share of the integral from below eps_1: when it is large, extend the grid.
Every term is a function of the SAME curve, so exp-integral <= resolvability holds exactly for it;
the first inequality is checked within `num_stderr` combined standard errors.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import scipy.special as sc

from bayesover.lens._weight import WeightCurve

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The regret and its two bounds for each n (host arrays of shape `(len(n),)`).

    **Fields:** `n`; `regret`, `regret_stderr` (NaN when not given); `exp_integral_bound`
    -log integral w e^(-nK) and its `exp_integral_stderr`; `resolvability_bound`
    min_eps [-log W(eps) + n eps], its `resolvability_stderr` and minimiser `eps_star`;
    `margin_regret` (exp-integral - regret) and `margin_resolvability` (resolvability -
    exp-integral); `holds` (regret <= exp-integral <= resolvability within `num_stderr`
    standard errors; without a regret only the second); `tail_fraction`; `tail`.
    `eps_used`: the grid points of the curve the bounds used (its reliable, finite ones).
    Standard errors of the bounds treat the curve's errors as perfectly correlated along eps
    (splitting errors accumulate level by level), so they are sums of weighted stderrs.
    """

    n: np.ndarray
    regret: np.ndarray
    regret_stderr: np.ndarray
    exp_integral_bound: np.ndarray
    exp_integral_stderr: np.ndarray
    resolvability_bound: np.ndarray
    resolvability_stderr: np.ndarray
    eps_star: np.ndarray
    margin_regret: np.ndarray
    margin_resolvability: np.ndarray
    holds: np.ndarray
    tail_fraction: np.ndarray
    tail: str
    num_stderr: float
    eps_used: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    def __str__(self) -> str:
        lines = ["n        regret            exp-integral      resolvability   eps*      holds"]
        for i in range(self.n.size):
            lines.append(
                f"{int(self.n[i]):<8d} {self.regret[i]:7.3f} ± {self.regret_stderr[i]:<6.3f}  "
                f"{self.exp_integral_bound[i]:7.3f} ± {self.exp_integral_stderr[i]:<6.3f}  "
                f"{self.resolvability_bound[i]:7.3f}        {self.eps_star[i]:<8.3g}  "
                f"{bool(self.holds[i])}"
            )
        if self.eps_used.size:
            lines.append(
                f"(from {self.eps_used.size} reliable points of the W curve, eps in "
                f"[{self.eps_used.min():.3g}, {self.eps_used.max():.3g}])"
            )
        return "\n".join(lines)

    def to_dataset(self):
        """`xarray.Dataset` along dim `n`: `regret`, `regret_stderr`, `exp_integral_bound`,
        `resolvability_bound`, `eps_star`, and the stderrs, margins, `holds`, `tail_fraction`."""
        import xarray as xr

        names = [
            "regret",
            "regret_stderr",
            "exp_integral_bound",
            "exp_integral_stderr",
            "resolvability_bound",
            "resolvability_stderr",
            "eps_star",
            "margin_regret",
            "margin_resolvability",
            "holds",
            "tail_fraction",
        ]
        return xr.Dataset(
            {name: ("n", np.asarray(getattr(self, name))) for name in names},
            coords={"n": self.n},
            attrs={
                "tail": self.tail,
                "num_stderr": self.num_stderr,
                "eps_used_min": float(self.eps_used.min()) if self.eps_used.size else np.nan,
                "eps_used_max": float(self.eps_used.max()) if self.eps_used.size else np.nan,
                "num_eps_used": int(self.eps_used.size),
            },
        )


def bounds(
    *,
    n: Any = None,
    weight_curve: WeightCurve,
    regret: Any = None,
    regret_stderr: Any = None,
    log_evidence_result: Any = None,
    truth_loglik: Any = None,
    tail: str = "power_law",
    tail_points: int = 3,
    num_stderr: float = 3.0,
) -> Bounds:
    """The regret beside its exponential-integral and resolvability bounds, for each n.

    **Arguments:**

    - `n`: sample sizes (an int or a 1-D array); default: `regret.n`.
    - `weight_curve`: a `WeightCurve`; only its `reliable`, finite points are used (which:
      `Bounds.eps_used`).
    - `regret`: a `RegretResult` (fields `n`, `regret`, `regret_stderr`; its values at `n` are
      used, all of them when `n` is None), or numbers, one per n
      (with `regret_stderr`, default 0: e.g. an exact expected regret), or None.
    - `log_evidence_result`: instead of `regret`, `EvidenceResult`(s) (one per n) with
      `truth_loglik` log P_theta0(x^n) (one per n): regret = truth_loglik - log M, the realised
      regret of that data set, with the evidence's stderr.
    - `tail`: `"power_law"` or `"zero"` (see the module docstring); `tail_points` for the slope.
    - `num_stderr`: how many combined standard errors count as "within the errors".
    """
    if not isinstance(weight_curve, WeightCurve):
        raise TypeError(f"`weight_curve` must be a WeightCurve, got {type(weight_curve).__name__}.")
    if tail not in ("power_law", "zero"):
        raise ValueError(f"`tail` must be 'power_law' or 'zero', got {tail!r}.")
    if regret is not None and log_evidence_result is not None:
        raise ValueError("give `regret` or `log_evidence_result`, not both.")
    if n is None and regret is not None and hasattr(regret, "regret_stderr"):
        n = regret.n
    if n is None:
        raise ValueError("`n` is required (or a RegretResult as `regret`).")
    sizes = np.atleast_1d(np.asarray(n, np.float64))
    if sizes.ndim != 1 or sizes.size == 0 or not np.all((sizes > 0) & np.isfinite(sizes)):
        raise ValueError(f"`n` must be positive sample sizes, got {n!r}.")
    r, r_se = _regret(sizes, regret, regret_stderr, log_evidence_result, truth_loglik)

    eps, log_w, log_w_se = _curve(weight_curve)
    slope = _tail_slope(eps, log_w, tail_points)
    ei, ei_se, tail_fraction = [], [], []
    res, res_se, eps_star = [], [], []
    for size in sizes:
        value, stderr, fraction = _exp_integral(size, eps, log_w, log_w_se, slope, tail)
        ei.append(value)
        ei_se.append(stderr)
        tail_fraction.append(fraction)
        value, stderr, star = _resolvability(size, eps, log_w, log_w_se, slope, tail)
        res.append(value)
        res_se.append(stderr)
        eps_star.append(star)
    ei_a, res_a = np.array(ei), np.array(res)
    ei_se_a, res_se_a = np.array(ei_se), np.array(res_se)
    margin_regret = ei_a - r
    margin_res = res_a - ei_a
    upper_ok = margin_res >= -(num_stderr * np.abs(res_se_a - ei_se_a) + 1e-6 * np.abs(res_a))
    lower_ok = margin_regret >= -num_stderr * np.sqrt(np.nan_to_num(r_se) ** 2 + ei_se_a**2)
    holds = np.where(np.isnan(r), upper_ok, upper_ok & lower_ok)
    return Bounds(
        n=sizes.astype(np.int64) if np.all(sizes == np.round(sizes)) else sizes,
        regret=r,
        regret_stderr=r_se,
        exp_integral_bound=ei_a,
        exp_integral_stderr=ei_se_a,
        resolvability_bound=res_a,
        resolvability_stderr=res_se_a,
        eps_star=np.array(eps_star),
        margin_regret=margin_regret,
        margin_resolvability=margin_res,
        holds=holds,
        tail_fraction=np.array(tail_fraction),
        tail=tail,
        num_stderr=float(num_stderr),
        eps_used=eps,
    )


# ---------------------------------------------------------------------------- inputs


def _regret(sizes, regret, regret_stderr, evidence, truth_loglik):
    m = sizes.size
    nan = np.full(m, np.nan)
    if evidence is not None:
        if truth_loglik is None:
            raise ValueError("`log_evidence_result` needs `truth_loglik` (log P_theta0(x^n)).")
        results = list(evidence) if isinstance(evidence, (list, tuple)) else [evidence]
        values = np.array([float(e.value) for e in results])
        stderrs = np.array([float(e.stderr) for e in results])
        truth = np.broadcast_to(np.asarray(truth_loglik, np.float64), values.shape)
        return _per_n(truth - values, m, "log_evidence_result"), _per_n(stderrs, m, "stderr")
    if regret is None:
        return nan, nan
    if hasattr(regret, "regret") and hasattr(regret, "regret_stderr"):
        given_n = np.atleast_1d(np.asarray(regret.n, np.float64))
        values = np.atleast_1d(np.asarray(regret.regret, np.float64))
        stderrs = np.atleast_1d(np.asarray(regret.regret_stderr, np.float64))
        index = [int(np.argmin(np.abs(given_n - size))) for size in sizes]
        if not np.allclose(given_n[index], sizes):
            raise ValueError(f"the RegretResult has no regret at some n of {sizes} ({given_n}).")
        return values[index], stderrs[index]
    values = _per_n(np.asarray(regret, np.float64), m, "regret")
    stderrs = np.zeros(m) if regret_stderr is None else np.asarray(regret_stderr, np.float64)
    return values, _per_n(stderrs, m, "regret_stderr")


def _per_n(values, m, name):
    values = np.atleast_1d(np.asarray(values, np.float64))
    if values.size == 1:
        values = np.full(m, float(values[0]))
    if values.shape != (m,):
        raise ValueError(f"`{name}` must give one value per n ({m}), got shape {values.shape}.")
    return values


def _curve(curve: WeightCurve):
    """The curve's reliable, finite points (eps, log W made monotone and <= 0, stderr)."""
    keep = np.isfinite(curve.log_weight) & np.asarray(curve.reliable, bool)
    if keep.sum() < 2:
        raise ValueError(
            f"`weight_curve` has {int(keep.sum())} reliable finite points; the bounds need 2 "
            f"(see `weight_curve.reasons`)."
        )
    eps = np.asarray(curve.eps, np.float64)[keep]
    log_w = np.minimum(np.maximum.accumulate(np.asarray(curve.log_weight, np.float64)[keep]), 0.0)
    se = np.nan_to_num(np.asarray(curve.log_weight_stderr, np.float64)[keep])
    return eps, log_w, se


def _tail_slope(eps, log_w, points):
    k = max(2, min(int(points), eps.size))
    x, y = np.log(eps[:k]), log_w[:k]
    slope = np.polyfit(x, y, 1)[0]
    return float(max(slope, 0.0))


# ---------------------------------------------------------------------------- the two bounds


def _log_gammainc(a: float, x: float) -> float:
    """log P(a, x) without underflow (the leading series term where P is below 1e-300)."""
    p = sc.gammainc(a, x)
    if p > 1e-300:
        return float(math.log(p))
    return float(a * math.log(x) - x - sc.gammaln(a + 1) + math.log1p(x / (a + 1)))


def _exp_integral(n, eps, log_w, se, slope, tail):
    """-log integral_0^inf n e^(-n eps) W(eps) d eps, its stderr and the tail's share."""
    logs, owners = [], []  # log contributions, and (index, weight) of grid points owning them
    if tail == "power_law":
        a = slope + 1
        log_c = log_w[0] - slope * math.log(eps[0])
        logs.append(log_c - slope * math.log(n) + sc.gammaln(a) + _log_gammainc(a, n * eps[0]))
        owners.append(np.eye(eps.size)[0])
    t = np.log(eps)
    for j in range(eps.size - 1):
        half = 0.5 * (t[j + 1] - t[j])
        nodes = t[j] + half * (_NODES + 1)
        u = (nodes - t[j]) / (2 * half)
        log_integrand = (
            math.log(n) - n * np.exp(nodes) + (1 - u) * log_w[j] + u * log_w[j + 1] + nodes
        )
        terms = np.log(half * _WEIGHTS) + log_integrand
        total = sc.logsumexp(terms)
        share = np.exp(terms - total)
        owner = np.zeros(eps.size)
        owner[j], owner[j + 1] = np.sum(share * (1 - u)), np.sum(share * u)
        logs.append(total)
        owners.append(owner)
    logs.append(log_w[-1] - n * eps[-1])
    owners.append(np.eye(eps.size)[-1])
    logs_a = np.array(logs)
    log_integral = sc.logsumexp(logs_a)
    fractions = np.exp(logs_a - log_integral)
    stderr = float(fractions @ np.array(owners) @ se)
    tail_fraction = float(fractions[0]) if tail == "power_law" else 0.0
    return float(-log_integral), stderr, tail_fraction


def _resolvability(n, eps, log_w, se, slope, tail):
    """min_eps [-log W(eps) + n eps] over the piecewise power law, with its minimiser."""
    candidates = [(-log_w[j] + n * eps[j], se[j], eps[j]) for j in range(eps.size)]
    t = np.log(eps)
    for j in range(eps.size - 1):
        s = (log_w[j + 1] - log_w[j]) / (t[j + 1] - t[j])
        star = s / n
        if eps[j] < star < eps[j + 1]:
            u = (math.log(star) - t[j]) / (t[j + 1] - t[j])
            value = -((1 - u) * log_w[j] + u * log_w[j + 1]) + n * star
            candidates.append((value, (1 - u) * se[j] + u * se[j + 1], star))
    if tail == "power_law" and slope > 0 and slope / n < eps[0]:
        star = slope / n
        value = -(log_w[0] + slope * (math.log(star) - t[0])) + n * star
        candidates.append((value, se[0], star))
    best = min(candidates, key=lambda c: c[0])
    return float(best[0]), float(best[1]), float(best[2])
