"""Data parallelism: a network posterior whose training set is split over a mesh axis.

Inside `jax.shard_map` over a mesh with an axis `data` of D devices, device d holds the
points d*M, ..., (d+1)*M - 1 of the training set padded to D*M = D*ceil(N/D) points (a mask
m_i = 0 marks the padding), and

    log p(theta | D) = log p(theta) + (1/T) sum_d  sum_{i in shard d} m_i log p(y_i | x_i, theta),

the inner sum computed on each device and the outer one by `psum`: every device ends with the
same value, and the same gradient. A minibatch B of global indices (the same on every data
device: they come from the chain's key) is gathered from the shards (each device contributes
its rows, `psum` adds them) and then split again: device d evaluates the slice d of B, so a
minibatch gradient also costs 1/D of the one-device work:

    log p(theta) + (1/T) (N/b) sum_d sum_{i in slice d of B} log p(y_i | x_i, theta).

The sums are the one-device sums in another order: SG-MCMC draws agree with one device to float
rounding, HMC/NUTS draws in distribution.

Why two custom VJPs (`_sum_over_shards`, `_shared`) and not `jax.grad` through `psum`:
`bo.sample` runs `shard_map` with `check_vma=False` (BlackJAX NUTS's termination `cond` fails
the varying-manual-axes check), and there JAX cannot tell a replicated parameter from a
per-device one: the gradient of `psum(local(theta))` came out wrong (measured on 4 forced host
devices: 56 instead of 280). The data term is therefore written as
`sum_over_shards(local(shared(theta)))`: `sum_over_shards` is `psum` forward and the identity
backward (each device's cotangent of its local term is the global one), `shared` is the
identity forward and `psum` of the cotangents backward (the parameter's gradient is the sum of
its per-shard gradients). The prior term uses theta directly, so its gradient is not summed.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from bayesover.data._container import Data
from bayesover.model._model import Position, check_position
from bayesover.posterior._posterior import Posterior

DATA_AXIS = "data"


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _sum_over_shards(axis_name: str, x):
    """`psum` over `axis_name`; backward: the identity."""
    return jax.lax.psum(x, axis_name)


def _sum_fwd(axis_name, x):
    return jax.lax.psum(x, axis_name), None


def _sum_bwd(axis_name, _, cotangent):
    return (cotangent,)


_sum_over_shards.defvjp(_sum_fwd, _sum_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _shared(axis_name: str, tree):
    """The identity on a value held alike by every device; backward: `psum` of cotangents."""
    return tree


def _shared_fwd(axis_name, tree):
    return tree, None


def _shared_bwd(axis_name, _, cotangents):
    return (jax.lax.psum(cotangents, axis_name),)


_shared.defvjp(_shared_fwd, _shared_bwd)


def _pad(tree, size: int):
    """Every leaf padded along its leading axis to `size` rows (copies of row 0)."""

    def pad(x):
        extra = size - x.shape[0]
        if extra == 0:
            return x
        return jnp.concatenate([x, jnp.broadcast_to(x[:1], (extra, *x.shape[1:]))])

    return jax.tree.map(pad, tree)


class ShardedPosterior(Posterior):
    """A `bo.Posterior` whose data are split over the mesh axis `data` (module docstring).

    Built by `shard_data` and used only inside the `shard_map` of `bo.sample` (and of the
    data-parallel MAP and predictive), where `data` and `mask` are this device's shard;
    `num_data` is the global N.
    """

    mask: Array
    num_shards: int = eqx.field(static=True)
    global_num_data: int = eqx.field(static=True)

    def __init__(self, posterior: Posterior, num_shards: int):
        n = posterior.num_data
        padded = num_shards * math.ceil(n / num_shards)
        self.model = posterior.model
        self.temperature = posterior.temperature
        self.data = _pad(posterior.data, padded)
        self.mask = jnp.arange(padded) < n
        self.num_shards = num_shards
        self.global_num_data = n

    @property
    def num_data(self) -> int:
        return self.global_num_data

    def _sum(self, position: Position, data: Data, mask: Array) -> Float[Array, ""]:
        """sum over all shards of the masked log likelihoods (a gradient-correct `psum`)."""
        local = self.pointwise_loglikelihood(_shared(DATA_AXIS, position), data)
        return _sum_over_shards(DATA_AXIS, jnp.sum(jnp.where(mask, local, 0.0)))

    def logdensity(self, position: Position) -> Float[Array, ""]:
        check_position(position, "Posterior.logdensity")
        loglik = self._sum(position, self.data, self.mask)
        return self.model.log_prior(position) + loglik / self.temperature

    def minibatch(self, indices: Array) -> Data:
        """The points at the global `indices`, gathered from the shards onto every device."""
        per_shard = self.mask.shape[0]
        local = indices - jax.lax.axis_index(DATA_AXIS) * per_shard
        here = (local >= 0) & (local < per_shard)
        rows = self.data.take(jnp.clip(local, 0, per_shard - 1))

        def gather(x):
            inside = here.reshape(here.shape + (1,) * (x.ndim - here.ndim))
            return jax.lax.psum(jnp.where(inside, x, jnp.zeros_like(x)), DATA_AXIS)

        return jax.tree.map(gather, rows)

    def logdensity_estimate(self, position: Position, batch: Data) -> Float[Array, ""]:
        """log p(theta) + (1/T) (N/b) sum_{i in B} log p(y_i | x_i); device d sums slice d of B."""
        check_position(position, "Posterior.logdensity_estimate")
        size = batch.inputs.shape[0]
        per_shard = math.ceil(size / self.num_shards)
        start = jax.lax.axis_index(DATA_AXIS) * per_shard

        def mine(x):
            return jax.lax.dynamic_slice_in_dim(
                _pad(x, per_shard * self.num_shards), start, per_shard
            )

        mask = jax.lax.dynamic_slice_in_dim(
            jnp.arange(per_shard * self.num_shards) < size, start, per_shard
        )
        loglik = self._sum(position, jax.tree.map(mine, batch), mask)
        return self.model.log_prior(position) + (self.num_data / size) * loglik / self.temperature


def shard_data(posterior: Posterior, num_shards: int) -> ShardedPosterior:
    """`posterior` with its data padded to `num_shards` equal shards (module docstring)."""
    return ShardedPosterior(posterior, num_shards)
