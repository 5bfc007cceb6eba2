"""Chains and data over devices: a 2-D mesh `(chains, data)` and `jax.shard_map` over it.

The chains are split into `chains` blocks (the chains of a block vmapped on one device row);
with `data` > 1 the training set of a network posterior is split into `data` shards as well
(`bayesover.posterior._data_parallel`: log densities and gradients are sums of per-shard terms,
added with `psum`). A device (i, j) runs chain block i on data shard j; the draws are
sharded over `chains` and replicated over `data`. On one device, no `shard_map` (and no `vmap`
for a single chain: BlackJAX's while_loops and conds keep unbatched predicates, which under
vmap become selects that run both branches).

The mesh: `mesh=None` picks chains first (chains = gcd(num_chains, devices), the devices left
over go to the data axis of a network posterior); `mesh=(chains, data)` or a
`jax.sharding.Mesh` with axes `("chains", "data")` chooses the split. Under
`jax.distributed` the devices are those of all processes (`jax.devices()` is global): every
process runs the same program on the same inputs (made alike from the same key), each on its
own devices; draws and states are gathered (`to_host`) on every process, and only process 0
writes checkpoints and prints progress (`is_writer`).

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
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from bayesover.posterior._data_parallel import DATA_AXIS, ShardedPosterior, shard_data
from bayesover.posterior._posterior import Posterior

CHAIN_AXIS = "chains"
AXES = (CHAIN_AXIS, DATA_AXIS)


def make_mesh(chains: int, data: int) -> Mesh:
    """A `(chains, data)` mesh over the first `chains * data` devices.

    Auto axis types: `jax.make_mesh` defaults to Explicit axes, under which shard_map refuses
    replicated inputs.
    """
    devices = np.asarray(jax.devices()[: chains * data]).reshape(chains, data)
    return Mesh(devices, AXES, axis_types=(jax.sharding.AxisType.Auto,) * 2)


def choose_mesh(mesh: Any, num_chains: int, posterior: Any) -> Mesh:
    """The mesh `bo.sample` runs on (module docstring); checks the user's choice."""
    num_devices = len(jax.devices())
    network = isinstance(posterior, Posterior)
    if mesh is None:
        chains = math.gcd(num_chains, num_devices)
        data = num_devices // chains if network else 1
        if network:
            data = min(data, posterior.num_data)
        return make_mesh(chains, data)
    if isinstance(mesh, Mesh):
        if tuple(mesh.axis_names) != AXES:
            raise ValueError(
                f"`mesh` must have the axes {AXES}, got {tuple(mesh.axis_names)}; or pass a "
                "tuple (chains, data)."
            )
        chains, data = mesh.shape[CHAIN_AXIS], mesh.shape[DATA_AXIS]
    elif (
        isinstance(mesh, tuple)
        and len(mesh) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in mesh)
    ):
        chains, data = mesh
        if chains < 1 or data < 1:
            raise ValueError(f"`mesh` (chains, data) must be positive ints, got {mesh!r}.")
    else:
        raise TypeError(
            "`mesh` must be None, a tuple (chains, data) of positive ints or a "
            f"jax.sharding.Mesh with axes {AXES}, got {mesh!r}."
        )
    if num_chains % chains:
        raise ValueError(f"`mesh`: {chains} chain blocks do not divide num_chains={num_chains}.")
    if data > 1 and not network:
        raise ValueError(
            f"`mesh`: a data axis of {data} needs a network bo.Posterior (its data are split); "
            "NumPyro posteriors take (chains, 1)."
        )
    if data > 1 and data > posterior.num_data:
        raise ValueError(f"`mesh`: {data} data shards exceed the N={posterior.num_data} points.")
    if isinstance(mesh, Mesh):
        return Mesh(mesh.devices, AXES, axis_types=(jax.sharding.AxisType.Auto,) * 2)
    if chains * data > num_devices:
        raise ValueError(
            f"`mesh` ({chains}, {data}) needs {chains * data} devices; {num_devices} are visible."
        )
    return make_mesh(chains, data)


def mesh_shape(mesh: Mesh) -> dict[str, int]:
    """`{"chains": c, "data": d}`, as recorded in the ensemble's config."""
    return {axis: int(mesh.shape[axis]) for axis in AXES}


def is_writer() -> bool:
    """True in the process that writes files and prints progress: process 0 (under
    `jax.distributed`; the only process otherwise)."""
    return jax.process_index() == 0


def to_host(tree: Any) -> Any:
    """NumPy copies of the arrays of `tree`. Under `jax.distributed` an array that spans other
    processes' devices is gathered first (`process_allgather`, a collective: every process
    must call this at the same point)."""

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(fetch, tree)


def put_on_chains(tree: Any, mesh: Mesh) -> Any:
    """`tree` (leading chain axis) placed sharded over the chains, replicated over the data.

    Under `jax.distributed` every process passes the same values (each keeps its own shards)."""
    return jax.device_put(tree, NamedSharding(mesh, P(CHAIN_AXIS)))


def over_chains(
    fn: Callable[..., Any], posterior: Any, mesh: Mesh, shared: Any, *mapped: Any
) -> Any:
    """vmap `fn(posterior, shared, *one_chain)` over chains; shard_map it over `mesh`.

    The posterior's arrays (data) enter as an argument, not as a closure, so that shard_map
    sees every input explicitly: replicated, except the data of a data-parallel posterior,
    which are split over the `data` axis.
    """
    num_shards = mesh.shape[DATA_AXIS]
    if num_shards > 1:
        posterior = shard_data(posterior, num_shards)
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

    if mesh.size == 1:
        return vectorised(arrays, shared, *mapped)
    specs = (_posterior_specs(arrays), P()) + (P(CHAIN_AXIS),) * len(mapped)
    return jax.shard_map(
        vectorised, mesh=mesh, in_specs=specs, out_specs=P(CHAIN_AXIS), check_vma=False
    )(arrays, shared, *mapped)


def _posterior_specs(arrays: Any) -> Any:
    """Partition specs of the posterior's arrays: the shards' data and mask over `data`."""
    specs = jax.tree.map(lambda _: P(), arrays)
    if not isinstance(arrays, ShardedPosterior):
        return specs
    split = lambda tree: jax.tree.map(lambda _: P(DATA_AXIS), tree)  # noqa: E731
    return eqx.tree_at(
        lambda p: (p.data, p.mask), specs, replace=(split(arrays.data), P(DATA_AXIS))
    )
