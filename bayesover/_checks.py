"""Argument checks shared by every public function: one wording, one pair of exception types.

A value of the wrong type raises `ArgumentTypeError`, a `TypeError`; a value of the right type
out of its range raises `ValueError`. Each message names the argument (in backquotes) and says
what was expected and what was given.

`ArgumentTypeError` also subclasses `ValueError`, as NumPy's `AxisError` subclasses both
`ValueError` and `IndexError`: several checks raised `ValueError` for a wrong type before they
were merged here, and code that catches `ValueError` keeps working.

Why by hand: neither JAX nor Equinox validates the arguments of user-facing functions, and
`jaxtyping` checks array shapes and dtypes, not integers, ranges or PRNG keys.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a `TypeError`; also a `ValueError`, see the module)."""


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """`value` as an int; it must be an integer (not a bool) and, if given, >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ArgumentTypeError(f"`{name}` must be an int, got {_describe(value)}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value}.")
    return value


def check_int_between(
    name: str,
    value: Any,
    low: int,
    high: int,
    *,
    high_name: str | None = None,
    allow_none: bool = False,
) -> int | None:
    """`value` as an int in [`low`, `high`]; `None` passes through when `allow_none`.

    `high_name` names the upper bound in the message (`[1, N=40]` for `high_name="N"`).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        expected = "an int or None" if allow_none else "an int"
        raise ArgumentTypeError(f"`{name}` must be {expected}, got {_describe(value)}.")
    value = int(value)
    if not low <= value <= high:
        upper = high if high_name is None else f"{high_name}={high}"
        raise ValueError(f"`{name}` must be an int in [{low}, {upper}], got {value}.")
    return value


def check_real(name: str, value: Any) -> float:
    """`value` as a float; it must be a real number (int or float, not a bool or an array)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        if isinstance(value, jax.Array | np.ndarray) and np.ndim(value) == 0:
            return float(value)
        raise ArgumentTypeError(f"`{name}` must be a real number, got {_describe(value)}.")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    """`value` as a float; it must be a finite real number > 0."""
    number = check_real(name, value)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    return number


def check_fraction(name: str, value: Any) -> float:
    """`value` as a float strictly between 0 and 1."""
    number = check_real(name, value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"`{name}` must be in (0, 1), got {value!r}.")
    return number


def check_bool(name: str, value: Any) -> bool:
    """`value`, which must be a bool."""
    if not isinstance(value, bool | np.bool_):
        raise ArgumentTypeError(f"`{name}` must be a bool, got {_describe(value)}.")
    return bool(value)


def check_key(key: Any, name: str = "key") -> jax.Array:
    """A single typed PRNG key. Legacy uint32[2] keys (`jax.random.PRNGKey`) are wrapped."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"`{name}` must be a single PRNG key (shape ()), got shape {key.shape}; "
                "split it with jax.random.split and pass one."
            )
        return key
    if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    if isinstance(key, jax.Array):
        raise ArgumentTypeError(
            f"`{name}` must be a JAX PRNG key (jax.random.key(seed)), got an array of dtype "
            f"{key.dtype} and shape {key.shape}."
        )
    raise ArgumentTypeError(
        f"`{name}` must be a JAX PRNG key (jax.random.key(seed)), got {type(key).__name__}."
    )
