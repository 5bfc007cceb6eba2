"""`bo.Ensemble.open(path, like)`: an ensemble whose draws stay on disk, read block by block.

A `StoredEnsemble` reads the file of `bo.sample(..., store=path)` (`bayesover.inference._store`),
of `Ensemble.save`, or the `ensemble` group of a `bo.save_datatree` file. Opening reads the
attributes and the sampler statistics (`(chain, draw)` each); the draws are read only when
asked for, as blocks of draws of every chain (`iter_blocks`), each an ordinary in-memory
`bo.Ensemble` of `(num_chains, k)` draws, by HDF5 slicing along `draw` (h5py). A block holds
at most about 64 MB of draws (at least one draw), and at most the store's sampling chunk, so
reading holds no more than the run did.

What works block by block, so that memory holds one block whatever the ensemble's size:

- `predict(x)`: a `StoredPredictive`, the mixture predictive of `bayesover.ensemble._predictive`
  whose sums over members (and running logsumexp) run over the blocks in turn and add up,
  so every output equals in-memory `Ensemble.predict` to float rounding (the members are
  summed in another order). `interval` bisects on the mixture CDF and so reads the file once
  per bisection step (`num_iterations`, default 60).
- `bo.to_datatree(stored, posterior)` (or `stored.to_datatree(posterior)`): one pass over the
  blocks computes the function-space quantities, log-likelihoods and predictive draws, and
  collects the hyperparameters and the weight subsample; the tree holds no `ensemble` group
  (that would be every draw) but the attribute `ensemble_store` (the file) with
  `ensemble_store_selection` (chains and draws), from which `bo.from_datatree` reopens it.
  `bo.diagnose` and `bo.report` read that tree as any other.
- `subset`, `thin`, `healthy` select chains and draws without reading any; `load()` reads the
  selection into a `bo.Ensemble`.

Why by hand: xarray can open the file lazily, but its lazy arrays are read whole on
`.values` and slicing them per block through xarray's indexing adds nothing here; without
dask (not a dependency) there is no chunked map-reduce to hand the predictive to.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, PRNGKeyArray

from bayesover._checks import check_int
from bayesover.ensemble._ensemble import Ensemble, _as_index, _hashable, architecture
from bayesover.ensemble._predictive import Predictive, _draw
from bayesover.model._model import Model

_BLOCK_BYTES = 64 * 2**20  # draws read at once, all chains together
_MEMBER_BYTES = 64 * 2**20  # default member_batch_size of a stored predictive: members at once


class StoredEnsemble:
    """An ensemble on disk (see the module docstring); from `bo.Ensemble.open(path, like)`.

    **Attributes:** `path`, `num_chains`, `num_draws`, `num_members`, `config`, `stats` (every
    statistic, `(num_chains, num_draws)`, in memory), `model`, `target_shape`, `complete`
    (False for the store of a run that has not finished: it shows the draws written so far).
    """

    def __init__(
        self,
        path: Path,
        group: str,
        names: list[str],
        shapes: list[tuple[int, ...]],
        structure: Any,
        model: Model | None,
        config: dict[str, Any],
        target_shape: tuple[int, ...] | None,
        stats: dict[str, Array],
        chains: np.ndarray,
        draws: np.ndarray,
        itemsizes: list[int],
        chunk_size: int | None,
        complete: bool,
    ):
        self.path = path
        self._group = group
        self._names = names
        self._shapes = shapes
        self._structure = structure
        self.model = model
        self.config = {k: _hashable(v) for k, v in sorted(config.items())}  # as Ensemble's
        self.target_shape = target_shape
        self.stats = stats
        self._chains = chains  # file chain of each chain of this ensemble
        self._draws = draws  # file draw of each draw
        self._itemsizes = itemsizes
        self._chunk_size = chunk_size
        self.complete = complete

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, like: Any = None) -> StoredEnsemble:
        """Open `path` (see `bo.Ensemble.open`); reads attributes and statistics only."""
        import h5py

        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"`path` must be a str or os.PathLike, got {type(path).__name__}.")
        path = Path(path)
        source = f"`path` {str(path)!r}"
        if not path.is_file():
            raise FileNotFoundError(f"{source} does not exist or is not a file.")
        try:
            file = h5py.File(path, "r")
        except Exception as error:
            raise ValueError(
                f"{source} is not a readable draw store or ensemble file (not netCDF-4/HDF5: "
                f"{error})."
            ) from None
        with file:
            group = _ensemble_group(file, source)
            root = file[group] if group else file
            attrs = {k: hdf5_attr(v) for k, v in root.attrs.items()}
            try:
                names = json.loads(attrs["param_names"])
                config = json.loads(attrs["config"])
                target_shape = json.loads(attrs["target_shape"])
                variables = [root[f"params__{n}"] for n in names]
                stat_names = sorted(
                    k.removeprefix("stats__") for k in root if k.startswith("stats__")
                )
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(
                    f"{source} is an incomplete or corrupt ensemble file: "
                    f"{type(error).__name__}: {error}"
                ) from None
            if not variables or variables[0].ndim < 2:
                raise ValueError(f"{source} holds no parameters with (chain, draw) axes.")
            is_store = "bayesover_store" in attrs
            num_chains, written = variables[0].shape[:2]
            num_draws = int(attrs["draws_done"]) if is_store else written
            for name, variable in zip(names, variables, strict=True):
                shape = variable.shape
                if len(shape) < 2 or shape[0] != num_chains or shape[1] < num_draws:
                    raise ValueError(
                        f"{source} is corrupt: `params__{name}` has shape {variable.shape}, "
                        f"expected ({num_chains}, {num_draws}, ...)."
                    )
            if num_draws == 0:
                raise ValueError(
                    f"{source} is a draw store that holds no draws yet (its run was stopped "
                    "before the first chunk was written)."
                )
            shapes = [tuple(v.shape[2:]) for v in variables]
            itemsizes = [v.dtype.itemsize for v in variables]
            stats = {
                n: jnp.asarray(_decode(root[f"stats__{n}"], slice(None), slice(0, num_draws)))
                for n in stat_names
            }
            complete = not is_store or bool(attrs.get("complete", 0))
            chunk_size = int(attrs["chunk_size"]) if is_store else None
        model, structure = architecture(
            like, list(zip(names, [tuple(s) for s in shapes], strict=True))
        )
        if not complete:
            warnings.warn(
                f"{source} is the draw store of a run that has not finished (or was stopped): "
                f"it holds {num_draws} of {int(attrs.get('num_draws', num_draws))} draws; "
                "resume the run with the same bo.sample call (and its `checkpoint`).",
                UserWarning,
                stacklevel=3,
            )
        return cls(
            path,
            group,
            names,
            shapes,
            structure,
            model,
            config,
            None if target_shape is None else tuple(target_shape),
            stats,
            np.arange(num_chains),
            np.arange(num_draws),
            itemsizes,
            chunk_size,
            complete,
        )

    # -- sizes ------------------------------------------------------------------------------------
    @property
    def num_chains(self) -> int:
        return len(self._chains)

    @property
    def num_draws(self) -> int:
        return len(self._draws)

    @property
    def num_members(self) -> int:
        return self.num_chains * self.num_draws

    @property
    def draw_bytes(self) -> int:
        """Bytes of one draw of one chain (every parameter)."""
        return sum(
            int(np.prod(s, dtype=np.int64)) * i
            for s, i in zip(self._shapes, self._itemsizes, strict=True)
        )

    def default_draws_per_block(self) -> int:
        """Draws a block holds by default: about 64 MB of every chain's draws, at least one,
        at most the store's sampling chunk."""
        per_draw = max(1, self.draw_bytes * self.num_chains)
        draws = max(1, _BLOCK_BYTES // per_draw)
        if self._chunk_size is not None:
            draws = min(draws, self._chunk_size)
        return int(min(draws, self.num_draws))

    def __repr__(self) -> str:
        state = "" if self.complete else ", incomplete"
        return (
            f"StoredEnsemble({str(self.path)!r}, chains={self.num_chains}, draws={self.num_draws}, "
            f"{self.draw_bytes * self.num_members / 2**20:.1f} MiB of draws on disk{state})"
        )

    def chain_ok(self) -> Array:
        """Per chain: True unless an SG-MCMC iterate turned non-finite and stopped it."""
        stopped = self.stats.get("stopped")
        if stopped is None:
            return jnp.ones((self.num_chains,), bool)
        return ~jnp.any(stopped, axis=1)

    # -- selections (nothing is read) -----------------------------------------------------------
    def subset(self, chains=None, draws=None) -> StoredEnsemble:
        """Some chains and/or draws (indices, slices or boolean masks, as `Ensemble.subset`;
        an int keeps that one chain or draw); reads nothing."""
        chain_pos = np.arange(self.num_chains)
        draw_pos = np.arange(self.num_draws)
        if chains is not None:
            chain_pos = np.atleast_1d(chain_pos[_as_index(chains)])
        if draws is not None:
            draw_pos = np.atleast_1d(draw_pos[_as_index(draws)])
        if chain_pos.size == 0 or draw_pos.size == 0:
            raise ValueError(
                f"the selection keeps no member: {chain_pos.size} chains x {draw_pos.size} draws."
            )
        new = object.__new__(StoredEnsemble)
        new.__dict__.update(self.__dict__)
        new._chains = self._chains[chain_pos]
        new._draws = self._draws[draw_pos]
        new.stats = {k: v[chain_pos][:, draw_pos] for k, v in self.stats.items()}
        return new

    def thin(self, thinning: int) -> StoredEnsemble:
        """Every `thinning`-th draw of each chain (keeping the last one)."""
        thinning = check_int("thinning", thinning, minimum=1)
        start = (self.num_draws - 1) % thinning
        return self.subset(draws=slice(start, None, thinning))

    def healthy(self) -> StoredEnsemble:
        """The chains that did not stop (see `chain_ok`)."""
        ok = np.asarray(self.chain_ok())
        if not ok.any():
            raise ValueError("every chain of this ensemble stopped; no healthy chains remain.")
        return self.subset(chains=np.flatnonzero(ok))

    # -- reading ----------------------------------------------------------------------------------
    @contextmanager
    def _root(self) -> Iterator[Any]:
        import h5py

        with h5py.File(self.path, "r") as file:
            yield file[self._group] if self._group else file

    def _params(self, leaves: list[Any]) -> Any:
        if self._structure is None:
            return dict(zip(self._names, leaves, strict=True))
        return jax.tree.unflatten(self._structure, leaves)

    def _ensemble(self, leaves: list[np.ndarray], draw_pos: np.ndarray) -> Ensemble:
        stats = {k: v[:, draw_pos] for k, v in self.stats.items()}
        params = self._params([jnp.asarray(x) for x in leaves])
        return Ensemble(params, stats, self.config, self.model, self.target_shape)

    def iter_blocks(self, draws_per_block: int | None = None) -> Iterator[tuple[int, Ensemble]]:
        """`(first draw, block)` for consecutive blocks of `draws_per_block` draws (default:
        `default_draws_per_block()`), each block a `bo.Ensemble` of every chain."""
        k = self.default_draws_per_block() if draws_per_block is None else draws_per_block
        k = check_int("draws_per_block", k, minimum=1)
        with self._root() as root:
            variables = [root[f"params__{n}"] for n in self._names]
            for start in range(0, self.num_draws, k):
                draw_pos = np.arange(start, min(start + k, self.num_draws))
                file_draws = self._draws[draw_pos]
                leaves = [_decode(v, self._chains, file_draws) for v in variables]
                block = self._ensemble(leaves, draw_pos)
                del leaves  # the block holds its own copy
                yield start, block
                del block

    def load(self) -> Ensemble:
        """Every draw of this (selection of the) ensemble, in memory."""
        with self._root() as root:
            leaves = [_decode(root[f"params__{n}"], self._chains, self._draws) for n in self._names]
        return self._ensemble(leaves, np.arange(self.num_draws))

    def _members(self, flat: np.ndarray) -> Any:
        """The members at flat positions `flat` (chain-major, as `Ensemble.flat_params`):
        a pytree of arrays `(len(flat), *shape)`."""
        chain_pos, draw_pos = np.divmod(np.asarray(flat), self.num_draws)
        file_chains, file_draws = self._chains[chain_pos], self._draws[draw_pos]
        leaves = []
        with self._root() as root:
            for name, shape in zip(self._names, self._shapes, strict=True):
                variable = root[f"params__{name}"]
                out = np.empty((len(flat), *shape), _dtype(variable))
                for chain in np.unique(file_chains):
                    rows = np.flatnonzero(file_chains == chain)
                    unique, inverse = np.unique(file_draws[rows], return_inverse=True)
                    out[rows] = _decode(variable, np.asarray([chain]), unique)[0][inverse]
                leaves.append(jnp.asarray(out))
        return self._params(leaves)

    # -- what is computed from it ----------------------------------------------------------------
    def predict(
        self,
        x,
        *,
        batch_size: int | None = None,
        member_batch_size: int | None = None,
        mesh: Any = None,
        draws_per_block: int | None = None,
    ) -> StoredPredictive:
        """The mixture predictive at `x`, reduced block by block (module docstring); the
        arguments as `Ensemble.predict`, and `draws_per_block` as `iter_blocks`.
        `member_batch_size` defaults to 256 members or about 64 MB of them, the fewer."""
        return StoredPredictive.build(
            self,
            x,
            batch_size=batch_size,
            member_batch_size=member_batch_size,
            mesh=mesh,
            draws_per_block=draws_per_block,
        )

    def to_datatree(self, posterior, **kwargs):
        """`bo.to_datatree(self, posterior, **kwargs)`, computed block by block."""
        from bayesover.diagnostics._datatree import to_datatree

        return to_datatree(self, posterior, **kwargs)

    def selection(self) -> dict[str, list[int]]:
        """The file's chains and draws this ensemble shows: `{"chains": [...], "draws": [...]}`."""
        return {"chains": self._chains.tolist(), "draws": self._draws.tolist()}


class StoredPredictive(Predictive):
    """`stored.predict(x)`: `bo.Predictive` whose reductions run over blocks of draws read
    from the file; `members` holds only the first member (for shapes)."""

    source: Any = None
    draws_per_block: int = eqx.field(static=True, default=1)

    @classmethod
    def build(  # type: ignore[override]
        cls,
        stored: StoredEnsemble,
        x,
        *,
        batch_size=None,
        member_batch_size=None,
        mesh=None,
        draws_per_block=None,
    ) -> StoredPredictive:
        first = Predictive.build(
            stored.subset(chains=[0], draws=[0]).load(), x, batch_size=batch_size, mesh=mesh
        )  # checks the model, `x`, `batch_size` and `mesh` as Ensemble.predict does
        if member_batch_size is None:
            member_batch_size = int(min(256, max(1, _MEMBER_BYTES // max(1, stored.draw_bytes))))
        check_int("member_batch_size", member_batch_size, minimum=1)
        if draws_per_block is None:
            draws_per_block = stored.default_draws_per_block()
        check_int("draws_per_block", draws_per_block, minimum=1)
        return cls(
            model=first.model,
            members=first.members,
            x=first.x,
            target_shape=first.target_shape,
            batch_size=first.batch_size,
            member_batch_size=member_batch_size,
            points_sharding=first.points_sharding,
            source=stored,
            draws_per_block=draws_per_block,
        )

    @property
    def num_members(self) -> int:
        return self.source.num_members

    def _block(self, members) -> Predictive:
        num = jax.tree.leaves(members)[0].shape[0]
        if self.points_sharding is not None:  # members replicated, as Predictive.build does
            members = jax.device_put(members, self.points_sharding.update(spec=P()))
        return Predictive(
            model=self.model,
            members=members,
            x=self.x,
            target_shape=self.target_shape,
            batch_size=self.batch_size,
            member_batch_size=min(self.member_batch_size, num),
            points_sharding=self.points_sharding,
        )

    def _blocks(self):
        for _, block in self.source.iter_blocks(self.draws_per_block):
            yield self._block(block.flat_params())

    def sample(self, key: PRNGKeyArray, num_samples: int = 1) -> Array:
        """As `Predictive.sample` (the same members and keys), members read from the file."""
        key_member, key_y = jax.random.split(key)
        index = np.asarray(jax.random.randint(key_member, (num_samples,), 0, self.num_members))
        keys = jax.random.split(key_y, num_samples)
        step = max(1, self.draws_per_block * self.source.num_chains)
        outputs = []
        for start in range(0, num_samples, step):
            members = self.source._members(index[start : start + step])
            outputs.append(_draw(self._block(members), members, keys[start : start + step]))
        return jnp.concatenate(outputs)

    def posterior_predictive(self, key: PRNGKeyArray) -> Array:
        """As `Predictive.posterior_predictive` (member i with the same key), block by block."""
        c, d = self.source.num_chains, self.source.num_draws
        keys = jax.random.split(key, c * d)
        output = None
        for start, block in self.source.iter_blocks(self.draws_per_block):
            flat = member_positions(c, d, start, block.num_draws)
            members = block.flat_params()
            values = np.asarray(_draw(self._block(members), members, keys[flat]))
            if output is None:
                output = np.empty((c * d, *values.shape[1:]), values.dtype)
            output[flat] = values
        return jnp.asarray(output)


def member_positions(num_chains: int, num_draws: int, start: int, take: int) -> np.ndarray:
    """Flat (chain-major) member positions of draws `start:start+take` of every chain, in
    the order of that block's `flat_params`."""
    return (np.arange(num_chains)[:, None] * num_draws + start + np.arange(take)).ravel()


# -- HDF5 -----------------------------------------------------------------------------------------
def _ensemble_group(file: Any, source: str) -> str:
    """ "" when the file's root holds the ensemble, "ensemble" for a DataTree file."""
    if "bayesover_ensemble" in file.attrs:
        return ""
    group = file.get("ensemble")
    if group is not None and hasattr(group, "attrs") and "bayesover_ensemble" in group.attrs:
        return "ensemble"
    raise ValueError(
        f"{source} is not a bayesover draw store or ensemble file: it lacks the ensemble "
        "attributes (write one with bo.sample(..., store=path) or Ensemble.save)."
    )


def hdf5_attr(value: Any) -> Any:
    """An HDF5 attribute as Python: bytes to str, NumPy scalars to Python numbers (the store's
    reader here and its writer, `bayesover.inference._store`, share it)."""
    if isinstance(value, np.ndarray) and value.size == 1:  # h5netcdf writes numbers as (1,)
        value = value.reshape(())[()]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _dtype(variable: Any) -> np.dtype:
    return np.dtype(bool) if hdf5_attr(variable.attrs.get("dtype")) == "bool" else variable.dtype


def _selection(index: Any) -> tuple[Any, np.ndarray | None]:
    """An HDF5 selection reading `index` (a slice, or a 1-D int array): a slice when the
    indices are evenly spaced upwards, else the sorted unique indices and the inverse that
    restores the order (h5py's fancy indexing takes increasing indices only)."""
    if isinstance(index, slice):
        return index, None
    index = np.asarray(index)
    if index.size == 1:
        return slice(int(index[0]), int(index[0]) + 1), None
    step = int(index[1] - index[0])
    if step > 0 and np.all(np.diff(index) == step):
        return slice(int(index[0]), int(index[-1]) + 1, step), None
    unique, inverse = np.unique(index, return_inverse=True)
    return unique.tolist(), inverse


def _decode(variable: Any, chains: Any, draws: Any) -> np.ndarray:
    """`variable[chains][:, draws]` (slices or int arrays), read chain by chain by HDF5
    slicing; booleans decoded from xarray's int8 encoding."""
    chain_list = np.arange(variable.shape[0])[chains] if isinstance(chains, slice) else chains
    draw_sel, draw_inverse = _selection(draws)
    unique, chain_inverse = np.unique(np.asarray(chain_list), return_inverse=True)
    first = variable[int(unique[0]), draw_sel]
    out = np.empty((len(unique), *first.shape), first.dtype)
    out[0] = first
    del first
    for i, chain in enumerate(unique[1:], start=1):
        out[i] = variable[int(chain), draw_sel]
    if not np.array_equal(chain_inverse, np.arange(len(unique))):
        out = out[chain_inverse]
    if draw_inverse is not None:
        out = out[:, draw_inverse]
    return out.astype(bool) if _dtype(variable) == np.dtype(bool) else out
