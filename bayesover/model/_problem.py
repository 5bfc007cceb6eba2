"""A ready inference problem: a posterior plus held-out data, as a model's `build()` returns it."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from bayesover.data._container import Data
    from bayesover.posterior._posterior import AbstractPosterior


class Problem(NamedTuple):
    """What a model file's `build(seed=0)` returns.

    **Fields:**

    - `posterior`: the target, a `bo.Posterior` (network on training data) or a NumPyro-model
      posterior from `bo.Posterior.from_numpyro`.
    - `test`: held-out `bo.Data` for predictive metrics, or `None` when there is none.
    - `name`: a short identifier, used for output folders and reports.
    """

    posterior: AbstractPosterior
    test: Data | None
    name: str
