"""Ensemble: posterior draws as one stacked pytree with leading `(chain, draw)` axes.

`params` holds the draws on their natural (constrained) scales: for a network posterior the
dict `{"net", "prior", "likelihood"}` of `Model.constrain`, for a NumPyro posterior the named
sites (deterministic sites included). `stats` holds the sampler statistics per draw, named as
ArviZ names them. The configuration and key that made the draws travel with them.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree


class Ensemble(eqx.Module):
    """`bo.Ensemble(params, stats, config)`.

    **Fields:**

    - `params`: pytree of draws, every leaf shaped `(num_chains, num_draws, *shape)`.
    - `stats`: dict of per-draw sampler statistics, each `(num_chains, num_draws)`.
    - `config`: provenance (sampler, numbers of warm-up steps and draws, thinning, key, ...).
    """

    params: PyTree
    stats: dict[str, Array]
    provenance: tuple[tuple[str, Any], ...] = eqx.field(static=True)

    def __init__(self, params: PyTree, stats: dict[str, Array], config: dict[str, Any]):
        self.params = params
        self.stats = dict(stats)
        self.provenance = tuple(sorted(config.items()))

    def __check_init__(self):
        leaves = jax.tree.leaves(self.params)
        if not leaves:
            raise ValueError("an Ensemble needs at least one parameter array; `params` is empty.")
        shape = leaves[0].shape[:2]
        if len(shape) != 2 or any(x.shape[:2] != shape for x in leaves):
            raise ValueError(
                "every leaf of `params` must share leading (chain, draw) axes; got shapes "
                f"{[x.shape for x in leaves]}."
            )

    @property
    def config(self) -> dict[str, Any]:
        """Provenance as a dict: sampler, counts, key, devices, initialisation."""
        return dict(self.provenance)

    @property
    def num_chains(self) -> int:
        return jax.tree.leaves(self.params)[0].shape[0]

    @property
    def num_draws(self) -> int:
        return jax.tree.leaves(self.params)[0].shape[1]

    @property
    def num_members(self) -> int:
        return self.num_chains * self.num_draws

    def flat_params(self) -> PyTree:
        """Draws with `(chain, draw)` merged into one leading member axis."""
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), self.params)

    def chain_ok(self) -> Array:
        """Per chain: True unless an SG-MCMC iterate turned non-finite and stopped it."""
        stopped = self.stats.get("stopped")
        if stopped is None:
            return jnp.ones((self.num_chains,), bool)
        return ~jnp.any(stopped, axis=1)
