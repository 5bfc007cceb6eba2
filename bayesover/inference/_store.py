"""The draw store of `bo.sample(..., store=PATH)`: every chunk of draws written as it is made.

Format: one netCDF-4 (HDF5) file written with h5netcdf, holding exactly the variables and
attributes of `bo.Ensemble.to_dataset` (`params__NAME`, `stats__NAME`, dims `(chain, draw,
NAME_dim_i)`; attributes `bayesover_ensemble`, `config`, `target_shape`, `param_names`), so a
finished store is an ordinary ensemble file: `bo.Ensemble.load(path, like)` and
`xarray.open_dataset(path, engine="h5netcdf")` read it, and `bo.Ensemble.open(path, like)`
reads it lazily (`bayesover.ensemble._stored`). `draw` is an unlimited netCDF dimension (HDF5
datasets with `maxshape` None along it, chunked `(1, k, *shape)` with about 4 MB a chunk),
grown by one sampling chunk at a time. The store adds the attributes `bayesover_store`
(format version, 1), `draws_done` (draws written, updated after each chunk), `num_draws`
(draws the run will write), `chunk_size` (draws a sampling chunk), `complete` (0 while the run
goes on, 1 once `finish` wrote the run's configuration) and `fingerprint` (the run's
arguments, so that a resumed run continues only its own store).

Why netCDF through h5netcdf and not zarr: h5py and h5netcdf are dependencies already (zarr and
dask are not, and adding dependencies is not wanted); the file is the one format
`Ensemble.save`/`load` and `save_datatree` already speak; h5netcdf writes the netCDF dimension
scales itself (with unlimited dimensions that it can resize, and shrink on resume), which raw
h5py leaves to the caller; and HDF5 reads any slab of draws without touching the others, which
is all the lazy ensemble needs. Zarr's one advantage here, a directory of independent chunk
files that a killed writer cannot corrupt, is bought below by closing the file between chunks.

Crash safety. The file is opened for each chunk and closed after it, so between chunks (where
a run spends nearly all its time, computing) the file on disk is a consistent HDF5 file. The
order is grow `draw`, write the chunk, set `draws_done`, close: draws beyond `draws_done` are
never trusted (the lazy ensemble shows `draws_done` draws, and a resumed run cuts the rest
off). A kill DURING a write (milliseconds per chunk) can leave the HDF5 metadata inconsistent;
HDF5's SWMR mode would close that window but forbids changing attributes (`draws_done`) while
writing. A failed write (disk full) is an OSError naming the store; the store then still
holds the draws of the last complete chunk. Unlike the other files bayesover writes, the store
is not written atomically: streaming is its point.

Under `jax.distributed` every process gathers each chunk (as without a store) and process 0
alone writes; at the end every process opens the finished store, which therefore has to be on
a file system that all processes see (as a checkpoint that is to be resumed has to be).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bayesover._atomic import check_writable_directory
from bayesover._trees import named_leaves
from bayesover.ensemble._stored import hdf5_attr
from bayesover.inference._sharding import is_writer

VERSION = 1
_CHUNK_BYTES = 4 * 2**20  # HDF5 chunk size aimed at: a few MB reads and writes efficiently


def store_attrs(path: str | os.PathLike) -> dict[str, Any] | None:
    """The attributes of the store at `path`, or None when it is not a readable bayesover
    store (missing, not HDF5, or an HDF5 file without the `bayesover_store` attribute)."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            attrs = {k: hdf5_attr(v) for k, v in file.attrs.items()}
    except Exception:
        return None
    return attrs if "bayesover_store" in attrs else None


def check_store_path(store: Any, checkpoint: Any) -> Path:
    """`bo.sample`'s `store` argument, checked before any work: a path whose directory is
    writable, not the checkpoint's path, and not an existing file other than a draw store
    (which would be overwritten)."""
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"`store` must be a file path (str or os.PathLike), got {store!r}.")
    path = check_writable_directory(store, "store")
    if checkpoint is not None and Path(checkpoint).resolve() == path.resolve():
        raise ValueError(
            f"`store` and `checkpoint` are the same file {str(path)!r}; pass two paths."
        )
    if path.is_dir():
        raise IsADirectoryError(f"`store` {str(path)!r} is a directory; pass a file path.")
    if path.exists() and path.stat().st_size > 0 and store_attrs(path) is None:
        raise ValueError(
            f"`store` {str(path)!r} exists and is not a bayesover draw store; it was left "
            "untouched: remove it or pass another path."
        )
    return path


def write_chunk(
    writer: StoreWriter | None,
    path: Path,
    chunk: tuple[Any, dict[str, Any]],
    posterior: Any,
    num_draws: int,
    fingerprint: str,
) -> StoreWriter | None:
    """`bo.sample`'s step after each chunk: append `chunk` (host arrays) to the store at
    `path`, creating it at the first chunk (`writer` None). Under `jax.distributed` only
    process 0 writes (the others return None); every process has the chunk already."""
    if not is_writer():
        return None
    if writer is None:
        target_shape = getattr(getattr(posterior, "data", None), "target_shape", None)
        writer = StoreWriter.create(
            path, *chunk, target_shape=target_shape, num_draws=num_draws, fingerprint=fingerprint
        )
    writer.append(*chunk)
    return writer


def finish_store(writer: StoreWriter | None, path: Path, config: dict[str, Any], like: Any):
    """`bo.sample`'s end with a store: record `config`, mark the store complete and open it
    lazily (`bo.Ensemble.open(path, like)`). Under `jax.distributed` process 0 finishes the
    file and every process then opens it (which needs a file system all processes see)."""
    import jax
    from jax.experimental import multihost_utils

    from bayesover.ensemble._stored import StoredEnsemble

    if writer is not None:
        writer.finish(config)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("bayesover: draw store finished")
    return StoredEnsemble.open(path, like)


class StoreWriter:
    """The store of a running `bo.sample`: `create` (from the first chunk) or `resume`, then
    `append` per chunk and `finish` once. Every chunk is `(draws, stats)`: a pytree of arrays
    `(chain, take, *shape)` (the constrained draws) and a dict of arrays `(chain, take)` (the
    sampler statistics). The writer holds no open file between calls (module docstring)."""

    def __init__(self, path: Path, draws_done: int):
        self.path = path
        self.draws_done = draws_done

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        draws: Any,
        stats: dict[str, Any],
        *,
        target_shape: tuple[int, ...] | None,
        num_draws: int,
        fingerprint: str,
        config: dict[str, Any] | None = None,
    ) -> StoreWriter:
        """A new store at `path` (replacing any store there) shaped like the chunk
        `(draws, stats)`; it holds no draws until `append`. `config` (default: empty) is
        replaced by `finish`."""
        import h5netcdf

        path = Path(path)
        leaves = [(name, np.asarray(x)) for name, x in named_leaves(draws)]
        chain_size, chunk_size = leaves[0][1].shape[:2]
        with _writing(path), h5netcdf.File(path, "w") as file:
            dimensions: dict[str, int | None] = {"chain": chain_size, "draw": None}
            for name, array in leaves:
                for i, size in enumerate(array.shape[2:]):
                    dimensions[f"{name}_dim_{i}"] = size
            file.dimensions = dimensions
            for name, array in leaves:
                dims = ("chain", "draw") + tuple(f"{name}_dim_{i}" for i in range(array.ndim - 2))
                _variable(file, f"params__{name}", dims, array, chunk_size)
            for name, value in stats.items():
                _variable(file, f"stats__{name}", ("chain", "draw"), np.asarray(value), chunk_size)
            file.attrs.update(
                {
                    "bayesover_ensemble": 1,
                    "config": json.dumps(config or {}, default=str),
                    "target_shape": json.dumps(None if target_shape is None else target_shape),
                    "param_names": json.dumps([name for name, _ in leaves]),
                    "bayesover_store": VERSION,
                    "fingerprint": fingerprint,
                    "num_draws": int(num_draws),
                    "chunk_size": int(chunk_size),
                    "draws_done": 0,
                    "complete": 0,
                }
            )
        return cls(path, 0)

    @classmethod
    def resume(
        cls, path: str | os.PathLike, checkpoint: Any, fingerprint: str
    ) -> StoreWriter | None:
        """The store of a run resumed from `checkpoint` (a loaded `_checkpoint.Checkpoint`
        of `draws_done` > 0 draws, written by a run with this store): its draws beyond the
        checkpoint's (written after it) are cut off, and `append` continues there."""
        import h5netcdf

        path = Path(path)
        draws_done = checkpoint.draws_done
        where = f"`store` {str(path)!r}"
        if checkpoint.has_draws:
            raise ValueError(
                f"`checkpoint` {str(checkpoint.path)!r} holds the draws of a run without "
                "`store=`; resume it without `store`, or remove it to start afresh."
            )
        attrs = store_attrs(path)
        if attrs is None:
            raise ValueError(
                f"{where} is not a readable bayesover draw store, but the checkpoint being "
                f"resumed has {draws_done} draws that should be in it; remove the checkpoint "
                "to start afresh."
            )
        if str(attrs.get("fingerprint")) != fingerprint:
            raise ValueError(
                f"{where} was written by a run with other arguments than the checkpoint being "
                "resumed; remove the checkpoint to start afresh, or pass the run's own store."
            )
        if int(attrs["draws_done"]) < draws_done:
            raise ValueError(
                f"{where} holds {int(attrs['draws_done'])} draws, fewer than the {draws_done} "
                "of the checkpoint being resumed; remove the checkpoint to start afresh."
            )
        if is_writer():  # under jax.distributed, process 0 (every process checks the file)
            with _writing(path), h5netcdf.File(path, "a") as file:
                file.resize_dimension("draw", draws_done)
                file.attrs["draws_done"] = draws_done
                file.attrs["complete"] = 0
        return cls(path, draws_done) if is_writer() else None

    def append(self, draws: Any, stats: dict[str, Any]) -> None:
        """Write one chunk after the draws already there (order: module docstring)."""
        import h5netcdf

        leaves = [(f"params__{name}", x) for name, x in named_leaves(draws)]
        leaves += [(f"stats__{name}", x) for name, x in stats.items()]
        take = np.shape(leaves[0][1])[1]
        start, stop = self.draws_done, self.draws_done + take
        with _writing(self.path), h5netcdf.File(self.path, "a") as file:
            file.resize_dimension("draw", stop)
            for name, value in leaves:
                variable = file.variables[name]
                variable[:, start:stop] = np.asarray(value).astype(variable.dtype, copy=False)
            file.attrs["draws_done"] = stop
        self.draws_done = stop

    def finish(self, config: dict[str, Any]) -> None:
        """Record the run's configuration and mark the store complete."""
        import h5netcdf

        with _writing(self.path), h5netcdf.File(self.path, "a") as file:
            file.attrs["config"] = json.dumps(config, default=str)
            file.attrs["complete"] = 1


class _writing:
    """Failures of HDF5 while writing the store (a full disk raises RuntimeError or OSError
    from inside h5py) become one OSError naming the store and what it still holds."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> None:
        if isinstance(error, (OSError, RuntimeError)) and not isinstance(error, _StoreError):
            raise _StoreError(
                f"could not write the draw store {str(self.path)!r}: {error}; it holds the draws "
                "up to its last complete chunk (attribute `draws_done`)."
            ) from error


class _StoreError(OSError):
    pass


def _variable(file: Any, name: str, dims: tuple[str, ...], array: np.ndarray, chunk_size: int):
    """A variable growing along `draw`; booleans as int8 with the attribute `dtype = "bool"`,
    the encoding xarray writes and decodes (netCDF has no boolean type)."""
    dtype = np.dtype(np.int8) if array.dtype == bool else array.dtype
    per_draw = max(1, int(np.prod(array.shape[2:], dtype=np.int64)) * dtype.itemsize)
    draws = int(min(chunk_size, max(1, _CHUNK_BYTES // per_draw)))
    variable = file.create_variable(name, dims, dtype, chunks=(1, draws, *array.shape[2:]))
    if array.dtype == bool:
        variable.attrs["dtype"] = "bool"
    return variable
