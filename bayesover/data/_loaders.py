"""Loaders of small data sets that ship with scikit-learn (offline: no download)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from bayesover._checks import ArgumentTypeError
from bayesover.data._container import Data

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
        raise ArgumentTypeError(
            f"`name` must be a str, one of {DATASETS}, got {type(name).__name__}."
        )
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
