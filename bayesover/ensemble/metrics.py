r"""Predictive metrics: fit, calibration and agreement of a (Bayesian) predictive distribution.

ArviZ summarises posteriors (ESS, R-hat, LOO/WAIC) but has no expected calibration error, Brier
score or mean test NLL, so these are bayesover's own. All are pure `jax.numpy` functions that
return a scalar (or, for `calibration_curve`, small per-bin arrays):

- fit: `nll` (mean negative log predictive density), `accuracy`, `rmse`, `brier`;
- calibration: `ece`, `calibration_curve` (reliability diagram), `coverage` (intervals);
- agreement between two predictives (Izmailov et al. 2021, "What are Bayesian neural network
  posteriors really like?"): `agreement`, `total_variation`.

Classification inputs are `probs` of shape `(n, k)` (rows are predictive distributions over `k`
classes) and integer `labels` of shape `(n,)` in `[0, k)`; the top class is $\arg\max_k p_k$,
ties going to the lowest index. With `pred = ensemble.predict(x)`: `ece(pred.probs, y)`,
`nll(pred.log_prob(y))`, `coverage(*pred.interval(0.9), y)`. Values are computed in at least
float32 (half-precision inputs are upcast).

**Binning convention** (`ece`, `calibration_curve`): `num_bins` equal-width bins on the top-class
confidence $c_i = \max_k p_{ik}$ with edges $e_b = b / B$, $b = 0, \dots, B$. Bin $b$ is the
half-open interval $(e_b, e_{b+1}]$, except that the first bin is closed, $[0, e_1]$; so a
confidence of exactly 1.0 falls in the last bin and one of exactly 0.0 in the first.

**Validation.** Shapes are always checked. Values (NaN/inf, probabilities in $[0, 1]$ with rows
summing to 1 within $\max(10^{-4}, k\,\varepsilon)$, $\varepsilon$ the input dtype's epsilon,
labels in range, `lower <= upper`) are checked only on concrete arrays: under `jax.jit` they are
skipped. Bad input raises `ValueError` (shapes, values) or `TypeError` (dtypes, non-arrays),
naming the argument. `num_bins` is a Python int: mark it static under `jax.jit`
(`jax.jit(bo.metrics.ece, static_argnames="num_bins")`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from bayesover._checks import check_int

__all__ = [
    "CalibrationCurve",
    "accuracy",
    "agreement",
    "brier",
    "calibration_curve",
    "coverage",
    "ece",
    "nll",
    "rmse",
    "total_variation",
]

_PROB_ATOL = 1e-4


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _as_real(name: str, value: Any) -> tuple[Array, float]:
    """`value` as a floating array of at least float32 (half precision, integers and bools are
    cast), and the machine epsilon of its input dtype (float32's for integers and bools)."""
    try:
        x = jnp.asarray(value)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"`{name}` must be an array of numbers, got {type(value).__name__}: {e}"
        ) from e
    if jnp.issubdtype(x.dtype, jnp.floating):
        eps = float(jnp.finfo(x.dtype).eps)
        return x.astype(jnp.promote_types(x.dtype, jnp.float32)), eps
    if jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_:
        return x.astype(float), float(jnp.finfo(jnp.float32).eps)  # default float dtype
    raise TypeError(f"`{name}` must have a real numeric dtype, got {x.dtype}.")


def _as_labels(name: str, value: Any) -> Array:
    try:
        y = jnp.asarray(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"`{name}` must be an array of integer class labels, got: {e}") from e
    if not (jnp.issubdtype(y.dtype, jnp.integer) or y.dtype == jnp.bool_):
        raise TypeError(f"`{name}` must have an integer dtype (class labels), got {y.dtype}.")
    return y.astype(jnp.int32)


def _check_points(name: str, x: Array, ndim: int | None = None) -> None:
    """`x` has `ndim` axes (any >= 1 if None) and at least one point on the leading axis."""
    if ndim is not None and x.ndim != ndim:
        want = "(n,)" if ndim == 1 else "(n, k)"
        raise ValueError(f"`{name}` must have shape {want}, got shape {x.shape}.")
    if x.ndim == 0:
        raise ValueError(f"`{name}` must have a leading axis of points, got a scalar.")
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one point, got shape {x.shape}.")
    if x.size == 0:
        raise ValueError(f"`{name}` must have at least one element per point, got {x.shape}.")


def _check_same_shape(names: tuple[str, ...], arrays: tuple[Array, ...]) -> None:
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        listed = ", ".join(f"`{n}` {a.shape}" for n, a in zip(names, arrays, strict=True))
        raise ValueError(
            f"{' and '.join(f'`{n}`' for n in names)} must have the same shape: {listed}."
        )


def _check_no_nan(name: str, x: Array, *, allow_neg_inf: bool = False) -> None:
    if _is_tracer(x):
        return
    values = np.asarray(x)
    bad = np.isnan(values) | (values == np.inf)
    if not allow_neg_inf:
        bad |= values == -np.inf
    if bad.any():
        what = "NaN or +inf" if allow_neg_inf else "NaN or inf"
        raise ValueError(f"`{name}` holds {int(bad.sum())} {what} value(s).")


def _as_probs(name: str, value: Any) -> Array:
    """A validated `(n, k)` array of rows that are probability vectors."""
    p, eps = _as_real(name, value)
    if p.ndim == 2 and p.shape[0] > 0 and p.shape[1] == 0:
        raise ValueError(
            f"`{name}` must have at least one class (shape (n, k), k >= 1), got {p.shape}."
        )
    _check_points(name, p, ndim=2)
    if _is_tracer(p):
        return p
    _check_no_nan(name, p)
    values = np.asarray(p, dtype=np.float64)
    k = p.shape[1]
    tol = max(_PROB_ATOL, k * eps)
    if values.min() < -tol or values.max() > 1 + tol:
        raise ValueError(
            f"`{name}` must hold probabilities in [0, 1], got values in "
            f"[{values.min():.6g}, {values.max():.6g}]."
        )
    gaps = np.abs(values.sum(axis=1) - 1.0)
    if gaps.max() > tol:
        row = int(gaps.argmax())
        raise ValueError(
            f"each row of `{name}` must sum to 1 (within {tol:.3g}); row {row} sums to "
            f"{values[row].sum():.6g} ({int((gaps > tol).sum())} row(s) off). Pass probabilities, "
            "not logits or log-probabilities."
        )
    return p


def _check_labels(probs: Array, labels: Array) -> None:
    _check_points("labels", labels, ndim=1)
    if labels.shape[0] != probs.shape[0]:
        raise ValueError(
            f"`labels` must have shape (n,) with n = probs.shape[0] = {probs.shape[0]}, "
            f"got shape {labels.shape}."
        )
    if _is_tracer(labels):
        return
    values = np.asarray(labels)
    k = probs.shape[1]
    if values.min() < 0 or values.max() >= k:
        bad = int(((values < 0) | (values >= k)).sum())
        raise ValueError(
            f"`labels` must lie in [0, {k}) (k = probs.shape[1]); {bad} label(s) outside, "
            f"range [{values.min()}, {values.max()}]."
        )


def _check_num_bins(num_bins: Any) -> int:
    if _is_tracer(num_bins):
        raise TypeError(
            "`num_bins` must be a Python int, got a traced value; under `jax.jit` mark it "
            "static (`static_argnames='num_bins'`)."
        )
    num_bins = check_int("num_bins", num_bins)
    if num_bins < 1:  # worded as before the checks were merged (tests match it)
        raise ValueError(f"`num_bins` must be >= 1, got {num_bins}.")
    return num_bins


def _classification(probs: Any, labels: Any) -> tuple[Array, Array]:
    p = _as_probs("probs", probs)
    y = _as_labels("labels", labels)
    _check_labels(p, y)
    return p, y


def _pair(probs_a: Any, probs_b: Any) -> tuple[Array, Array]:
    a = _as_probs("probs_a", probs_a)
    b = _as_probs("probs_b", probs_b)
    _check_same_shape(("probs_a", "probs_b"), (a, b))
    return a, b


# ---------------------------------------------------------------------------------------------
# Kernels (jitted once per shape; validation stays outside, on concrete arrays)
# ---------------------------------------------------------------------------------------------


@jax.jit
def _top_class_hits(p: Array, y: Array) -> Array:
    return jnp.mean(jnp.argmax(p, axis=1) == y, dtype=p.dtype)


@jax.jit
def _brier(p: Array, y: Array) -> Array:
    one_hot = jax.nn.one_hot(y, p.shape[1], dtype=p.dtype)
    return jnp.mean(jnp.sum((p - one_hot) ** 2, axis=1))


@jax.jit
def _rmse(m: Array, t: Array) -> Array:
    return jnp.sqrt(jnp.mean((m - t) ** 2))


@jax.jit
def _coverage(lo: Array, hi: Array, t: Array) -> Array:
    return jnp.mean((lo <= t) & (t <= hi), dtype=t.dtype)


@jax.jit
def _agreement(a: Array, b: Array) -> Array:
    return jnp.mean(jnp.argmax(a, axis=1) == jnp.argmax(b, axis=1), dtype=a.dtype)


@jax.jit
def _total_variation(a: Array, b: Array) -> Array:
    return jnp.mean(0.5 * jnp.sum(jnp.abs(a - b), axis=1))


@functools.partial(jax.jit, static_argnums=2)
def _bin_sums(p: Array, y: Array, num_bins: int) -> tuple[Array, Array, Array, Array]:
    """Bin edges and, per bin, the number of points, sum of confidences and sum of hits."""
    confidence = jnp.max(p, axis=1)
    correct: Bool[Array, " n"] = jnp.argmax(p, axis=1) == y
    edges = jnp.arange(num_bins + 1, dtype=p.dtype) / num_bins
    # Number of inner edges strictly below c: bin b holds (e_b, e_{b+1}], bin 0 also holds 0,
    # and c >= 1 (incl. 1 + rounding) lands in the last bin.
    index = jnp.searchsorted(edges[1:-1], confidence, side="left")
    zeros = jnp.zeros(num_bins, dtype=p.dtype)
    count = jnp.zeros(num_bins, dtype=jnp.int32).at[index].add(1)
    conf_sum = zeros.at[index].add(confidence)
    hit_sum = zeros.at[index].add(correct.astype(p.dtype))
    return edges, count, conf_sum, hit_sum


# ---------------------------------------------------------------------------------------------
# Fit
# ---------------------------------------------------------------------------------------------


def nll(log_predictive: Float[ArrayLike, " n"]) -> Float[Array, ""]:
    r"""Mean negative log predictive density, $-\frac{1}{n} \sum_i \log p(y_i \mid x_i, D)$.

    **Arguments:**

    - `log_predictive`: per-point log predictive densities (or masses) $\log p(y_i \mid x_i, D)$,
        shape `(n,)`. A `-inf` (zero probability) gives an infinite NLL; NaN and `+inf` raise.

    **Returns:**

    The mean NLL, a scalar (lower is better).
    """
    lp, _ = _as_real("log_predictive", log_predictive)
    _check_points("log_predictive", lp, ndim=1)
    _check_no_nan("log_predictive", lp, allow_neg_inf=True)
    return -jnp.mean(lp)


def accuracy(probs: Float[ArrayLike, "n k"], labels: Int[ArrayLike, " n"]) -> Float[Array, ""]:
    r"""Top-class accuracy, $\frac{1}{n} \sum_i 1[\arg\max_k p_{ik} = y_i]$.

    **Arguments:**

    - `probs`: predictive class probabilities, shape `(n, k)`, rows summing to 1.
    - `labels`: integer class labels in `[0, k)`, shape `(n,)`.

    **Returns:**

    The fraction of points whose top class (ties: lowest index) is the label, in `[0, 1]`.
    """
    p, y = _classification(probs, labels)
    return _top_class_hits(p, y)


def rmse(mean: Float[ArrayLike, "n ..."], targets: Float[ArrayLike, "n ..."]) -> Float[Array, ""]:
    r"""Root mean squared error, $\sqrt{\frac{1}{N} \sum_j (\hat y_j - y_j)^2}$ over all elements.

    **Arguments:**

    - `mean`: point predictions (e.g. the predictive mean), shape `(n, ...)`.
    - `targets`: observed targets, the same shape as `mean`.

    **Returns:**

    The RMSE, a scalar in the units of the targets.
    """
    m, _ = _as_real("mean", mean)
    t, _ = _as_real("targets", targets)
    _check_points("mean", m)
    _check_same_shape(("mean", "targets"), (m, t))
    _check_no_nan("mean", m)
    _check_no_nan("targets", t)
    return _rmse(m, t)


def brier(probs: Float[ArrayLike, "n k"], labels: Int[ArrayLike, " n"]) -> Float[Array, ""]:
    r"""Multi-class Brier score, $\frac{1}{n} \sum_i \sum_k (p_{ik} - 1[y_i = k])^2$.

    **Arguments:**

    - `probs`: predictive class probabilities, shape `(n, k)`, rows summing to 1.
    - `labels`: integer class labels in `[0, k)`, shape `(n,)`.

    **Returns:**

    The Brier score, in `[0, 2]` (0 for one-hot predictions of the labels; lower is better).
    """
    p, y = _classification(probs, labels)
    return _brier(p, y)


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


class CalibrationCurve(NamedTuple):
    """Per-bin statistics for a reliability diagram (see `calibration_curve`).

    - `bin_edges`: shape `(num_bins + 1,)`, $e_b = b / B$ from 0 to 1.
    - `confidence`: mean top-class confidence in each bin, shape `(num_bins,)`; NaN if empty.
    - `accuracy`: fraction of correct top-class predictions in each bin; NaN if empty.
    - `count`: number of points in each bin (int32), summing to `n`.
    """

    bin_edges: Float[Array, " bins_plus_one"]
    confidence: Float[Array, " bins"]
    accuracy: Float[Array, " bins"]
    count: Int[Array, " bins"]  # type: ignore[assignment]  # shadows tuple.count


def ece(
    probs: Float[ArrayLike, "n k"], labels: Int[ArrayLike, " n"], num_bins: int = 15
) -> Float[Array, ""]:
    r"""Expected calibration error (Guo et al. 2017, "On calibration of modern neural networks").

    With $B$ equal-width bins $B_b$ on the top-class confidence $c_i = \max_k p_{ik}$ (bin
    $b$ is $(b/B, (b+1)/B]$, the first is $[0, 1/B]$; a confidence of 1.0 is in the last),

    $$\mathrm{ECE} = \sum_b \frac{|B_b|}{n} \left| \mathrm{acc}(B_b) - \mathrm{conf}(B_b) \right|,$$

    with $\mathrm{acc}(B_b)$ the fraction of correct top-class predictions in the bin and
    $\mathrm{conf}(B_b)$ its mean confidence. Empty bins contribute 0.

    **Arguments:**

    - `probs`: predictive class probabilities, shape `(n, k)`, rows summing to 1.
    - `labels`: integer class labels in `[0, k)`, shape `(n,)`.
    - `num_bins`: the number of bins $B \geq 1$ (a Python int; static under `jax.jit`).

    **Returns:**

    The ECE, in `[0, 1]` (0 for perfectly calibrated bins; lower is better).
    """
    num_bins = _check_num_bins(num_bins)
    p, y = _classification(probs, labels)
    _, _, conf_sum, hit_sum = _bin_sums(p, y, num_bins)
    # (|B_b| / n) |acc_b - conf_b| = |sum of hits - sum of confidences in B_b| / n.
    return jnp.sum(jnp.abs(hit_sum - conf_sum)) / p.shape[0]


def calibration_curve(
    probs: Float[ArrayLike, "n k"], labels: Int[ArrayLike, " n"], num_bins: int = 15
) -> CalibrationCurve:
    r"""Per-bin mean confidence, accuracy and count, for a reliability diagram.

    Uses the bins of `ece`: $B$ equal-width bins on $c_i = \max_k p_{ik}$, bin $b$ is
    $(b/B, (b+1)/B]$ and the first is $[0, 1/B]$. For bin $B_b$,
    $\mathrm{conf}_b = \frac{1}{|B_b|} \sum_{i \in B_b} c_i$ and
    $\mathrm{acc}_b = \frac{1}{|B_b|} \sum_{i \in B_b} 1[\arg\max_k p_{ik} = y_i]$, so that
    `ece = nansum(count / n * |accuracy - confidence|)`.

    **Arguments:**

    - `probs`: predictive class probabilities, shape `(n, k)`, rows summing to 1.
    - `labels`: integer class labels in `[0, k)`, shape `(n,)`.
    - `num_bins`: the number of bins $B \geq 1$ (a Python int; static under `jax.jit`).

    **Returns:**

    A `CalibrationCurve(bin_edges, confidence, accuracy, count)`; empty bins have count 0 and
    NaN confidence and accuracy.
    """
    num_bins = _check_num_bins(num_bins)
    p, y = _classification(probs, labels)
    edges, count, conf_sum, hit_sum = _bin_sums(p, y, num_bins)
    occupied = count > 0
    safe = jnp.where(occupied, count, 1).astype(p.dtype)
    nan = jnp.asarray(jnp.nan, dtype=p.dtype)
    return CalibrationCurve(
        bin_edges=edges,
        confidence=jnp.where(occupied, conf_sum / safe, nan),
        accuracy=jnp.where(occupied, hit_sum / safe, nan),
        count=count,
    )


def coverage(
    lower: Float[ArrayLike, "n ..."],
    upper: Float[ArrayLike, "n ..."],
    targets: Float[ArrayLike, "n ..."],
) -> Float[Array, ""]:
    r"""Empirical coverage of predictive intervals, $\frac{1}{N} \sum_j 1[l_j \le y_j \le u_j]$.

    For central $(1 - \alpha)$ predictive intervals a calibrated regression model has coverage
    close to $1 - \alpha$. Computed over all elements (points and output dimensions).

    **Arguments:**

    - `lower`: lower interval ends, shape `(n, ...)`.
    - `upper`: upper interval ends, the same shape, with `lower <= upper`.
    - `targets`: observed targets, the same shape.

    **Returns:**

    The fraction of targets inside their closed interval `[lower, upper]`, in `[0, 1]`.
    """
    lo, _ = _as_real("lower", lower)
    hi, _ = _as_real("upper", upper)
    t, _ = _as_real("targets", targets)
    _check_points("lower", lo)
    _check_same_shape(("lower", "upper", "targets"), (lo, hi, t))
    for name, x in (("lower", lo), ("upper", hi), ("targets", t)):
        _check_no_nan(name, x)
    if not (_is_tracer(lo) or _is_tracer(hi)):
        crossed = np.asarray(lo > hi)
        if crossed.any():
            raise ValueError(
                f"`lower` must be <= `upper` elementwise; {int(crossed.sum())} interval(s) have "
                "lower > upper."
            )
    return _coverage(lo, hi, t)


# ---------------------------------------------------------------------------------------------
# Agreement between two predictives
# ---------------------------------------------------------------------------------------------


def agreement(
    probs_a: Float[ArrayLike, "n k"], probs_b: Float[ArrayLike, "n k"]
) -> Float[Array, ""]:
    r"""Top-class agreement, $\frac{1}{n} \sum_i 1[\arg\max_k p^a_{ik} = \arg\max_k p^b_{ik}]$.

    Izmailov et al. 2021, "What are Bayesian neural network posteriors really like?": how often
    an approximate predictive picks the same class as a reference (e.g. HMC) predictive.

    **Arguments:**

    - `probs_a`: class probabilities of the first predictive, shape `(n, k)`.
    - `probs_b`: class probabilities of the second predictive, the same shape.

    **Returns:**

    The fraction of points whose top classes (ties: lowest index) agree, in `[0, 1]`.
    """
    a, b = _pair(probs_a, probs_b)
    return _agreement(a, b)


def total_variation(
    probs_a: Float[ArrayLike, "n k"], probs_b: Float[ArrayLike, "n k"]
) -> Float[Array, ""]:
    r"""Mean total variation distance, $\frac{1}{n} \sum_i \frac12 \sum_k |p^a_{ik} - p^b_{ik}|$.

    Izmailov et al. 2021, "What are Bayesian neural network posteriors really like?".

    **Arguments:**

    - `probs_a`: class probabilities of the first predictive, shape `(n, k)`.
    - `probs_b`: class probabilities of the second predictive, the same shape.

    **Returns:**

    The mean total variation distance between the per-point predictives, in `[0, 1]`.
    """
    a, b = _pair(probs_a, probs_b)
    return _total_variation(a, b)
