"""Stochastic-gradient MCMC: SGLD, SGHMC and preconditioned SGLD, with their own loop.

Each step draws a minibatch B (epoch-wise permutations without replacement), estimates the
gradient of the log density with `Posterior.logdensity_estimate` (likelihood scaled by N/|B|)
and moves by a discretised diffusion, with eps_t = schedule(t):

- SGLD (Welling and Teh 2011), BlackJAX's `overdamped_langevin`:
  theta <- theta + eps_t g + sqrt(2 eps_t) xi;
- SGHMC (Chen et al. 2014), BlackJAX's `sghmc` diffusion, momentum KEPT across steps
  (BlackJAX's top-level SGHMC resamples it at every call):
  theta <- theta + eps_t r;  r <- (1 - alpha eps_t) r + eps_t g + sqrt(2 alpha eps_t) xi;
- pSGLD (Li et al. 2016), RMSprop preconditioner G = diag(1 / (lambda + sqrt(V))),
  V <- beta V + (1 - beta) (g / N)^2:  theta <- theta + eps_t G g + sqrt(2 eps_t G) xi
  (the Gamma correction term is dropped, as Li et al. do in practice).

`temperature` follows the one convention of bayesover: it tempers the likelihood, on top of
the posterior's own, so the target is p(theta) p(D | theta)^(1 / (T_posterior T_sampler)).

Why the loop is the project's own: BlackJAX's SG-MCMC steps return a bare position, its
run helper cannot feed minibatches, and it has no schedules. A chain whose iterate turns
non-finite stops: its state freezes at the last finite point and `stopped` is recorded.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.sgmcmc import diffusions
from jaxtyping import Array

from bayesover._checks import check_fraction, check_int, check_positive
from bayesover._trees import all_finite
from bayesover.inference import schedules
from bayesover.inference.samplers._base import AbstractSampler, Algorithm
from bayesover.inference.samplers._moves import sgld_step
from bayesover.posterior._posterior import AbstractPosterior, Posterior


class SGMCMCState(NamedTuple):
    """**Fields:** `position`; `momentum` (SGHMC) or `preconditioner` V (pSGLD), else `None`;
    `step` (steps taken); `data_key` (raw key data that orders this chain's minibatches);
    `order` (the current epoch's permutation of the data, drawn once per epoch);
    `stopped` (True once an iterate was non-finite)."""

    position: Any
    momentum: Any
    preconditioner: Any
    step: Array
    data_key: Array
    order: Array
    stopped: Array


class SGMCMCStats(NamedTuple):
    """Per-draw statistics: step size, minibatch estimate of the log density, stopped flag."""

    step_size: Array
    lp: Array
    stopped: Array


class _SGMCMC(AbstractSampler):
    step_size: float
    batch_size: int
    schedule: Any
    temperature: float

    def _check(self):
        check_positive("step_size", self.step_size)
        check_int("batch_size", self.batch_size, minimum=1)
        check_positive("temperature", self.temperature)
        if self.schedule is not None and not callable(self.schedule):
            raise TypeError(
                f"`schedule` must be a function of the step count, got {self.schedule!r}."
            )

    def chain_stopped(self, info: SGMCMCStats) -> Array:
        """`info.stopped`: the chain met a non-finite iterate and froze there."""
        return info.stopped

    def progress_stats(self, info: SGMCMCStats) -> dict:
        """`step_size`: the progress bar shows the current step size (the schedule's value)."""
        return {"step_size": info.step_size}

    def step_size_at(self, step):
        """eps_t: the schedule's value, or the constant `step_size` when there is no schedule."""
        schedule = schedules.constant(self.step_size) if self.schedule is None else self.schedule
        return schedule(step)

    def _momentum(self, position):
        return None

    def _preconditioner(self, position):
        return None

    def _move(self, key, state, grad, step_size, num_data):
        raise NotImplementedError

    def build(self, posterior: AbstractPosterior) -> Algorithm:
        if not isinstance(posterior, Posterior):
            raise TypeError(
                f"{type(self).__name__} needs a network bo.Posterior with data to minibatch; "
                "for NumPyro models use bo.NUTS or bo.HMC."
            )
        num_data = posterior.num_data
        if self.batch_size > num_data:
            raise ValueError(
                f"`batch_size` ({self.batch_size}) must not exceed the number of data points "
                f"N={num_data}."
            )
        batch_size = self.batch_size
        per_epoch = num_data // batch_size
        inverse_temperature = 1.0 / self.temperature

        def estimate(position, indices):
            batch = posterior.minibatch(indices)
            log_prior = posterior.log_prior(position)
            return log_prior + inverse_temperature * (
                posterior.logdensity_estimate(position, batch) - log_prior
            )

        def batch_indices(data_key, step, order):
            """This step's minibatch, and the epoch's order (redrawn when an epoch starts)."""
            epoch, within = jnp.divmod(step, per_epoch)
            key = jax.random.fold_in(jax.random.wrap_key_data(data_key), epoch)
            order = jax.lax.cond(
                within == 0,
                lambda: jax.random.permutation(key, num_data).astype(jnp.int32),
                lambda: order,
            )
            return jax.lax.dynamic_slice(order, (within * batch_size,), (batch_size,)), order

        def init(position, rng_key):
            return SGMCMCState(
                position,
                self._momentum(position),
                self._preconditioner(position),
                jnp.zeros((), jnp.int32),
                jax.random.key_data(rng_key),
                jnp.arange(num_data, dtype=jnp.int32),
                jnp.zeros((), bool),
            )

        def step(rng_key, state):
            step_size = self.step_size_at(state.step)
            indices, order = batch_indices(state.data_key, state.step, state.order)
            lp, grad = jax.value_and_grad(estimate)(state.position, indices)
            moved = self._move(rng_key, state, grad, step_size, num_data)
            finite = all_finite(moved.position) & jnp.isfinite(lp)
            stopped = state.stopped | ~finite
            keep = lambda new, old: jax.tree.map(  # noqa: E731
                lambda a, b: jnp.where(stopped, b, a), new, old
            )
            new_state = SGMCMCState(
                keep(moved.position, state.position),
                keep(moved.momentum, state.momentum),
                keep(moved.preconditioner, state.preconditioner),
                state.step + 1,
                state.data_key,
                order,
                stopped,
            )
            return new_state, SGMCMCStats(step_size, lp, stopped)

        def warmup(rng_key, state, num_steps):
            if num_steps == 0:
                return state
            keys = jax.random.split(rng_key, num_steps)
            state, _ = jax.lax.scan(lambda s, k: step(k, s), state, keys)
            return state

        return Algorithm(init, warmup, step)


class SGLD(_SGMCMC):
    """`bo.SGLD(step_size, batch_size, schedule=None, temperature=1.0)`:
    theta <- theta + eps_t g_hat + sqrt(2 eps_t) xi (BlackJAX's overdamped Langevin step)."""

    step_size: float
    batch_size: int
    schedule: Any = None
    temperature: float = 1.0

    def __check_init__(self):
        self._check()

    def _move(self, key, state, grad, step_size, num_data):
        position = sgld_step(key, state.position, grad, step_size)
        return state._replace(position=position)


class SGHMC(_SGMCMC):
    """`bo.SGHMC(step_size, batch_size, friction=10.0, schedule=None, temperature=1.0)`:
    SGHMC with momentum kept across steps; `friction` is alpha of BlackJAX's `sghmc` diffusion,
    so the momentum decays by (1 - friction * eps_t) per step (keep friction * eps_t < 1)."""

    step_size: float
    batch_size: int
    friction: float = 10.0
    schedule: Any = None
    temperature: float = 1.0

    def __check_init__(self):
        self._check()
        check_positive("friction", self.friction)

    def _momentum(self, position):
        return jax.tree.map(jnp.zeros_like, position)

    def _move(self, key, state, grad, step_size, num_data):
        position, momentum = diffusions.sghmc(self.friction)(
            key, state.position, state.momentum, grad, step_size
        )
        return state._replace(position=position, momentum=momentum)


class pSGLD(_SGMCMC):  # noqa: N801  (the name of the method in the literature)
    """`bo.pSGLD(step_size, batch_size, decay=0.99, epsilon=1e-5, ...)`: RMSprop-preconditioned
    SGLD (Li et al. 2016)."""

    step_size: float
    batch_size: int
    decay: float = 0.99
    epsilon: float = 1e-5
    schedule: Any = None
    temperature: float = 1.0

    def __check_init__(self):
        self._check()
        check_fraction("decay", self.decay)
        check_positive("epsilon", self.epsilon)

    def _preconditioner(self, position):
        return jax.tree.map(jnp.zeros_like, position)

    def _move(self, key, state, grad, step_size, num_data):
        v = jax.tree.map(
            lambda v, g: self.decay * v + (1 - self.decay) * (g / num_data) ** 2,
            state.preconditioner,
            grad,
        )
        leaves, treedef = jax.tree.flatten(state.position)
        keys = jax.random.split(key, len(leaves))
        noise = jax.tree.unflatten(
            treedef,
            [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)],
        )

        def move(x, g, v, n):
            g_scale = 1.0 / (self.epsilon + jnp.sqrt(v))
            return x + step_size * g_scale * g + jnp.sqrt(2 * step_size * g_scale) * n

        position = jax.tree.map(move, state.position, grad, v, noise)
        return state._replace(position=position, preconditioner=v)
