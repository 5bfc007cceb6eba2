"""MAP estimation with optax: the mode of the (unconstrained) log posterior.

    theta_MAP = argmax_u  log p(u) + (1/T) sum_i log p(y_i | x_i, u)

found by an optax optimiser on minus the log density (full batch), or on minus its unbiased
minibatch estimate (epoch-wise batches without replacement). The loop is a `jax.lax.scan`,
so one call is one compiled program; `vmap` it over keys for many restarts.

For a box (`bo.priors.Uniform`) the mode is taken in the unconstrained coordinates, which
includes the log-Jacobian of the sigmoid map; with a wide box that is a weak pull to the centre.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from bayesover._checks import check_int, check_int_between
from bayesover.data._container import _batch_indices
from bayesover.posterior._posterior import AbstractPosterior, Posterior


class MAPResult(NamedTuple):
    """**Fields:** `position` (the optimum, unconstrained) and `trace`, the objective's log
    density (or its minibatch estimate) at every step, shape `(num_steps,)`."""

    position: Any
    trace: Float[Array, " num_steps"]


def map_estimate(
    posterior: AbstractPosterior,
    *,
    key: PRNGKeyArray,
    optimizer: optax.GradientTransformation | None = None,
    num_steps: int = 1000,
    batch_size: int | None = None,
    init: Any = None,
) -> MAPResult:
    """Maximise the log posterior with optax.

    **Arguments:**

    - `posterior`: any bayesover posterior.
    - `key`: drives the minibatch order (and nothing else when `init` is given).
    - `optimizer`: an optax transformation (default `optax.adam(1e-2)`).
    - `num_steps`: optimiser steps, > 0.
    - `batch_size`: minibatch size (network posteriors only); `None` means full batch.
    - `init`: starting position; default: the posterior's `initial_position()`.

    **Returns:** a `MAPResult`.
    """
    check_int("num_steps", num_steps, minimum=1)
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    position = posterior.initial_position() if init is None else init
    if batch_size is not None:
        if not isinstance(posterior, Posterior):
            raise TypeError("`batch_size` needs a network bo.Posterior (it has data to batch).")
        check_int_between("batch_size", batch_size, 1, posterior.num_data, high_name="N")
    return _map_loop(posterior, key, optimizer, num_steps, batch_size, position)


def _map_loop(posterior, key, optimizer, num_steps, batch_size, position) -> MAPResult:
    if batch_size is None:
        indices = jnp.zeros((num_steps, 0), jnp.int32)
    else:
        assert isinstance(posterior, Posterior)
        per_epoch = posterior.num_data // batch_size
        num_epochs = -(-num_steps // per_epoch)
        keys = jax.random.split(key, num_epochs)
        # from the global N, so that a data-parallel posterior batches as one device does
        epochs = jax.vmap(lambda k: _batch_indices(k, posterior.num_data, batch_size))(keys)
        indices = epochs.reshape(-1, batch_size)[:num_steps]
    final, trace = _optimise(posterior, optimizer, position, indices)
    return MAPResult(final, trace)


@eqx.filter_jit
def _optimise(posterior, optimizer, position, indices):
    """The optimiser loop; module-level so that calls with the same shapes reuse its compile."""

    def objective(position, batch_indices):
        if batch_indices.shape[0] == 0:
            return -posterior.logdensity(position)
        return -posterior.logdensity_estimate(position, posterior.minibatch(batch_indices))

    def step(carry, batch_indices):
        position, opt_state = carry
        loss, grads = jax.value_and_grad(objective)(position, batch_indices)
        updates, opt_state = optimizer.update(grads, opt_state, position)
        position = optax.apply_updates(position, updates)
        return (position, opt_state), -loss

    (position, _), trace = jax.lax.scan(step, (position, optimizer.init(position)), indices)
    return position, trace


def minimise(loss, start, optimizer: optax.GradientTransformation, num_steps: int):
    """`num_steps` steps of `optimizer` on a full-batch `loss(x)`, as one `jax.lax.scan`.

    Call it inside a jitted function (the lens estimators do). Returns `(x, losses)`, the
    losses taken before each step."""

    def step(carry, _):
        x, opt_state = carry
        value, grads = jax.value_and_grad(loss)(x)
        updates, opt_state = optimizer.update(grads, opt_state, x)
        return (optax.apply_updates(x, updates), opt_state), value

    (x, _), losses = jax.lax.scan(step, (start, optimizer.init(start)), None, length=num_steps)
    return x, losses
