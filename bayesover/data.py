r"""Data sets: a validated `(inputs, targets)` container, splits, scaling, minibatches and loaders.

A data set is $\mathcal{D} = \{(x_n, y_n)\}_{n=1}^N$ stored as two arrays whose leading axis
indexes the data points: `inputs` of shape `(N, *feature_shape)` and `targets` of shape
`(N, *target_shape)`. Targets are floating for regression and `int32` class labels for
classification.
"""

from __future__ import annotations

import functools as ft
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Int, PRNGKeyArray

__all__ = [
    "DATASETS",
    "NUM_CLASSES",
    "TASKS",
    "Data",
    "Standardizer",
    "gap_function",
    "gap_regression_1d",
    "load",
    "num_classes",
    "teacher_student",
    "two_moons",
]

_STD_FLOOR = 1e-12


# ---------------------------------------------------------------------------------------------
# Small validation helpers
# ---------------------------------------------------------------------------------------------


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be a Python int, got {type(value).__name__} {value!r}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return value


def _check_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value}.")
    return value


def _check_key(key: Any) -> PRNGKeyArray:
    if not isinstance(key, jax.Array):
        raise TypeError(
            f"`key` must be a JAX PRNG key (from `jax.random.key`), got {type(key).__name__}."
        )
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`key` must be a single PRNG key (shape ()), got shape {key.shape}.")
    elif not (key.dtype == jnp.uint32 and key.shape == (2,)):
        raise TypeError(
            "`key` must be a JAX PRNG key (from `jax.random.key` or `jax.random.PRNGKey`), "
            f"got an array of dtype {key.dtype} and shape {key.shape}."
        )
    return key


def _as_inputs(inputs: Any) -> Array:
    try:
        x = jnp.asarray(inputs)
    except (TypeError, ValueError) as e:
        raise TypeError(f"`inputs` must be array-like, got {type(inputs).__name__}: {e}") from e
    if not (
        jnp.issubdtype(x.dtype, jnp.floating)
        or jnp.issubdtype(x.dtype, jnp.integer)
        or x.dtype == jnp.bool_
    ):
        raise TypeError(f"`inputs` must have a real numeric dtype, got {x.dtype}.")
    return x.astype(float)  # `float` canonicalises to the default float dtype


def _as_targets(targets: Any) -> Array:
    try:
        y = jnp.asarray(targets)
    except (TypeError, ValueError) as e:
        raise TypeError(f"`targets` must be array-like, got {type(targets).__name__}: {e}") from e
    if jnp.issubdtype(y.dtype, jnp.floating):
        return y.astype(float)
    if jnp.issubdtype(y.dtype, jnp.integer) or y.dtype == jnp.bool_:
        return y.astype(jnp.int32)
    raise TypeError(
        "`targets` must be floating (regression) or integer/bool (class labels), "
        f"got dtype {y.dtype}."
    )


@jax.jit
def _num_nonfinite(x: Array) -> Array:
    return jnp.sum(~jnp.isfinite(x))


def _check_finite(name: str, x: Array) -> None:
    if _is_tracer(x) or not jnp.issubdtype(x.dtype, jnp.floating):
        return
    num_bad = int(_num_nonfinite(x))
    if num_bad:
        raise ValueError(
            f"`{name}` must be finite, but NaN/inf found in {num_bad} of {x.size} entries."
        )


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


class Data(eqx.Module):
    r"""A supervised data set $\{(x_n, y_n)\}_{n=1}^N$ as two arrays sharing a leading axis.

    `Data` is a PyTree, so it can be passed through `jax.jit`, `jax.vmap`, etc. Validation only
    happens when it is constructed with `Data(inputs, targets)`.
    """

    inputs: Array
    targets: Array

    def __init__(self, inputs: ArrayLike, targets: ArrayLike):
        """**Arguments:**

        - `inputs`: array of shape `(N, *feature_shape)`. Converted to the default float dtype
            (`float32` unless 64-bit mode is on).
        - `targets`: array of shape `(N, *target_shape)`. Floating targets (regression) are
            converted to the default float dtype; integer or bool targets (class labels) to
            `int32`.

        Raises `TypeError` for non-numeric arrays and `ValueError` for arrays with no leading
        axis, mismatched leading lengths, `N = 0`, or non-finite values.
        """
        x = _as_inputs(inputs)
        y = _as_targets(targets)
        if x.ndim < 1:
            raise ValueError(
                "`inputs` must be at least 1-D with data points on the leading axis, "
                f"got shape {x.shape}."
            )
        if y.ndim < 1:
            raise ValueError(
                "`targets` must be at least 1-D with data points on the leading axis, "
                f"got shape {y.shape}."
            )
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                "`inputs` and `targets` must have the same leading length, got "
                f"inputs.shape={x.shape} and targets.shape={y.shape}."
            )
        if x.shape[0] == 0:
            raise ValueError("`inputs` and `targets` have no data points (empty data set).")
        _check_finite("inputs", x)
        _check_finite("targets", y)
        self.inputs = x
        self.targets = y

    @property
    def num_points(self) -> int:
        """The number of data points $N$."""
        return int(self.inputs.shape[0])

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one input $x_n$."""
        return tuple(self.inputs.shape[1:])

    @property
    def target_shape(self) -> tuple[int, ...]:
        """The shape of one target $y_n$ (`()` for scalar targets and class labels)."""
        return tuple(self.targets.shape[1:])

    def __len__(self) -> int:
        return self.num_points

    def take(self, indices: ArrayLike) -> Data:
        r"""Gather the data points $\{(x_i, y_i)\}_{i \in \text{indices}}$. Works under `jit`.

        **Arguments:**

        - `indices`: integer array of row indices (any shape; the result's leading axes take
            that shape).

        **Returns:**

        A `Data` with `inputs[indices]` and `targets[indices]`.
        """
        idx = jnp.asarray(indices)
        if not jnp.issubdtype(idx.dtype, jnp.integer):
            raise TypeError(f"`indices` must be an integer array, got dtype {idx.dtype}.")
        return jax.tree.map(lambda a: a[idx], self)

    def split(self, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[Data, Data]:
        r"""Random train/test split: a seeded permutation, the first
        $N_\text{test} = \operatorname{round}(\text{test\_fraction} \cdot N)$ points go to
        test, the rest to train.

        **Arguments:**

        - `test_fraction`: fraction of points held out, in the open interval $(0, 1)$.
        - `seed`: integer seed of the permutation; the same seed gives the same split.

        **Returns:**

        A tuple `(train, test)` of `Data`, both non-empty.
        """
        if isinstance(test_fraction, bool) or not isinstance(
            test_fraction, int | float | np.integer | np.floating
        ):
            raise TypeError(
                f"`test_fraction` must be a float in (0, 1), got {type(test_fraction).__name__}."
            )
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}.")
        seed = _check_int("seed", seed)
        n = self.num_points
        num_test = int(round(float(test_fraction) * n))
        if not 1 <= num_test <= n - 1:
            raise ValueError(
                f"`test_fraction`={test_fraction} with N={n} data points gives {num_test} test "
                f"and {n - num_test} training points; both parts must be non-empty."
            )
        return _split(self, jax.random.key(seed), num_test)

    def standardize(
        self, *, inputs: bool = True, targets: bool = False
    ) -> tuple[Data, Standardizer]:
        r"""Fit per-feature $\mu, \sigma$ on this data and map $z = (v - \mu) / \sigma$.

        Constant columns (and columns with $\sigma < 10^{-12}$) use $\sigma = 1$.

        **Arguments:**

        - `inputs`: whether to standardize the inputs.
        - `targets`: whether to standardize the targets (regression only: floating targets).

        **Returns:**

        A tuple `(data, standardizer)`: the standardized data and the fitted `Standardizer`,
        whose `apply` maps held-out data with the same statistics.
        """
        if not isinstance(inputs, bool):
            raise TypeError(f"`inputs` must be a bool, got {type(inputs).__name__}.")
        if not isinstance(targets, bool):
            raise TypeError(f"`targets` must be a bool, got {type(targets).__name__}.")
        if targets and not jnp.issubdtype(self.targets.dtype, jnp.floating):
            raise TypeError(
                "`targets=True` needs floating (regression) targets, but the targets have dtype "
                f"{self.targets.dtype} (class labels)."
            )
        # `_mean_std` is jitted: one compilation per shape instead of one per primitive.
        in_mean, in_std = _mean_std(self.inputs) if inputs else (None, None)
        out_mean, out_std = _mean_std(self.targets) if targets else (None, None)
        scaler = Standardizer(in_mean, in_std, out_mean, out_std)
        return scaler.apply(self), scaler

    def batch_indices(
        self, key: PRNGKeyArray, batch_size: int
    ) -> Int[Array, "num_batches batch_size"]:
        r"""One epoch of minibatch indices: a random permutation of $\{0, \dots, N-1\}$ with the
        last $N \bmod B$ entries dropped, reshaped to $(\lfloor N / B \rfloor, B)$.

        Each index appears at most once. Jittable with `batch_size` static.

        **Arguments:**

        - `key`: a JAX PRNG key.
        - `batch_size`: the minibatch size $B$, a Python int with $1 \le B \le N$.

        **Returns:**

        An integer array of shape `(N // batch_size, batch_size)`.
        """
        batch_size = _check_batch_size(batch_size, self.num_points)
        return _batch_indices(_check_key(key), self.num_points, batch_size)

    def minibatches(
        self, key: PRNGKeyArray, batch_size: int, *, num_epochs: int | None = None
    ) -> Iterator[Data]:
        r"""Iterate over minibatches, epoch after epoch, sampling without replacement in each epoch.

        Epoch $e$ uses the permutation `batch_indices(key_e, batch_size)` with
        `key, key_e = jax.random.split(key)`, so it yields $\lfloor N / B \rfloor$ minibatches of
        exactly $B$ points and drops the remainder.

        **Arguments:**

        - `key`: a JAX PRNG key.
        - `batch_size`: the minibatch size $B$, a Python int with $1 \le B \le N$.
        - `num_epochs`: number of passes over the data, or `None` to iterate forever.

        **Returns:**

        A Python iterator of `Data` minibatches.
        """
        batch_size = _check_batch_size(batch_size, self.num_points)
        key = _check_key(key)
        if num_epochs is not None:
            num_epochs = _check_int("num_epochs", num_epochs, minimum=1)
        return _minibatch_generator(self, key, batch_size, num_epochs)


def _unchecked_data(inputs: Array, targets: Array) -> Data:
    # Build a `Data` without `__init__` (as PyTree unflattening does), so this works on tracers.
    data = object.__new__(Data)
    object.__setattr__(data, "inputs", inputs)
    object.__setattr__(data, "targets", targets)
    return data


@jax.jit
def _mean_std(x: Array) -> tuple[Array, Array]:
    # Constant columns get mean = that constant (exactly) and std = 1, so they map to exactly 0;
    # rounding would otherwise leave a tiny nonzero std there.
    constant = jnp.all(x == x[0], axis=0)
    mean = jnp.where(constant, x[0], jnp.mean(x, axis=0))
    std = jnp.std(x, axis=0)
    return mean, jnp.where(constant | (std < _STD_FLOOR), jnp.ones_like(std), std)


@ft.partial(jax.jit, static_argnums=(1, 2))
def _batch_indices(key: PRNGKeyArray, num_points: int, batch_size: int) -> Array:
    num_batches = num_points // batch_size
    perm = jax.random.permutation(key, num_points)
    return perm[: num_batches * batch_size].reshape(num_batches, batch_size)


def _check_batch_size(batch_size: Any, num_points: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(
            f"`batch_size` must be a Python int (static), got {type(batch_size).__name__}."
        )
    batch_size = int(batch_size)
    if not 1 <= batch_size <= num_points:
        raise ValueError(
            f"`batch_size` must satisfy 1 <= batch_size <= N = {num_points}, got {batch_size}."
        )
    return batch_size


@ft.partial(jax.jit, static_argnums=2)
def _split(data: Data, key: PRNGKeyArray, num_test: int) -> tuple[Data, Data]:
    perm = jax.random.permutation(key, data.num_points)
    return data.take(perm[num_test:]), data.take(perm[:num_test])


@ft.partial(jax.jit, static_argnums=(2, 3))
def _epoch(data: Data, key: PRNGKeyArray, num_points: int, batch_size: int) -> Data:
    return data.take(_batch_indices(key, num_points, batch_size))


def _minibatch_generator(
    data: Data, key: PRNGKeyArray, batch_size: int, num_epochs: int | None
) -> Iterator[Data]:
    epoch = 0
    while num_epochs is None or epoch < num_epochs:
        key, epoch_key = jax.random.split(key)
        batches = _epoch(data, epoch_key, data.num_points, batch_size)
        for i in range(batches.inputs.shape[0]):
            yield _unchecked_data(batches.inputs[i], batches.targets[i])
        epoch += 1


# ---------------------------------------------------------------------------------------------
# Standardizer
# ---------------------------------------------------------------------------------------------


class Standardizer(eqx.Module):
    r"""Affine scaling fitted on training data: $z = (v - \mu) / \sigma$ per feature.

    Fields are `None` for the parts (inputs or targets) that are left unscaled.
    """

    input_mean: Array | None
    input_std: Array | None
    target_mean: Array | None
    target_std: Array | None

    @property
    def target_scale(self) -> Array | float:
        r"""The target scale $\sigma_y$ (or `1.0` if targets are not standardized).

        A predictive standard deviation $s$ on the standardized scale is $\sigma_y s$ on the
        original scale.
        """
        return 1.0 if self.target_std is None else self.target_std

    def apply(self, data: Data) -> Data:
        """Standardize `data` with the fitted statistics (e.g. test data with training stats).

        **Arguments:**

        - `data`: a `Data` with the same feature (and target) shape as the fitted data.

        **Returns:**

        The standardized `Data`.
        """
        if not isinstance(data, Data):
            raise TypeError(f"`data` must be a `Data`, got {type(data).__name__}.")
        x, y = data.inputs, data.targets
        if self.input_mean is not None and self.input_std is not None:
            if data.feature_shape != tuple(self.input_mean.shape):
                raise ValueError(
                    f"`data` has feature shape {data.feature_shape}, but the standardizer was "
                    f"fitted on feature shape {tuple(self.input_mean.shape)}."
                )
            x = (x - self.input_mean) / self.input_std
        if self.target_mean is not None and self.target_std is not None:
            if data.target_shape != tuple(self.target_mean.shape):
                raise ValueError(
                    f"`data` has target shape {data.target_shape}, but the standardizer was "
                    f"fitted on target shape {tuple(self.target_mean.shape)}."
                )
            if not jnp.issubdtype(y.dtype, jnp.floating):
                raise TypeError(f"`data` has class-label targets (dtype {y.dtype}).")
            y = (y - self.target_mean) / self.target_std
        return _unchecked_data(x, y)

    def inverse_targets(self, y: ArrayLike) -> Array:
        r"""Map standardized targets back: $v = \sigma_y z + \mu_y$ (identity if unscaled).

        **Arguments:**

        - `y`: targets (or predictive means) on the standardized scale, shape
            `(..., *target_shape)`.

        **Returns:**

        The array on the original scale.
        """
        y = jnp.asarray(y)
        if self.target_mean is None or self.target_std is None:
            return y
        return y * self.target_std + self.target_mean

    def inverse_inputs(self, x: ArrayLike) -> Array:
        r"""Map standardized inputs back: $v = \sigma_x z + \mu_x$ (identity if unscaled).

        **Arguments:**

        - `x`: inputs on the standardized scale, shape `(..., *feature_shape)`.

        **Returns:**

        The array on the original scale.
        """
        x = jnp.asarray(x)
        if self.input_mean is None or self.input_std is None:
            return x
        return x * self.input_std + self.input_mean


# ---------------------------------------------------------------------------------------------
# Loaders (scikit-learn's bundled data sets; no network access)
# ---------------------------------------------------------------------------------------------

DATASETS: tuple[str, ...] = ("breast_cancer", "diabetes", "digits", "iris", "wine")
"""Names accepted by `load`."""

TASKS: dict[str, Literal["regression", "classification"]] = {
    "breast_cancer": "classification",
    "diabetes": "regression",
    "digits": "classification",
    "iris": "classification",
    "wine": "classification",
}
"""The task of each data set in `DATASETS`."""

NUM_CLASSES: dict[str, int] = {"breast_cancer": 2, "digits": 10, "iris": 3, "wine": 3}
"""Number of classes of each classification data set."""


def _check_dataset_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str, one of {DATASETS}, got {type(name).__name__}.")
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"`name` must be one of {DATASETS}, got {name!r}.")
    return key


def num_classes(name: str) -> int | None:
    """The number of classes $K$ of a data set in `DATASETS`, or `None` for regression.

    **Arguments:**

    - `name`: a data set name from `DATASETS`.

    **Returns:**

    An int, or `None` for a regression data set (`"diabetes"`).
    """
    return NUM_CLASSES.get(_check_dataset_name(name))


def load(name: str) -> Data:
    """Load a small data set that ships with scikit-learn (no download needed).

    | name              | N    | D  | targets                         |
    |-------------------|------|----|---------------------------------|
    | `"breast_cancer"` | 569  | 30 | `int32` labels in {0, 1}        |
    | `"diabetes"`      | 442  | 10 | float, disease progression      |
    | `"digits"`        | 1797 | 64 | `int32` labels in {0, ..., 9}   |
    | `"iris"`          | 150  | 4  | `int32` labels in {0, 1, 2}     |
    | `"wine"`          | 178  | 13 | `int32` labels in {0, 1, 2}     |

    Features are unscaled (except `diabetes`, which scikit-learn ships centred and scaled); use
    `Data.standardize` after `Data.split`.

    **Arguments:**

    - `name`: one of `DATASETS`.

    **Returns:**

    A `Data` with inputs of shape `(N, D)` in the default float dtype and targets of shape `(N,)`.
    """
    name = _check_dataset_name(name)
    from sklearn import datasets as skd

    loader: Callable[[], Any] = {
        "breast_cancer": skd.load_breast_cancer,
        "diabetes": skd.load_diabetes,
        "digits": skd.load_digits,
        "iris": skd.load_iris,
        "wine": skd.load_wine,
    }[name]
    bunch = loader()
    x = np.asarray(bunch.data, dtype=np.float32)
    if TASKS[name] == "regression":
        y = np.asarray(bunch.target, dtype=np.float32)
    else:
        y = np.asarray(bunch.target, dtype=np.int32)
    return Data(x, y)


# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------


def gap_function(x: ArrayLike) -> Array:
    r"""The mean function of `gap_regression_1d`: $f(x) = x + 0.3 \sin(2\pi x)$."""
    x = jnp.asarray(x)
    return x + 0.3 * jnp.sin(2 * jnp.pi * x)


def gap_regression_1d(
    key: PRNGKeyArray, num_points: int = 100, *, noise_scale: float = 0.1
) -> Data:
    r"""1-D regression with a gap in the inputs, to probe "in-between" uncertainty.

    $x_n$ is uniform on $[-1, -0.3]$ for the first $\lfloor N/2 \rfloor$ points and on
    $[0.3, 1]$ for the rest, and $y_n = f(x_n) + \sigma \varepsilon_n$ with
    $f(x) = x + 0.3 \sin(2\pi x)$ (see `gap_function`) and
    $\varepsilon_n \sim \mathcal{N}(0, 1)$.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `num_points`: the number of points $N \ge 1$.
    - `noise_scale`: the noise standard deviation $\sigma > 0$.

    **Returns:**

    A `Data` with inputs of shape `(N, 1)` and targets of shape `(N,)`.
    """
    key = _check_key(key)
    n = _check_int("num_points", num_points, minimum=1)
    noise_scale = _check_positive_float("noise_scale", noise_scale)
    return Data(*_gap_regression_1d(key, n, noise_scale))


@ft.partial(jax.jit, static_argnums=1)
def _gap_regression_1d(key: PRNGKeyArray, n: int, noise_scale: float) -> tuple[Array, Array]:
    key_u, key_eps = jax.random.split(key)
    u = jax.random.uniform(key_u, (n,), minval=0.3, maxval=1.0)
    sign = jnp.where(jnp.arange(n) < n // 2, -1.0, 1.0)
    x = sign * u
    y = gap_function(x) + noise_scale * jax.random.normal(key_eps, (n,))
    return x[:, None], y


def two_moons(key: PRNGKeyArray, num_points: int = 200, *, noise_scale: float = 0.1) -> Data:
    r"""Two interleaving half circles, a binary classification problem.

    With $t \sim \mathcal{U}[0, \pi]$: class 0 (the first $\lfloor N/2 \rfloor$ points before
    shuffling) is $(\cos t, \sin t)$, class 1 is $(1 - \cos t, 0.5 - \sin t)$; then
    $\mathcal{N}(0, \sigma^2 I)$ noise is added and the points are shuffled.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `num_points`: the number of points $N \ge 2$.
    - `noise_scale`: the noise standard deviation $\sigma > 0$.

    **Returns:**

    A `Data` with inputs of shape `(N, 2)` and `int32` labels in {0, 1} of shape `(N,)`.
    """
    key = _check_key(key)
    n = _check_int("num_points", num_points, minimum=2)
    noise_scale = _check_positive_float("noise_scale", noise_scale)
    return Data(*_two_moons(key, n, noise_scale))


@ft.partial(jax.jit, static_argnums=1)
def _two_moons(key: PRNGKeyArray, n: int, noise_scale: float) -> tuple[Array, Array]:
    key_t, key_eps, key_perm = jax.random.split(key, 3)
    t = jax.random.uniform(key_t, (n,), minval=0.0, maxval=jnp.pi)
    labels = (jnp.arange(n) >= n // 2).astype(jnp.int32)
    outer = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1)
    inner = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=-1)
    x = jnp.where(labels[:, None] == 0, outer, inner)
    x = x + noise_scale * jax.random.normal(key_eps, x.shape)
    perm = jax.random.permutation(key_perm, n)
    return x[perm], labels[perm]


def teacher_student(
    key: PRNGKeyArray,
    teacher: Callable[[Array], Array],
    num_points: int,
    *,
    input_shape: int | Sequence[int],
    noise_scale: float = 0.1,
    task: Literal["regression", "classification"] = "regression",
) -> Data:
    r"""Data labelled by a fixed "teacher" network, $x_n \sim \mathcal{N}(0, I)$.

    - `task="regression"`: $y_n = g(x_n) + \sigma \varepsilon_n$,
        $\varepsilon_n \sim \mathcal{N}(0, I)$. A teacher output of shape `(1,)` gives scalar
        targets (target shape `()`).
    - `task="classification"`:
        $y_n \sim \operatorname{Categorical}(\operatorname{softmax}(g(x_n)))$ with logits
        $g(x_n)$ of shape `(K,)`.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `teacher`: the teacher $g$, e.g. an `eqx.Module`, mapping ONE input of shape `input_shape`
        to one output (it is `vmap`ped over the data points).
    - `num_points`: the number of points $N \ge 1$.
    - `input_shape`: the shape of one input (an int means `(input_shape,)`).
    - `noise_scale`: the regression noise standard deviation $\sigma > 0$ (unused for
        classification, but still validated).
    - `task`: `"regression"` or `"classification"`.

    **Returns:**

    A `Data` with inputs of shape `(N, *input_shape)` and targets of shape `(N, *output_shape)`
    (regression) or `int32` labels of shape `(N,)` (classification).
    """
    key = _check_key(key)
    if not callable(teacher):
        raise TypeError(f"`teacher` must be callable (e.g. an eqx.Module), got {type(teacher)}.")
    n = _check_int("num_points", num_points, minimum=1)
    if isinstance(input_shape, int | np.integer) and not isinstance(input_shape, bool):
        input_shape = (int(input_shape),)
    if not isinstance(input_shape, Sequence) or not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 1 for d in input_shape
    ):
        raise TypeError(f"`input_shape` must be a tuple of positive ints, got {input_shape!r}.")
    input_shape = tuple(int(d) for d in input_shape)
    noise_scale = _check_positive_float("noise_scale", noise_scale)
    if task not in ("regression", "classification"):
        raise ValueError(f"`task` must be 'regression' or 'classification', got {task!r}.")

    out = eqx.filter_eval_shape(teacher, jax.ShapeDtypeStruct(input_shape, jnp.result_type(float)))
    if not isinstance(out, jax.ShapeDtypeStruct) or not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"`teacher` must return one floating array for one input, got {out!r}.")
    if task == "classification" and (len(out.shape) != 1 or out.shape[0] < 2):
        raise ValueError(
            "For `task='classification'`, `teacher` must return logits of shape (K,) with "
            f"K >= 2 for one input, got output shape {out.shape}."
        )
    x, y = _teacher_student(key, teacher, n, input_shape, jnp.asarray(noise_scale), task)
    return Data(x, y)


@eqx.filter_jit
def _teacher_student(
    key: PRNGKeyArray,
    teacher: Callable[[Array], Array],
    n: int,
    input_shape: tuple[int, ...],
    noise_scale: Array,
    task: str,
) -> tuple[Array, Array]:
    key_x, key_y = jax.random.split(key)
    x = jax.random.normal(key_x, (n, *input_shape))
    out = jax.vmap(teacher)(x)
    if task == "regression":
        if out.shape[1:] == (1,):
            out = out[:, 0]
        y = out + noise_scale.astype(out.dtype) * jax.random.normal(key_y, out.shape, out.dtype)
    else:
        y = jax.random.categorical(key_y, out, axis=-1).astype(jnp.int32)
    return x, y
