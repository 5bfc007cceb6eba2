"""Pytree helpers shared by the model, the samplers, the ensemble and the diagnostics.

Leaf names. A leaf is named by its key path, in one of two spellings:

- `leaf_path(path)`: the Python expression that reaches the leaf, `jax.tree_util.keystr`
  without a leading dot: `layers[0].weight` for a module, `['net'].layers[0].weight` for a
  dict of modules. Used in messages and by priors (`LeafInfo.path`).
- `dotted_name(path)`: the keys joined by dots, `net.layers.0.weight`, a name that netCDF and
  xarray accept as a variable name. Used in files (`Ensemble.save`, DataTrees).

Why by hand: JAX gives the key paths (`tree_flatten_with_path`) and their spellings
(`keystr`), not the pairing of names with leaves that every caller here wants.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree


def leaf_path(path: Sequence[Any]) -> str:
    """`keystr(path)` without its leading dot: `layers[0].weight`, `['net'].bias`."""
    return jax.tree_util.keystr(tuple(path)).removeprefix(".")


def dotted_name(path: Sequence[Any]) -> str:
    """The keys of `path` joined by dots: `net.layers.0.weight`."""
    return jax.tree_util.keystr(tuple(path), simple=True, separator=".")


def leaf_paths(tree: PyTree) -> list[tuple[str, Any]]:
    """`(leaf_path, leaf)` for every leaf of `tree`, in `jax.tree.leaves` order."""
    with_paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(leaf_path(path), leaf) for path, leaf in with_paths]


def named_leaves(tree: PyTree) -> list[tuple[str, Any]]:
    """`(dotted_name, leaf)` for every leaf of `tree`, in `jax.tree.leaves` order."""
    with_paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(dotted_name(path), leaf) for path, leaf in with_paths]


def all_finite(tree: PyTree) -> Array:
    """A scalar bool: True when every element of every leaf is finite (traceable)."""
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def stack(trees: Sequence[PyTree], xp: Any = jnp) -> PyTree:
    """Trees of one structure stacked leaf by leaf along a new leading axis (`xp.stack`)."""
    return jax.tree.map(lambda *xs: xp.stack(xs), *trees)


def concatenate(trees: Sequence[PyTree], axis: int, xp: Any = jnp) -> PyTree:
    """Trees of one structure joined leaf by leaf along `axis` (`xp.concatenate`)."""
    return jax.tree.map(lambda *xs: xp.concatenate(xs, axis=axis), *trees)


def broadcast_leading(tree: PyTree, size: int) -> PyTree:
    """Every leaf broadcast to a new leading axis of `size` (one value for all chains)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (size, *jnp.shape(x))), tree)
