"""The MCMC moves that the samplers and the lens share: HMC, random-walk Metropolis, SGLD.

- HMC: `hmc_step` is BlackJAX's `blackjax.hmc` transition (leapfrog, diagonal or dense metric,
  Metropolis correction), `hmc_step(key, state, logdensity_fn, step_size, inverse_mass_matrix,
  num_integration_steps) -> (state, info)`; `bo.HMC` steps with it, and so do the lens's
  particle methods (tempered SMC, AIS, prequential SMC) through `hmc_chain`, a few transitions
  from one position. Their step size follows the acceptance rate a of the previous move
  (`adapt_step_size`): eps <- eps exp(gain (a - a*)), towards `target_acceptance` a*.
- Random-walk Metropolis (`random_walk_metropolis`): a population of chains sharing one
  proposal covariance, x' = x + s L xi, accepted with probability min(1, p(x') / p(x)).
- SGLD (`sgld_step`), in bo.SGLD's convention, BlackJAX's `overdamped_langevin`:

      x <- x + eps g + sqrt(2 eps) xi,   xi ~ N(0, I),

  g the (minibatch estimate of the) gradient of the log density. The stationary law of the
  continuous-time limit is p itself. Lau et al. and devinterp write the same chain as
  x <- x + (eps'/2) g + sqrt(eps') xi: their eps' is 2 eps here.

Why the Metropolis move is by hand: BlackJAX's `rmh` moves one chain with its own key, while the
lens moves a whole population at once with one draw of normals per step and a proposal factor
learnt from the population (adaptive multilevel splitting).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import blackjax
import jax
import jax.numpy as jnp
from blackjax.sgmcmc import diffusions
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

__all__ = [
    "adapt_step_size",
    "hmc_chain",
    "hmc_kernel",
    "hmc_step",
    "random_walk_metropolis",
    "sgld_step",
    "target_acceptance",
]

# ------------------------------------------------------------------ HMC

hmc_step = blackjax.hmc.build_kernel()
"""BlackJAX's HMC transition: `hmc_step(key, state, logdensity_fn, step_size,
inverse_mass_matrix, num_integration_steps) -> (HMCState, HMCInfo)`."""


def hmc_kernel(num_integration_steps: int) -> Callable[..., Any]:
    """`hmc_step` with `num_integration_steps` bound: the `mcmc_step_fn` of BlackJAX's SMC."""
    return partial(hmc_step, num_integration_steps=num_integration_steps)


def hmc_chain(
    key: PRNGKeyArray,
    position: PyTree,
    logdensity_fn: Callable[[PyTree], Array],
    step_size: ArrayLike,
    inverse_mass_matrix: Array,
    num_integration_steps: int,
    num_steps: int,
) -> tuple[PyTree, Array]:
    """`num_steps` HMC transitions from `position` (keys `jax.random.split(key, num_steps)`).

    **Returns:** the last position and the acceptance rate of each transition `(num_steps,)`.
    """
    kernel = hmc_kernel(num_integration_steps)
    state = blackjax.hmc.init(position, logdensity_fn)

    def step(state, step_key):
        state, info = kernel(step_key, state, logdensity_fn, step_size, inverse_mass_matrix)
        return state, info.acceptance_rate

    state, acceptance = jax.lax.scan(step, state, jax.random.split(key, num_steps))
    return state.position, acceptance


def target_acceptance(num_integration_steps: int) -> float:
    """The acceptance rate the lens tunes HMC towards: 0.574 for one leapfrog step (MALA's
    optimum, Roberts and Rosenthal 1998), else 0.65 (HMC's, Beskos et al. 2013)."""
    return 0.574 if num_integration_steps == 1 else 0.65


def adapt_step_size(
    step_size: Array,
    acceptance: Array,
    target: float,
    *,
    gain: float = 1.0,
    max_factor: float | None = None,
    bounds: tuple[float, float] | None = (1e-5, 5.0),
) -> Array:
    """Multiplicative step-size control: eps <- eps f, f = exp(gain (a - a*)).

    A non-finite acceptance rate a counts as 0. `max_factor` clips f to [1/max_factor,
    max_factor]; `bounds` clips the new step size (None: neither).
    """
    acceptance = jnp.where(jnp.isfinite(acceptance), acceptance, 0.0)
    factor = jnp.exp(gain * (acceptance - target))
    if max_factor is not None:
        factor = jnp.clip(factor, 1.0 / max_factor, max_factor)
    step_size = step_size * factor
    if bounds is not None:
        step_size = jnp.clip(step_size, *bounds)
    return step_size


# ------------------------------------------------------------------ random-walk Metropolis


def random_walk_metropolis(
    key: PRNGKeyArray,
    x: Array,
    logdensity: Array,
    aux: PyTree,
    logdensity_fn: Callable[[Array], tuple[Array, PyTree]],
    factor: Array,
    scale: ArrayLike,
) -> tuple[Array, Array, PyTree, Array]:
    """One random-walk Metropolis step of every chain of the population `x (N, d)`.

    x' = x + scale * xi L^T (rows), L = `factor` (d, d), accepted where
    log u < log p(x') - log p(x); the N x (d + 1) normals come from `key` in one draw, the last
    column turned into log u by log Phi. `logdensity (N,)` is log p(x), `aux` a pytree of
    per-chain values (leading axis N) that travel with the positions;
    `logdensity_fn(x') -> (log p(x') (N,), aux')` evaluates the proposals, vectorised.

    **Returns:** `(x, logdensity, aux, accepted (N,))` after the step.
    """
    n, d = x.shape
    noise = jax.random.normal(key, (n, d + 1), x.dtype)
    proposal = x + scale * noise[:, :d] @ factor.T
    proposed, proposed_aux = logdensity_fn(proposal)
    log_u = jax.scipy.special.log_ndtr(noise[:, d])
    accepted = log_u < proposed - logdensity

    def keep(new, old):
        return jnp.where(accepted.reshape(accepted.shape + (1,) * (new.ndim - 1)), new, old)

    x = keep(proposal, x)
    logdensity = keep(proposed, logdensity)
    return x, logdensity, jax.tree.map(keep, proposed_aux, aux), accepted


# ------------------------------------------------------------------ SGLD


def sgld_step(key: PRNGKeyArray, position: PyTree, grad: PyTree, step_size: ArrayLike) -> PyTree:
    """One SGLD step, x <- x + eps g + sqrt(2 eps) xi (BlackJAX's `overdamped_langevin`; the
    noise xi is one normal draw from `key` over the raveled position)."""
    return diffusions.overdamped_langevin()(key, position, grad, step_size)
