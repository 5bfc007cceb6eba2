"""`bo.metrics`: each metric against a hand computation, edge cases, jit, and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesover.ensemble import metrics

# Six points, four classes, shared by the classification tests. Per point: top-class
# confidence c, predicted class (argmax), label, correct?
#   p0 = [.30 .25 .25 .20]  c=.30  pred 0  label 0  correct
#   p1 = [.25 .25 .20 .30]  c=.30  pred 3  label 1  wrong
#   p2 = [.50 .20 .20 .10]  c=.50  pred 0  label 0  correct
#   p3 = [.10 .60 .20 .10]  c=.60  pred 1  label 2  wrong
#   p4 = [.00 .00 .00 1.0]  c=1.0  pred 3  label 3  correct  (confidence exactly 1)
#   p5 = [.10 .80 .05 .05]  c=.80  pred 1  label 1  correct
PROBS = np.array(
    [
        [0.30, 0.25, 0.25, 0.20],
        [0.25, 0.25, 0.20, 0.30],
        [0.50, 0.20, 0.20, 0.10],
        [0.10, 0.60, 0.20, 0.10],
        [0.00, 0.00, 0.00, 1.00],
        [0.10, 0.80, 0.05, 0.05],
    ],
    dtype=np.float32,
)
LABELS = np.array([0, 1, 0, 2, 3, 1])


def close(actual, expected, tol=1e-6):
    assert float(actual) == pytest.approx(expected, abs=tol)


# ---------------------------------------------------------------------------------------------
# Hand computations
# ---------------------------------------------------------------------------------------------


def test_nll_by_hand():
    # -(1/3)(-0.5 - 1.0 - 2.5) = 4/3
    close(metrics.nll(jnp.array([-0.5, -1.0, -2.5])), 4.0 / 3.0)
    # log p = 0 everywhere (certain and right) -> 0; a zero-probability point -> inf.
    close(metrics.nll(jnp.zeros(4)), 0.0)
    assert float(metrics.nll(jnp.array([-1.0, -jnp.inf]))) == math.inf


def test_accuracy_by_hand():
    # correct = [1, 0, 1, 0, 1, 1] (table above) -> 4/6
    close(metrics.accuracy(PROBS, LABELS), 4 / 6)
    # Ties go to the lowest index: [.5 .5] predicts class 0.
    tie = np.array([[0.5, 0.5], [0.5, 0.5]])
    close(metrics.accuracy(tie, [0, 1]), 0.5)


def test_rmse_by_hand():
    # diffs [-1, 0, 2, 0] -> squares [1, 0, 4, 0] -> mean 5/4 -> sqrt(1.25)
    close(metrics.rmse([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 4.0]), math.sqrt(1.25))
    # (n, d) targets: mean over all elements; squares [1, 0, 0, 9] -> sqrt(10/4)
    close(metrics.rmse([[1.0, 0.0], [2.0, 3.0]], [[0.0, 0.0], [2.0, 0.0]]), math.sqrt(2.5))


def test_brier_by_hand():
    # row 0, y=0: (.7-1)^2 + .2^2 + .1^2 = .09 + .04 + .01 = .14
    # row 1, y=2: .3^2 + .5^2 + (.2-1)^2 = .09 + .25 + .64 = .98
    # mean = (.14 + .98) / 2 = .56
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.5, 0.2]])
    close(metrics.brier(probs, [0, 2]), 0.56)
    # plain python loop over the six-point table
    expected = np.mean(
        [sum((p[k] - (k == y)) ** 2 for k in range(4)) for p, y in zip(PROBS, LABELS, strict=True)]
    )
    close(metrics.brier(PROBS, LABELS), float(expected))


def test_ece_by_hand_three_bins():
    # 3 bins: [0, 1/3], (1/3, 2/3], (2/3, 1].
    # bin 0: p0, p1: conf (.3+.3)/2 = .30, acc 1/2  -> |.5 - .30| = .20, weight 2/6
    # bin 1: p2, p3: conf (.5+.6)/2 = .55, acc 1/2  -> |.5 - .55| = .05, weight 2/6
    # bin 2: p4, p5: conf (1.+.8)/2 = .90, acc 2/2  -> |1. - .90| = .10, weight 2/6
    # ECE = (2/6)(.20 + .05 + .10) = .7/6
    close(metrics.ece(PROBS, LABELS, num_bins=3), 0.7 / 6)


def test_ece_one_bin_is_gap_of_means():
    # One bin: |mean accuracy - mean confidence| = |4/6 - (.3+.3+.5+.6+1+.8)/6| = |4 - 3.5| / 6
    close(metrics.ece(PROBS, LABELS, num_bins=1), 0.5 / 6)


def test_calibration_curve_by_hand_with_empty_bin():
    # 5 bins: [0,.2], (.2,.4], (.4,.6], (.6,.8], (.8,1]. Confidences .3 .3 .5 .6 1. .8:
    # bin 0: empty
    # bin 1: p0, p1       conf .30  acc .5
    # bin 2: p2, p3       conf .55  acc .5   (.6 sits on the edge 3/5 -> the lower bin)
    # bin 3: p5           conf .80  acc 1    (.8 on the edge 4/5 -> the lower bin)
    # bin 4: p4           conf 1.0  acc 1    (confidence 1.0 -> the last bin)
    curve = metrics.calibration_curve(PROBS, LABELS, num_bins=5)
    assert isinstance(curve, metrics.CalibrationCurve)
    np.testing.assert_allclose(curve.bin_edges, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], atol=1e-7)
    np.testing.assert_array_equal(curve.count, [0, 2, 2, 1, 1])
    assert curve.count.dtype == jnp.int32
    np.testing.assert_allclose(curve.confidence, [np.nan, 0.30, 0.55, 0.80, 1.0], atol=1e-6)
    np.testing.assert_allclose(curve.accuracy, [np.nan, 0.5, 0.5, 1.0, 1.0], atol=1e-6)
    # ECE = sum over bins of (count / n) |acc - conf| = (.4 + .1 + .2 + 0) / 6
    gaps = np.nan_to_num(np.abs(np.asarray(curve.accuracy) - np.asarray(curve.confidence)))
    close(np.sum(np.asarray(curve.count) / 6 * gaps), 0.7 / 6)
    close(metrics.ece(PROBS, LABELS, num_bins=5), 0.7 / 6)


def test_bin_edges_are_upper_closed():
    # Four classes, 4 bins [0,.25], (.25,.5], (.5,.75], (.75,1]; confidences exactly on the edges
    # .25, .5, .75, 1. (all exact in binary) each go to the bin they close.
    probs = np.array(
        [
            [0.25, 0.25, 0.25, 0.25],
            [0.5, 0.5, 0.0, 0.0],
            [0.75, 0.25, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
        ]
    )
    curve = metrics.calibration_curve(probs, [0, 0, 0, 0], num_bins=4)
    np.testing.assert_array_equal(curve.count, [1, 1, 1, 1])
    # Float32 1/3 equals the float32 edge 1/3, so it is in the first of three bins.
    third = np.full((1, 3), 1 / 3, dtype=np.float32)
    np.testing.assert_array_equal(metrics.calibration_curve(third, [0], 3).count, [1, 0, 0])


def test_coverage_by_hand():
    # .5 in [0,1] yes; 2. in [0,2] yes (closed); .5 in [1,2] no; -1 in [-1,1] yes; 3.5 in [2,3] no
    lower = [0.0, 0.0, 1.0, -1.0, 2.0]
    upper = [1.0, 2.0, 2.0, 1.0, 3.0]
    targets = [0.5, 2.0, 0.5, -1.0, 3.5]
    close(metrics.coverage(lower, upper, targets), 3 / 5)
    # (n, d): over all elements; 3 of 4 inside
    close(metrics.coverage(np.zeros((2, 2)), np.ones((2, 2)), [[0.5, 1.0], [0.0, 1.5]]), 0.75)


def test_agreement_and_total_variation_by_hand():
    a = np.array([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5], [0.1, 0.9]])
    b = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6], [0.3, 0.7]])
    # top classes a: 0 1 0 1 (tie -> 0); b: 0 0 1 1 -> agree on rows 0 and 3 -> 2/4
    close(metrics.agreement(a, b), 0.5)
    # TV per row: .5(.3+.3)=.3, .5(.5+.5)=.5, .5(.1+.1)=.1, .5(.2+.2)=.2 -> mean 1.1/4
    close(metrics.total_variation(a, b), 1.1 / 4)
    # three classes: .5(|.2-.5| + 0 + |.5-.2|) = .3
    close(metrics.total_variation([[0.2, 0.3, 0.5]], [[0.5, 0.3, 0.2]]), 0.3)
    # symmetric
    close(metrics.total_variation(b, a), 1.1 / 4)


# ---------------------------------------------------------------------------------------------
# Edge cases and a reference implementation
# ---------------------------------------------------------------------------------------------


def test_perfect_predictions():
    labels = np.array([2, 0, 1, 1, 0])
    one_hot = np.eye(3, dtype=np.float32)[labels]
    close(metrics.ece(one_hot, labels), 0.0)
    close(metrics.brier(one_hot, labels), 0.0)
    close(metrics.accuracy(one_hot, labels), 1.0)
    close(metrics.nll(np.log(one_hot[np.arange(5), labels])), 0.0)
    # confidence 1.0 everywhere -> all points in the last bin, the rest empty
    curve = metrics.calibration_curve(one_hot, labels, num_bins=15)
    np.testing.assert_array_equal(curve.count, [0] * 14 + [5])
    assert np.isnan(curve.confidence[:14]).all() and np.isnan(curve.accuracy[:14]).all()
    close(curve.confidence[-1], 1.0)
    close(curve.accuracy[-1], 1.0)
    probs = jax.nn.softmax(jax.random.normal(jax.random.key(0), (7, 4)), axis=1)
    close(metrics.agreement(probs, probs), 1.0)
    close(metrics.total_variation(probs, probs), 0.0)


def test_confidently_wrong():
    # every point predicted with confidence 1 and wrong: ECE 1, Brier 2, accuracy 0, TV 1
    probs = np.eye(2)[[0, 1, 0]]
    labels = [1, 0, 1]
    close(metrics.ece(probs, labels), 1.0)
    close(metrics.brier(probs, labels), 2.0)
    close(metrics.accuracy(probs, labels), 0.0)
    close(metrics.total_variation(probs, np.eye(2)[labels]), 1.0)
    close(metrics.agreement(probs, np.eye(2)[labels]), 0.0)


def _ece_loop(probs: np.ndarray, labels: np.ndarray, num_bins: int) -> float:
    """Guo et al. 2017, bin by bin, with the documented (lo, hi] / [0, hi] convention."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.arange(num_bins + 1, dtype=probs.dtype) / probs.dtype.type(num_bins)
    n = len(labels)
    total = 0.0
    for b in range(num_bins):
        lo, hi = edges[b], edges[b + 1]
        in_bin = (conf > lo) & (conf <= hi)
        if b == 0:
            in_bin |= conf == lo
        if in_bin.sum() == 0:
            continue
        total += in_bin.sum() / n * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return total


@pytest.mark.parametrize("seed, temperature", [(0, 1.0), (1, 0.2), (2, 3.0)])
def test_ece_matches_numpy_loop(seed, temperature):
    rng = np.random.default_rng(seed)
    n, k = 2000, 10
    logits = rng.normal(size=(n, k)) / temperature
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, dtype=jnp.float32), axis=1))
    # labels drawn from a sharpened version of the prediction: miscalibrated on purpose
    sharp = probs.astype(np.float64) ** 2
    cdf = np.cumsum(sharp / sharp.sum(axis=1, keepdims=True), axis=1)
    labels = np.minimum((cdf < rng.random((n, 1))).sum(axis=1), k - 1)  # inverse-CDF draws
    expected = _ece_loop(probs, labels, 15)
    assert expected > 0.01
    close(metrics.ece(probs, labels, num_bins=15), expected, tol=1e-5)
    curve = metrics.calibration_curve(probs, labels, num_bins=15)
    assert int(curve.count.sum()) == n


def test_jit():
    probs = jnp.asarray(PROBS)
    labels = jnp.asarray(LABELS)
    ece = jax.jit(metrics.ece, static_argnames="num_bins")
    close(ece(probs, labels, num_bins=3), 0.7 / 6)
    curve = jax.jit(metrics.calibration_curve, static_argnums=2)(probs, labels, 5)
    np.testing.assert_array_equal(curve.count, [0, 2, 2, 1, 1])
    close(jax.jit(metrics.accuracy)(probs, labels), 4 / 6)
    close(jax.jit(metrics.brier)(probs, labels), float(metrics.brier(PROBS, LABELS)))
    close(jax.jit(metrics.nll)(jnp.array([-0.5, -1.0, -2.5])), 4 / 3)
    close(jax.jit(metrics.rmse)(jnp.ones(3), jnp.zeros(3)), 1.0)
    close(jax.jit(metrics.coverage)(jnp.zeros(2), jnp.ones(2), jnp.array([0.5, 2.0])), 0.5)
    close(jax.jit(metrics.agreement)(probs, probs), 1.0)
    close(jax.jit(metrics.total_variation)(probs, probs), 0.0)
    with pytest.raises(TypeError, match="num_bins.*static"):
        jax.jit(metrics.ece)(probs, labels, 3)


def test_accepts_lists_and_integer_arrays():
    close(metrics.brier([[1, 0], [0, 1]], [0, 1]), 0.0)
    close(metrics.accuracy([[0.2, 0.8]], np.array([1], dtype=np.int64)), 1.0)
    close(metrics.accuracy([[0.2, 0.8]], [True]), 1.0)
    # float32 softmax rows over many classes pass the sum-to-one check
    probs = jax.nn.softmax(jax.random.normal(jax.random.key(1), (4, 1000)), axis=1)
    metrics.brier(probs, [0, 1, 2, 3])


def test_half_precision_is_upcast():
    # bfloat16 rows sum to 1 only to ~1e-2; the tolerance scales with the input dtype's epsilon,
    # and the metric is computed in float32 on the (exactly) upcast values.
    low = jnp.asarray(PROBS, dtype=jnp.bfloat16)
    value = metrics.ece(low, LABELS, num_bins=3)
    assert value.dtype == jnp.float32
    close(value, _ece_loop(np.asarray(low.astype(jnp.float32)), LABELS, 3))
    # the same float32 values fail float32's tolerance: row 3 sums to 1.00195
    with pytest.raises(ValueError, match="row 3 sums to 1.00195"):
        metrics.ece(low.astype(jnp.float32), LABELS)
    assert metrics.calibration_curve(low, LABELS, 3).confidence.dtype == jnp.float32


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

GOOD_P = np.array([[0.7, 0.3], [0.4, 0.6]])
GOOD_Y = np.array([0, 1])


@pytest.mark.parametrize("fn", [metrics.accuracy, metrics.brier, metrics.ece])
@pytest.mark.parametrize(
    "probs, labels, error, match",
    [
        (np.array([0.7, 0.3]), [0], ValueError, r"`probs` must have shape \(n, k\)"),
        (np.ones((2, 2, 1)), GOOD_Y, ValueError, r"`probs` must have shape \(n, k\)"),
        (np.zeros((0, 2)), np.zeros(0, int), ValueError, "`probs` must hold at least one"),
        (np.zeros((2, 0)), GOOD_Y, ValueError, "`probs` must have at least one class"),
        ([[0.7, 0.4], [0.4, 0.6]], GOOD_Y, ValueError, "`probs` must sum to 1"),
        ([[2.0, 1.0], [0.0, 1.0]], GOOD_Y, ValueError, r"`probs` must hold probabilities"),
        ([[1.2, -0.2], [0.4, 0.6]], GOOD_Y, ValueError, r"`probs` must hold probabilities"),
        ([[np.nan, 0.3], [0.4, 0.6]], GOOD_Y, ValueError, "`probs` holds 1 NaN"),
        ([[np.inf, 0.3], [0.4, 0.6]], GOOD_Y, ValueError, "`probs` holds 1 NaN or inf"),
        ([["a", "b"]], [0], TypeError, "`probs`"),
        (GOOD_P.astype(complex), GOOD_Y, TypeError, "`probs` must have a real numeric dtype"),
        (GOOD_P, [0, 2], ValueError, r"`labels` must lie in \[0, 2\)"),
        (GOOD_P, [-1, 0], ValueError, r"`labels` must lie in \[0, 2\)"),
        (GOOD_P, [0.0, 1.0], TypeError, "`labels` must have an integer dtype"),
        (GOOD_P, [0, 1, 1], ValueError, r"`labels` must have shape \(n,\) with n = .* = 2"),
        (GOOD_P, [[0], [1]], ValueError, r"`labels` must have shape \(n,\)"),
        (GOOD_P, 0, ValueError, r"`labels` must have shape \(n,\)"),
    ],
)
def test_bad_classification_input(fn, probs, labels, error, match):
    with pytest.raises(error, match=match):
        fn(probs, labels)


@pytest.mark.parametrize("fn", [metrics.ece, metrics.calibration_curve])
@pytest.mark.parametrize(
    "num_bins, error, match",
    [
        (0, ValueError, "`num_bins` must be >= 1, got 0"),
        (-3, ValueError, "`num_bins` must be >= 1"),
        (1.5, TypeError, "`num_bins` must be an int"),
        (True, TypeError, "`num_bins` must be an int"),
        ("15", TypeError, "`num_bins` must be an int"),
    ],
)
def test_bad_num_bins(fn, num_bins, error, match):
    with pytest.raises(error, match=match):
        fn(GOOD_P, GOOD_Y, num_bins=num_bins)


def test_bad_calibration_curve_input():
    with pytest.raises(ValueError, match="`labels` must lie"):
        metrics.calibration_curve(GOOD_P, [0, 5])
    with pytest.raises(ValueError, match="`probs` must sum to 1"):
        metrics.calibration_curve([[0.7, 0.3], [0.4, 0.4]], GOOD_Y)


@pytest.mark.parametrize(
    "value, error, match",
    [
        ([[-1.0, -2.0]], ValueError, r"`log_predictive` must have shape \(n,\)"),
        (-1.0, ValueError, r"`log_predictive` must have shape \(n,\)"),
        (np.zeros(0), ValueError, "`log_predictive` must hold at least one"),
        ([-1.0, np.nan], ValueError, "`log_predictive` holds 1 NaN or \\+inf"),
        ([-1.0, np.inf], ValueError, "`log_predictive` holds 1 NaN or \\+inf"),
        (["x"], TypeError, "`log_predictive`"),
    ],
)
def test_bad_nll_input(value, error, match):
    with pytest.raises(error, match=match):
        metrics.nll(value)


@pytest.mark.parametrize(
    "mean, targets, error, match",
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], ValueError, "`mean` and `targets` must have the same shape"),
        ([[1.0, 2.0]], [1.0, 2.0], ValueError, "`mean` and `targets` must have the same shape"),
        (1.0, 1.0, ValueError, "`mean` must have a leading axis"),
        (np.zeros(0), np.zeros(0), ValueError, "`mean` must hold at least one"),
        ([1.0, np.nan], [1.0, 2.0], ValueError, "`mean` holds 1 NaN"),
        ([1.0, 2.0], [np.inf, 2.0], ValueError, "`targets` holds 1 NaN or inf"),
    ],
)
def test_bad_rmse_input(mean, targets, error, match):
    with pytest.raises(error, match=match):
        metrics.rmse(mean, targets)


@pytest.mark.parametrize(
    "lower, upper, targets, match",
    [
        ([0.0, 0.0], [1.0, 1.0], [0.5], "`lower` and `upper` and `targets` must have the same"),
        ([0.0, 0.0], [1.0], [0.5, 0.5], "must have the same shape"),
        ([0.0, 2.0], [1.0, 1.0], [0.5, 0.5], "`lower` must be <= `upper`.*1 interval"),
        ([0.0, np.nan], [1.0, 1.0], [0.5, 0.5], "`lower` holds 1 NaN"),
        ([0.0, 0.0], [1.0, 1.0], [0.5, np.nan], "`targets` holds 1 NaN"),
        (np.zeros(0), np.zeros(0), np.zeros(0), "`lower` must hold at least one"),
    ],
)
def test_bad_coverage_input(lower, upper, targets, match):
    with pytest.raises(ValueError, match=match):
        metrics.coverage(lower, upper, targets)


@pytest.mark.parametrize("fn", [metrics.agreement, metrics.total_variation])
def test_bad_pair_input(fn):
    with pytest.raises(ValueError, match="`probs_a` and `probs_b` must have the same shape"):
        fn(GOOD_P, GOOD_P[:1])
    with pytest.raises(ValueError, match="`probs_a` and `probs_b` must have the same shape"):
        fn(GOOD_P, np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="`probs_b` must sum to 1"):
        fn(GOOD_P, [[0.5, 0.6], [0.4, 0.6]])
    with pytest.raises(ValueError, match="`probs_a` holds 1 NaN"):
        fn([[np.nan, 0.3], [0.4, 0.6]], GOOD_P)
    with pytest.raises(ValueError, match=r"`probs_b` must have shape \(n, k\)"):
        fn(GOOD_P, GOOD_P[0])
