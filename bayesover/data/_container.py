r"""The data container: a validated `(inputs, targets)` pair, its splits and minibatches.

A data set is $\mathcal{D} = \{(x_n, y_n)\}_{n=1}^N$ stored as two arrays whose leading axis
indexes the data points: `inputs` of shape `(N, *feature_shape)` and `targets` of shape
`(N, *target_shape)`. Targets are floating for regression and `int32` class labels for
classification.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Int, PRNGKeyArray

from bayesover._checks import check_bool, check_fraction, check_int, check_key

if TYPE_CHECKING:
    from bayesover.data._standardise import Standardizer


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


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
        test_fraction = check_fraction("test_fraction", test_fraction)
        seed = check_int("seed", seed)
        n = self.num_points
        num_test = int(round(test_fraction * n))
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
        inputs = check_bool("inputs", inputs)
        targets = check_bool("targets", targets)
        if targets and not jnp.issubdtype(self.targets.dtype, jnp.floating):
            raise TypeError(
                "`targets=True` needs floating (regression) targets, but the targets have dtype "
                f"{self.targets.dtype} (class labels)."
            )
        # Imported here: `_standardise` builds `Data`s, so it imports this module (a cycle).
        from bayesover.data._standardise import fit_standardizer

        scaler = fit_standardizer(self, inputs=inputs, targets=targets)
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
        return _batch_indices(check_key(key), self.num_points, batch_size)

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
        key = check_key(key)
        if num_epochs is not None:
            num_epochs = check_int("num_epochs", num_epochs, minimum=1)
        return _minibatch_generator(self, key, batch_size, num_epochs)


def _unchecked_data(inputs: Array, targets: Array) -> Data:
    # Build a `Data` without `__init__` (as PyTree unflattening does), so this works on tracers.
    data = object.__new__(Data)
    object.__setattr__(data, "inputs", inputs)
    object.__setattr__(data, "targets", targets)
    return data


@ft.partial(jax.jit, static_argnums=(1, 2))
def _batch_indices(key: PRNGKeyArray, num_points: int, batch_size: int) -> Array:
    num_batches = num_points // batch_size
    perm = jax.random.permutation(key, num_points)
    return perm[: num_batches * batch_size].reshape(num_batches, batch_size)


def _check_batch_size(batch_size: Any, num_points: int) -> int:
    batch_size = check_int("batch_size", batch_size)
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
