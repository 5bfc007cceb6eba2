"""The checkpoint file of `bo.sample`: sampler states and the draws so far, in one `.npz`.

Layout (format version 1): `format` ("bayesover-checkpoint"), `version` (1), `fingerprint`
(the run's arguments, `bayesover.inference._fingerprint`), `draws_done`, the flattened sampler state
leaves `state_<i>` and, once draws exist, the flattened draw and statistic leaves `draws_<i>`
(chain axis first, draws along axis 1). Leaves are rebuilt on the pytree structure of the
resumed run, which the fingerprint guarantees to be the structure of the run that wrote them.
A run with `store=` keeps its draws in the draw store (`bayesover.inference._store`): its
checkpoints hold no `draws_<i>`.

A checkpoint is written whole or not at all (`bayesover._atomic`; the temporary file is
`PATH.tmp`, so a run killed while writing leaves one stale temporary file, replaced by the next
write). Loading never modifies the file: a file that is not a checkpoint, is truncated, has
another format version or belongs to other arguments is refused with a ValueError.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayesover._atomic import atomic_path
from bayesover._trees import concatenate

FORMAT = "bayesover-checkpoint"
VERSION = 1


class Checkpoint:
    """A loaded checkpoint: flat leaves, rebuilt on the structure of the resumed run."""

    def __init__(self, arrays: dict[str, np.ndarray], path: Path | None = None):
        self.arrays = arrays
        self.path = path
        self.draws_done = int(arrays["draws_done"])
        self.has_draws = "draws_0" in arrays  # False for a run that streams to a store

    def states(self, template: Any) -> Any:
        return self._rebuild("state", template, jnp.asarray)

    def draws(self, template: Any) -> Any:
        if not self.has_draws:
            raise ValueError(
                f"`checkpoint` {str(self.path)!r} holds {self.draws_done} draws in a draw store "
                "(it was written by a run with `store=`); resume it with the same `store`, or "
                "remove it to start afresh."
            )
        return self._rebuild("draws", template, np.asarray)

    def _rebuild(self, prefix: str, template: Any, as_array: Any) -> Any:
        treedef = jax.tree.structure(template)
        count = len(jax.tree.leaves(template))
        return jax.tree.unflatten(
            treedef, [as_array(self.arrays[f"{prefix}_{i}"]) for i in range(count)]
        )


def temporary_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def save(path: str | os.PathLike, fingerprint: str, states: Any, draws_done: int, chunks: list):
    """Write states and the draws of `chunks` (each a pytree, draws on axis 1) atomically."""
    arrays: dict[str, Any] = {
        "format": np.asarray(FORMAT),
        "version": np.asarray(VERSION),
        "fingerprint": np.asarray(fingerprint),
        "draws_done": np.asarray(draws_done),
    }
    for i, leaf in enumerate(jax.tree.leaves(states)):
        arrays[f"state_{i}"] = np.asarray(leaf)
    if chunks:
        merged = concatenate(chunks, axis=1, xp=np)
        for i, leaf in enumerate(jax.tree.leaves(merged)):
            arrays[f"draws_{i}"] = np.asarray(leaf)
    with atomic_path(path, temporary=temporary_path(path)) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()


def load(path: str | os.PathLike, fingerprint: str) -> Checkpoint | None:
    """The checkpoint at `path` if it exists and belongs to `fingerprint`, else an error."""
    path = Path(path)
    if not path.exists():
        return None
    where = f"`checkpoint` {str(path)!r}"
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as error:
        raise ValueError(
            f"{where} is not a readable checkpoint (truncated or not an .npz file: {error}); "
            "it was left untouched: remove it or pass another path."
        ) from None
    if str(arrays.get("format", "")) != FORMAT or "version" not in arrays:
        raise ValueError(
            f"{where} is not a readable checkpoint: an .npz file without the bayesover "
            "checkpoint header; it was left untouched: remove it or pass another path."
        )
    version = int(arrays["version"])
    if version != VERSION:
        raise ValueError(
            f"{where} has checkpoint format version {version}; this bayesover reads version "
            f"{VERSION}. It was left untouched: resume it with the bayesover that wrote it, or "
            "remove it to start afresh."
        )
    if str(arrays.get("fingerprint")) != fingerprint:
        raise ValueError(
            f"{where} was written by a run with other arguments; remove it or pass another path."
        )
    missing = [k for k in ("draws_done", "state_0") if k not in arrays]
    if missing:
        raise ValueError(f"{where} is not a readable checkpoint: it lacks {missing}.")
    return Checkpoint(arrays, path)
