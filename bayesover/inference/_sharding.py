"""Chains over devices: one block of chains per device, the chains of a block vmapped.

With several visible devices the chains are split over the largest device count that divides
`num_chains`, with `jax.shard_map` over a one-axis mesh named `chains`; the posterior's arrays
(data) enter replicated. On one device, or for one chain per device, no `shard_map` (and no
`vmap` for a single chain: BlackJAX's while_loops and conds keep unbatched predicates, which
under vmap become selects that run both branches).

Why `shard_map` and not `jit` with shardings: measured 3.3x faster than `jit(vmap)` with one
chain per (forced host) device on 2 cores (see DESIGN.md); BlackJAX NUTS needs
`check_vma=False` there (its termination `cond` fails the check).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def num_devices_for(num_chains: int) -> int:
    """The number of devices the chains run on: gcd(num_chains, visible devices)."""
    return math.gcd(num_chains, len(jax.devices()))


def chain_mesh(num_devices: int) -> jax.sharding.Mesh:
    """A one-axis mesh (`chains`) over the first `num_devices` devices.

    Auto axis type: `jax.make_mesh` defaults to Explicit axes, under which shard_map refuses
    replicated inputs.
    """
    return jax.make_mesh(
        (num_devices,),
        ("chains",),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=jax.devices()[:num_devices],
    )


def put_on_chains(tree: Any, num_devices: int) -> Any:
    """`tree` (leading chain axis) placed sharded over the chain mesh."""
    return jax.device_put(tree, NamedSharding(chain_mesh(num_devices), P("chains")))


def over_chains(
    fn: Callable[..., Any], posterior: Any, num_devices: int, shared: Any, *mapped: Any
) -> Any:
    """vmap `fn(posterior, shared, *one_chain)` over chains; shard_map it over devices.

    The posterior's arrays (data) enter as a replicated argument, not as a closure, so that
    shard_map sees every input explicitly.
    """
    arrays, static = eqx.partition(posterior, eqx.is_array)

    def body(arrays, shared, *one_chain):
        return fn(eqx.combine(arrays, static), shared, *one_chain)

    batched = jax.vmap(body, in_axes=(None, None) + (0,) * len(mapped))

    def vectorised(arrays, shared, *chains):
        # One chain on this device: no vmap, so that BlackJAX's while_loops and conds keep
        # unbatched predicates (under vmap they become selects that run both branches).
        if jax.tree.leaves(chains)[0].shape[0] == 1:
            one = [jax.tree.map(lambda v: v[0], c) for c in chains]
            return jax.tree.map(lambda v: v[None], body(arrays, shared, *one))
        return batched(arrays, shared, *chains)

    if num_devices == 1:
        return vectorised(arrays, shared, *mapped)
    specs = (P(), P()) + (P("chains"),) * len(mapped)
    return jax.shard_map(
        vectorised,
        mesh=chain_mesh(num_devices),
        in_specs=specs,
        out_specs=P("chains"),
        check_vma=False,
    )(arrays, shared, *mapped)
