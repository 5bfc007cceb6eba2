"""The one protocol every bayesover sampler speaks.

A sampler is a small frozen config (an `eqx.Module`). `sampler.build(posterior)` binds it to a
target and returns an `Algorithm`, three pure functions in the BlackJAX style:

- `init(position, rng_key) -> state` (the key seeds what the chain owns, e.g. its minibatch
  order; HMC/NUTS ignore it)
- `warmup(rng_key, state, num_steps) -> state`: tuning (window adaptation for HMC/NUTS) or
  burn-in (SG-MCMC); the tuned parameters live in the returned state;
- `step(rng_key, state) -> (state, info)`: one transition; `info` is a NamedTuple whose
  fields are ArviZ sample-stat names (`acceptance_rate`, `diverging`, `tree_depth`, `n_steps`,
  `step_size`, `energy`, `lp`, ...), recorded for every kept draw.

Every state has a `.position` (the unconstrained position). SG-MCMC kernels included: they
return `(state, info)` too, unlike BlackJAX's bare-position SGLD/SGHMC steps.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx

from bayesover.posterior._posterior import AbstractPosterior


class Algorithm(NamedTuple):
    """A sampler bound to a posterior: `init`, `warmup`, `step` (see the module docstring)."""

    init: Callable[[Any, Any], Any]
    warmup: Callable[[Any, Any, int], Any]
    step: Callable[[Any, Any], tuple[Any, Any]]


class AbstractSampler(eqx.Module):
    """A sampler config. Subclasses implement `build(posterior) -> Algorithm`."""

    @abc.abstractmethod
    def build(self, posterior: AbstractPosterior) -> Algorithm:
        raise NotImplementedError

    @property
    def uses_minibatches(self) -> bool:
        """Whether `num_warmup` and draws count minibatch steps (SG-MCMC) or transitions."""
        return False


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Raise a ValueError naming `name` unless `value` is an int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return value
