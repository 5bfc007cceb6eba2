"""Where the chains of `bo.sample` start, and the check that they can start there.

`init` is one of

- `"prior"`: one prior draw per chain (`posterior.initial_position(key)`, vmapped for a
  network posterior; NumPyro's initialisation is not traceable and runs per chain);
- `"map"`: from each chain's prior draw, `map_steps` Adam steps (`bo.map_estimate`, vmapped),
  then `init_jitter` times standard normal noise on every coordinate: theta_0 = theta_MAP + s xi;
- a position pytree with the posterior's structure, either one position (the same for all
  chains) or stacked with a leading `num_chains` axis.

Every start must have a finite log density: otherwise a ValueError names the chains and the
parameter leaves whose values (or, when the values are finite, gradients) are not finite.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jaxtyping import Array, PRNGKeyArray

from bayesover._checks import check_int
from bayesover._trees import broadcast_leading, leaf_paths, stack
from bayesover.inference._optimize import map_estimate
from bayesover.inference._sharding import make_mesh, over_chains
from bayesover.posterior._posterior import AbstractPosterior, Posterior


def initial_positions(
    posterior: AbstractPosterior,
    init: Any,
    keys: PRNGKeyArray,
    jitter: float,
    map_steps: int,
    mesh: Mesh | None = None,
) -> Any:
    """The starts of the chains (leading chain axis), one `keys[c]` per chain; the MAP
    optimisations of `init="map"` run on `mesh` (data-parallel when it has a data axis)."""
    num_chains = keys.shape[0]
    if isinstance(init, str):
        if init not in ("prior", "map"):
            raise ValueError(f"`init` must be 'prior', 'map' or a position pytree, got {init!r}.")
        if isinstance(posterior, Posterior):
            positions = _prior_positions(posterior, keys)
        else:
            positions = stack([posterior.initial_position(k) for k in keys])
        if init == "prior":
            return positions
        check_int("map_steps", map_steps, minimum=1)
        mesh = make_mesh(1, 1) if mesh is None else mesh
        return _jittered_modes(posterior, keys, positions, jitter, map_steps, mesh)
    template = jax.tree.structure(posterior.initial_position())
    if jax.tree.structure(init) != template:  # type: ignore[operator]  # PyTreeDef stub
        raise ValueError(
            "`init` as a pytree must have the structure of the posterior's positions "
            f"(posterior.initial_position()): expected {template}, got {jax.tree.structure(init)}."
        )
    reference = jax.tree.leaves(posterior.initial_position())
    leaves = jax.tree.leaves(init)
    if all(jnp.shape(x) == jnp.shape(r) for x, r in zip(leaves, reference, strict=True)):
        return broadcast_leading(init, num_chains)
    if all(
        jnp.shape(x) == (num_chains, *jnp.shape(r)) for x, r in zip(leaves, reference, strict=True)
    ):
        return init
    raise ValueError(
        "`init` leaves must have the shapes of one position, or a leading num_chains "
        f"({num_chains}) axis."
    )


def check_initial_positions(posterior: AbstractPosterior, positions: Any) -> None:
    """A ValueError unless every chain's start has a finite log density (see the module)."""
    values, grads = _values_and_grads(posterior, positions)
    bad = np.flatnonzero(~np.isfinite(np.asarray(values)))
    if bad.size == 0:
        return
    chain = int(bad[0])
    position = jax.tree.map(lambda x: x[chain], positions)
    offending = [name for name, x in leaf_paths(position) if not _finite(x)]
    reason = "non-finite values"
    if not offending:
        grad = jax.tree.map(lambda x: x[chain], grads)
        offending = [name for name, g in leaf_paths(grad) if not _finite(g)]
        reason = "a non-finite gradient"
    raise ValueError(
        f"the initial point of chain(s) {bad.tolist()} has log density "
        f"{float(values[chain])}; parameter leaves with {reason}: "
        f"{offending or 'none (the density itself is -inf there)'}."
    )


def _finite(x: Array) -> bool:
    return bool(jnp.all(jnp.isfinite(x)))


# -- the compiled programs: module-level, so that calls with the same shapes reuse them ----------


@eqx.filter_jit
def _jittered_modes(posterior, keys, starts, jitter, map_steps, mesh):
    """One optax MAP point per chain (vmapped, over the mesh), plus `jitter` standard normals."""

    def find_mode(posterior, _, key, start):
        result = map_estimate(posterior, key=key, num_steps=map_steps, init=start)
        leaves, treedef = jax.tree.flatten(result.position)
        noise = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
        return jax.tree.unflatten(
            treedef,
            [
                x + jitter * jax.random.normal(k, x.shape, x.dtype)
                for x, k in zip(leaves, noise, strict=True)
            ],
        )

    return over_chains(find_mode, posterior, mesh, (), keys, starts)


@eqx.filter_jit
def _prior_positions(posterior, keys):
    return jax.vmap(posterior.initial_position)(keys)


@eqx.filter_jit
def _values_and_grads(posterior, positions):
    return jax.vmap(jax.value_and_grad(posterior.logdensity))(positions)
