"""Synthetic data sets: a 1-D regression with a gap, two moons, and teacher-student data."""

from __future__ import annotations

import functools as ft
from collections.abc import Callable, Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from bayesover._checks import ArgumentTypeError, check_int, check_key, check_positive
from bayesover.data._container import Data


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
    key = check_key(key)
    n = check_int("num_points", num_points, minimum=1)
    noise_scale = check_positive("noise_scale", noise_scale)
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
    key = check_key(key)
    n = check_int("num_points", num_points, minimum=2)
    noise_scale = check_positive("noise_scale", noise_scale)
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
    key = check_key(key)
    if not callable(teacher):
        raise ArgumentTypeError(
            f"`teacher` must be callable (e.g. an eqx.Module), got {type(teacher)}."
        )
    n = check_int("num_points", num_points, minimum=1)
    if isinstance(input_shape, int | np.integer) and not isinstance(input_shape, bool):
        input_shape = (int(input_shape),)
    if not isinstance(input_shape, Sequence) or not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 1 for d in input_shape
    ):
        raise ArgumentTypeError(
            f"`input_shape` must be a tuple of positive ints, got {input_shape!r}."
        )
    input_shape = tuple(int(d) for d in input_shape)
    noise_scale = check_positive("noise_scale", noise_scale)
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
