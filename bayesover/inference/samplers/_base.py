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

The three are typed by Protocols (`InitFn`, `WarmupFn`, `StepFn`), as BlackJAX types its
`init`/`step` functions. Every state has a `.position` (the unconstrained position). SG-MCMC
kernels included: they return `(state, info)` too, unlike BlackJAX's bare-position SGLD/SGHMC
steps.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple, Protocol

import equinox as eqx
from jaxtyping import Array, PRNGKeyArray

from bayesover.posterior._posterior import AbstractPosterior


class ChainState(Protocol):
    """The state of one chain: whatever the sampler keeps, with the unconstrained `position`."""

    @property
    def position(self) -> Any: ...


class SampleStats(Protocol):
    """A NamedTuple of per-draw statistics named as ArviZ names them."""

    def _asdict(self) -> dict[str, Any]: ...


class InitFn(Protocol):
    """`init(position, rng_key) -> state`."""

    def __call__(self, position: Any, rng_key: PRNGKeyArray, /) -> ChainState: ...


class WarmupFn(Protocol):
    """`warmup(rng_key, state, num_steps) -> state` (tuned parameters live in the state)."""

    def __call__(self, rng_key: PRNGKeyArray, state: Any, num_steps: int, /) -> ChainState: ...


class StepFn(Protocol):
    """`step(rng_key, state) -> (state, info)`: one transition and its statistics."""

    def __call__(self, rng_key: PRNGKeyArray, state: Any, /) -> tuple[ChainState, SampleStats]: ...


class Algorithm(NamedTuple):
    """A sampler bound to a posterior: `init`, `warmup`, `step` (see the module docstring)."""

    init: InitFn
    warmup: WarmupFn
    step: StepFn


class AbstractSampler(eqx.Module):
    """A sampler config. Subclasses implement `build(posterior) -> Algorithm`.

    What `bo.sample` needs to know beyond the `Algorithm` the sampler declares here, so that
    the driver never inspects a sampler's fields:

    - `chain_stopped(info)`: the flag that marks a chain as stopped at this draw (its draw is
      then recorded as NaN), or None for samplers whose chains never stop;
    - `recorded_settings()`: settings copied into the ensemble's config for the diagnostics
      (NUTS: `max_tree_depth`, for the tree-depth saturation check);
    - `progress_stats(info)`: what the live progress bar shows of a draw (NUTS/HMC:
      `diverging`; SG-MCMC: `step_size`).
    """

    @abc.abstractmethod
    def build(self, posterior: AbstractPosterior) -> Algorithm:
        raise NotImplementedError

    def chain_stopped(self, info: Any) -> Array | None:
        """True where the chain has stopped (a traced bool), or None: it never stops."""
        return None

    def recorded_settings(self) -> dict[str, Any]:
        """Settings recorded in `Ensemble.config` for the diagnostics (JSON-able values)."""
        return {}

    def progress_stats(self, info: Any) -> dict[str, Array]:
        """Scalars of this draw's `info` for the live progress bar (`bayesover.inference.
        _progress`): a bool entry is counted over draws and chains ("diverging": divergences so
        far); any other entry is shown as its current value, averaged over chains."""
        return {}
