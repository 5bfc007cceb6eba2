"""Ensemble: posterior draws as one stacked pytree with leading `(chain, draw)` axes.

`params` holds the draws on their natural (constrained) scales: for a network posterior the
dict `{"net", "prior", "likelihood"}` of `Model.constrain`, for a NumPyro posterior the named
sites (deterministic sites included). `stats` holds the sampler statistics per draw, named as
ArviZ names them. The configuration and key that made the draws travel with them, and, for a
network, the `bo.Model` whose architecture the draws belong to (so the ensemble can predict).

Draws from any source (NUTS, SG-MCMC, deep ensembles, several chains) are the same object:
`Ensemble.concat` joins ensembles of one architecture along the chain axis.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from bayesover._atomic import atomic_write_netcdf
from bayesover._checks import check_int
from bayesover._trees import concatenate, named_leaves
from bayesover.ensemble._predictive import Predictive
from bayesover.model._model import Model
from bayesover.posterior._posterior import Posterior

if TYPE_CHECKING:
    from bayesover.ensemble._stored import StoredEnsemble


class Ensemble(eqx.Module):
    """`bo.Ensemble(params, stats, config, model=None, target_shape=None)`.

    **Fields:**

    - `params`: pytree of draws, every leaf shaped `(num_chains, num_draws, *shape)`.
    - `stats`: dict of per-draw statistics, each `(num_chains, num_draws)` (may be empty).
    - `config`: provenance (sampler, numbers of warm-up steps and draws, thinning, key, ...).
    - `model`: the `bo.Model` of a network posterior (None for NumPyro targets).
    - `target_shape`: the per-datum shape of the training targets (for predictions).
    """

    params: PyTree
    stats: dict[str, Array]
    model: Model | None
    provenance: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    target_shape: tuple[int, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        params: PyTree,
        stats: dict[str, Array] | None,
        config: dict[str, Any],
        model: Model | None = None,
        target_shape: tuple[int, ...] | None = None,
    ):
        self.params = params
        self.stats = dict(stats or {})
        self.model = model
        self.provenance = tuple(sorted((k, _hashable(v)) for k, v in config.items()))
        self.target_shape = None if target_shape is None else tuple(target_shape)

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
        if 0 in shape:
            raise ValueError(f"an Ensemble needs at least one member; got (chain, draw) {shape}.")

    # -- sizes and provenance ---------------------------------------------------------------------
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

    # -- subsets ----------------------------------------------------------------------------------
    def _map(self, fn) -> Ensemble:
        return Ensemble(
            jax.tree.map(fn, self.params),
            {k: fn(v) for k, v in self.stats.items()},
            self.config,
            self.model,
            self.target_shape,
        )

    def subset(self, chains=None, draws=None) -> Ensemble:
        """The ensemble restricted to some chains and/or draws (indices, slices or masks)."""
        # lists/tuples of indices or booleans: JAX refuses a non-tuple sequence as an index
        chains = slice(None) if chains is None else _as_index(chains)
        draws = slice(None) if draws is None else _as_index(draws)
        return self._map(lambda x: jnp.asarray(x)[chains][:, draws])

    def thin(self, thinning: int) -> Ensemble:
        """Every `thinning`-th draw of each chain (keeping the last one)."""
        thinning = check_int("thinning", thinning, minimum=1)
        start = (self.num_draws - 1) % thinning
        return self.subset(draws=slice(start, None, thinning))

    def healthy(self) -> Ensemble:
        """The chains that did not stop (see `chain_ok`)."""
        ok = np.asarray(self.chain_ok())
        if not ok.any():
            raise ValueError("every chain of this ensemble stopped; no healthy chains remain.")
        return self.subset(chains=np.flatnonzero(ok))

    @staticmethod
    def concat(ensembles: list[Ensemble], *, axis: str = "chain") -> Ensemble:
        """Join ensembles of ONE architecture along chains (default) or draws.

        Statistics present in every ensemble are kept; the others are dropped.
        """
        ensembles = list(ensembles)
        if not ensembles:
            raise ValueError("`ensembles` is empty; concat needs at least one Ensemble.")
        if axis not in ("chain", "draw"):
            raise ValueError(f"`axis` must be 'chain' or 'draw', got {axis!r}.")
        first = ensembles[0]
        for i, other in enumerate(ensembles[1:], start=1):
            _check_same_architecture(first, other, i)
        dim = 0 if axis == "chain" else 1
        if axis == "chain" and len({e.num_draws for e in ensembles}) != 1:
            raise ValueError(
                "concatenating along chains needs the same number of draws in all; got "
                f"{[e.num_draws for e in ensembles]} (use .subset(draws=...) or .thin first)."
            )
        if axis == "draw" and len({e.num_chains for e in ensembles}) != 1:
            raise ValueError("concatenating along draws needs the same number of chains in all.")
        params = concatenate([e.params for e in ensembles], axis=dim)
        common = set.intersection(*[set(e.stats) for e in ensembles])
        stats = {k: jnp.concatenate([e.stats[k] for e in ensembles], axis=dim) for k in common}
        sources = [e.config.get("sampler_name", "?") for e in ensembles]
        config = {**first.config, "sources": tuple(sources), "concat_axis": axis}
        return Ensemble(params, stats, config, first.model, first.target_shape)

    # -- predictions ------------------------------------------------------------------------------
    def predict(
        self,
        x,
        *,
        batch_size: int | None = None,
        member_batch_size: int | None = None,
        mesh: Any = None,
    ):
        """The mixture predictive at inputs `x` (shape `(n, *feature_shape)`): a
        `bo.Predictive` that averages the members' predictive DISTRIBUTIONS. `mesh` (a device
        count or a `jax.sharding.Mesh`) splits the points over devices. See
        `bayesover.ensemble._predictive`."""
        try:
            return Predictive.build(
                self, x, batch_size=batch_size, member_batch_size=member_batch_size, mesh=mesh
            )
        except ValueError:
            # checked only on failure, so that good calls pay nothing for it
            shape = tuple(np.shape(x))
            if self.model is not None and _is_one_input(self.model, self.params, shape):
                raise ValueError(
                    f"`x` of shape {shape} is ONE input of the network, but `predict` takes a "
                    f"batch of shape (n, *feature_shape) = (n, {', '.join(map(str, shape))}): "
                    "pass `x[None]` (a batch of one)."
                ) from None
            raise

    # -- disk -------------------------------------------------------------------------------------
    def to_dataset(self):
        """The ensemble as one `xarray.Dataset` (`params__NAME`, `stats__NAME` variables and JSON
        attributes); `Ensemble.from_dataset` inverts it exactly. The model is not stored."""
        import xarray as xr

        variables = {}
        for name, leaf in named_leaves(self.params):
            array = np.asarray(leaf)
            dims = ("chain", "draw") + tuple(f"{name}_dim_{i}" for i in range(array.ndim - 2))
            variables[f"params__{name}"] = (dims, array)
        for name, value in self.stats.items():
            variables[f"stats__{name}"] = (("chain", "draw"), np.asarray(value))
        attrs = {
            "bayesover_ensemble": 1,
            "config": json.dumps(self.config, default=str),
            "target_shape": json.dumps(self.target_shape),
            "param_names": json.dumps([n for n, _ in named_leaves(self.params)]),
        }
        return xr.Dataset(variables, attrs=attrs)

    def save(self, path: str | os.PathLike) -> None:
        """Write the ensemble to netCDF (h5netcdf), atomically; `Ensemble.load` reads it back
        exactly. The model is not stored: pass it (or the posterior) to `load`.

        The file is serialised in memory, written beside `path` under a temporary name,
        fsynced and renamed (`bayesover._atomic.atomic_write_netcdf`): a failed write, disk
        full included, raises an OSError naming `path` and leaves any previous file intact."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"`path` must be a str or os.PathLike, got {type(path).__name__}.")
        atomic_write_netcdf(Path(path), self.to_dataset())

    @staticmethod
    def load(path: str | os.PathLike, like: Any = None) -> Ensemble:
        """Read an ensemble written by `save`. `like` gives the structure of the parameters:
        the `bo.Posterior` or `bo.Model` the draws belong to (network), or None for an
        ensemble of named NumPyro sites (a flat dict).

        A DataTree file written by `bo.save_datatree` is read too, through its `ensemble`
        group: the same as `bo.from_datatree(bo.load_datatree(path), like)`."""
        import xarray as xr

        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"`path` must be a str or os.PathLike, got {type(path).__name__}.")
        path = Path(path)
        source = f"`path` {str(path)!r}"
        try:
            dataset = xr.load_dataset(path, engine="h5netcdf")
            groups = [] if "bayesover_ensemble" in dataset.attrs else _netcdf_groups(path)
            if "ensemble" in groups:  # a DataTree file (bo.save_datatree)
                dataset = xr.load_dataset(path, engine="h5netcdf", group="ensemble")
                source = f"the `ensemble` group of {source}"
        except Exception as error:
            raise ValueError(f"{source} is not a readable ensemble file: {error}") from None
        if groups and "ensemble" not in groups:
            raise ValueError(
                f"{source} holds the netCDF groups {groups} (a DataTree file?) but no `ensemble` "
                "group: it was written neither by Ensemble.save nor by "
                "bo.save_datatree(bo.to_datatree(...)); read it with bo.load_datatree(path)."
            )
        return Ensemble.from_dataset(dataset, like, source=source)

    @staticmethod
    def from_dataset(dataset, like: Any = None, *, source: str = "`dataset`") -> Ensemble:
        """Rebuild the ensemble from `to_dataset`'s output (see `load` for `like`)."""
        if "bayesover_ensemble" not in dataset.attrs:
            raise ValueError(f"{source} was not written by Ensemble.save (no ensemble attributes).")
        try:
            names = json.loads(dataset.attrs["param_names"])
            leaves = [jnp.asarray(dataset[f"params__{n}"].values) for n in names]
            stats = {
                str(k).removeprefix("stats__"): jnp.asarray(v.values)
                for k, v in dataset.data_vars.items()
                if str(k).startswith("stats__")
            }
            config = json.loads(dataset.attrs["config"])
            target_shape = json.loads(dataset.attrs["target_shape"])
        except (KeyError, TypeError, ValueError) as error:  # JSONDecodeError is a ValueError
            raise ValueError(
                f"{source} is an incomplete or corrupt ensemble file: "
                f"{type(error).__name__}: {error}"
            ) from None
        found = [(n, tuple(x.shape[2:])) for n, x in zip(names, leaves, strict=True)]
        model, structure = architecture(like, found)
        if structure is None:
            params = dict(zip(names, leaves, strict=True))
        else:
            params = jax.tree.unflatten(structure, leaves)
        return Ensemble(params, stats, config, model, target_shape)

    @staticmethod
    def open(path: str | os.PathLike, like: Any = None) -> StoredEnsemble:
        """The ensemble at `path` opened lazily: a `StoredEnsemble` whose draws stay on disk
        and are read block by block (`bayesover.ensemble._stored`), for ensembles larger than
        memory. `path`: the draw store of `bo.sample(..., store=path)`, a file of `save`, or
        a DataTree file of `bo.save_datatree` (its `ensemble` group); `like` as for `load`."""
        from bayesover.ensemble._stored import StoredEnsemble

        return StoredEnsemble.open(path, like)


def architecture(like: Any, found: list[tuple[str, tuple[int, ...]]]):
    """`(model, structure)` of `like` (`Ensemble.load`'s argument) for a file whose parameters
    are `found` (name, shape per draw): the `bo.Model` and the pytree structure of its draws,
    checked against `found`; `(None, None)` for `like=None` (a flat dict of named sites)."""
    model = like.model if isinstance(like, Posterior) else like
    if model is None:
        return None, None
    if not isinstance(model, Model):
        raise TypeError(f"`like` must be a bo.Posterior, a bo.Model or None, got {like!r}.")
    template = model.constrain(model.initial_position())
    expected = [(n, tuple(x.shape)) for n, x in named_leaves(template)]
    if expected != found:
        raise ValueError(
            f"the file's parameters {found} (name, shape per draw) do not match the "
            f"architecture of `like` ({expected})."
        )
    return model, jax.tree.structure(template)


def _is_one_input(model: Model, params: PyTree, shape: tuple[int, ...]) -> bool:
    """Whether the network takes an input of `shape` but not one of `shape[1:]`."""
    if not shape:
        return False
    net = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape[2:], v.dtype), params["net"])
    dtype = jnp.result_type(float)

    def accepts(feature_shape) -> bool:
        try:
            jax.eval_shape(model.apply, net, jax.ShapeDtypeStruct(feature_shape, dtype))
        except Exception:
            return False
        return True

    return not accepts(shape[1:]) and accepts(shape)


def _netcdf_groups(path: Path) -> list[str]:
    """The names of the top-level groups of the netCDF-4 (HDF5) file at `path`."""
    import h5netcdf

    with h5netcdf.File(path, "r") as file:
        return sorted(file.groups)


def _as_index(index):
    return np.asarray(index) if isinstance(index, (list, tuple)) else index


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _check_same_architecture(first: Ensemble, other: Ensemble, index: int) -> None:
    def signature(e: Ensemble):
        shapes = [(n, x.shape[2:], str(x.dtype)) for n, x in named_leaves(e.params)]
        static = None if e.model is None else jax.tree.structure(e.model.static)
        return shapes, static, e.target_shape

    if signature(first) != signature(other):
        raise ValueError(
            f"`ensembles[{index}]` has another architecture than `ensembles[0]`: parameter "
            f"shapes {signature(other)[0]} vs {signature(first)[0]}; ensembles of different "
            "networks cannot be mixed."
        )
