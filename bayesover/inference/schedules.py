"""Step-size schedules: functions of the step count, as in Optax.

BlackJAX's SG-MCMC kernels take one step size per call and have no schedules; a schedule here
is a pure function `t -> step_size` evaluated inside the compiled loop.

- `constant(step_size)`: eps_t = eps.
- `polynomial(step_size, a=1, b=1, gamma=0.55)`: eps_t = eps * (b / (b + t))^gamma
  (Welling and Teh 2011: sum eps_t = inf, sum eps_t^2 < inf for gamma in (0.5, 1]).
- `cyclical(step_size, cycle_length, exploration_fraction=0.5)`: eps_t = eps/2 * (cos(pi r_t) + 1)
  with r_t = (t mod L) / L (Zhang et al. 2020, "Cyclical stochastic gradient MCMC"): each cycle
  starts large (exploration, r < exploration_fraction, no draws kept) and ends small
  (sampling). `is_sampling(t)` says which phase step t is in. `bo.sample` keeps the last step
  of every `thinning` window: with `thinning = cycle_length` (and warm-up a whole number of
  cycles) it keeps one draw per cycle, at its smallest step size, as Zhang et al. do.
"""

from __future__ import annotations

from typing import Protocol

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from bayesover._checks import check_int, check_positive, check_real


class Schedule(Protocol):
    def __call__(self, step: ArrayLike) -> Array: ...


def _check_step_count(step):
    return jnp.asarray(step, jnp.float32)


class constant(eqx.Module):  # noqa: N801  (a schedule is a function, named like one)
    """eps_t = step_size."""

    step_size: float

    def __check_init__(self):
        check_positive("step_size", self.step_size)

    def __call__(self, step):
        return jnp.full(jnp.shape(step), self.step_size, jnp.float32)

    def is_sampling(self, step):
        return jnp.ones(jnp.shape(step), bool)


class polynomial(eqx.Module):  # noqa: N801
    """eps_t = step_size * (decay_steps / (decay_steps + t))^power."""

    step_size: float
    decay_steps: float = 1000.0
    power: float = 0.55

    def __check_init__(self):
        check_positive("step_size", self.step_size)
        check_positive("decay_steps", self.decay_steps)
        check_positive("power", self.power)

    def __call__(self, step):
        t = _check_step_count(step)
        return self.step_size * (self.decay_steps / (self.decay_steps + t)) ** self.power

    def is_sampling(self, step):
        return jnp.ones(jnp.shape(step), bool)


class cyclical(eqx.Module):  # noqa: N801
    """eps_t = step_size / 2 * (cos(pi (t mod L) / L) + 1), L = cycle_length."""

    step_size: float
    cycle_length: int
    exploration_fraction: float = 0.5

    def __check_init__(self):
        check_positive("step_size", self.step_size)
        check_int("cycle_length", self.cycle_length, minimum=1)
        if not 0.0 <= check_real("exploration_fraction", self.exploration_fraction) < 1.0:
            raise ValueError(
                f"`exploration_fraction` must lie in [0, 1), got {self.exploration_fraction!r}."
            )

    def _phase(self, step):
        t = jnp.asarray(step)
        return jnp.mod(t, self.cycle_length).astype(jnp.float32) / self.cycle_length

    def __call__(self, step):
        return self.step_size / 2 * (jnp.cos(jnp.pi * self._phase(step)) + 1.0)

    def is_sampling(self, step):
        """True in the sampling (late, small-step) part of each cycle."""
        return self._phase(step) >= self.exploration_fraction
