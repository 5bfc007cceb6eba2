"""`bo.to_datatree`: an ensemble as the `xarray.DataTree` every ArviZ 1.x function reads.

Groups (ArviZ's names, dims `chain`, `draw` first):

- `posterior`: for a NumPyro target the named constrained sites. For a network the
  function-space quantities, which are identifiable, plus a documented subsample of weights:
  - `f` (`probe`[, `class`]): E[y | x_probe, theta] per draw (class probabilities for
    classifiers), at the probe inputs (`constant_data.x_probe`);
  - `log_lik` (scalar): sum_i log p(y_i | x_i, theta) on the training data;
  - `lp`: the sampler's log density when it recorded one (SG-MCMC: the minibatch estimate);
  - the prior's and likelihood's hyperparameters (e.g. `likelihood_scale`), all of them;
  - `w` (`weight`): `num_weights` network weights drawn uniformly without replacement with
    `jax.random.key(0)`, named by path in the `weight` coordinate (`weights="all"`: every one,
    `"none"`: no weights). Weight-space R-hat is not meaningful under the symmetries of a net
    (permuted hidden units are the same function), so these are for looking, not for verdicts.
- `sample_stats`: the sampler statistics under ArviZ's names (`lp`, `diverging`, `tree_depth`,
  `n_steps`, `step_size`, `acceptance_rate`, `energy`, ...).
- `log_likelihood`: pointwise log p(y_i | x_i, theta) (`obs`), for `loo` and `compare`.
- `posterior_predictive`: one draw of y_i per posterior draw (networks only).
- `observed_data`, `constant_data`: the training targets and inputs, and the probe inputs.
- `predictive_metrics` (when `test=` is given): NLL, RMSE or accuracy, ECE, Brier, interval
  coverage of the mixture predictive on the test data; for classifiers the reliability curve
  `calibration_confidence`, `calibration_accuracy`, `calibration_count` (dim `bin`) and
  `calibration_bin_edges` (dim `bin_edge`).
- `ensemble`: every parameter exactly as `bo.Ensemble.to_dataset` writes it, so
  `bo.from_datatree` rebuilds the ensemble (ArviZ ignores groups it does not know).

An ensemble on disk (`bo.Ensemble.open`, `bayesover.ensemble._stored`) gives the same groups,
computed in one pass over blocks of draws, except `ensemble`: the tree names the file instead
(attributes `ensemble_store` and `ensemble_store_selection`, JSON `{"chains", "draws"}`), and
`bo.from_datatree` reopens it. `weights="all"` is refused for it (that would be every draw).

Why by hand: ArviZ's converters (`from_numpyro`, `from_dict`) know nothing of networks, of
function-space quantities or of our `Ensemble`; `arviz.from_dict` does the final assembly.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayesover._atomic import atomic_write_netcdf
from bayesover._trees import named_leaves as _named_leaves
from bayesover.data._container import Data
from bayesover.ensemble._ensemble import Ensemble
from bayesover.ensemble._stored import StoredEnsemble, member_positions
from bayesover.model.likelihoods import Bernoulli, Categorical
from bayesover.posterior._posterior import AbstractPosterior, NumPyroPosterior, Posterior

_WEIGHT_CHOICES = ("subsample", "all", "none")
_MEMBER_CHUNK = 64


def to_datatree(
    ensemble: Ensemble | StoredEnsemble,
    posterior: AbstractPosterior,
    *,
    probe_x: Any = None,
    weights: str = "subsample",
    num_weights: int = 20,
    test: Data | None = None,
    key: Any = None,
    name: str | None = None,
) -> xr.DataTree:
    """The ensemble and what it predicts as an ArviZ `DataTree` (groups: module docstring).

    **Arguments:**

    - `ensemble`: a `bo.Ensemble` drawn from `posterior`, or one on disk (`bo.Ensemble.open`).
    - `posterior`: the `bo.Posterior` (network) or `NumPyroPosterior` the draws target.
    - `probe_x`: inputs `(num_probe, *feature_shape)` for the function-space quantity `f`.
      Default: for 1-D inputs 25 points evenly spread over the training range widened by 10% on
      each side; otherwise the first 10 training inputs.
    - `weights`: `"subsample"` (default), `"all"` or `"none"`: which network weights go into
      the `posterior` group.
    - `num_weights`: the subsample's size.
    - `test`: held-out `bo.Data`; adds the `predictive_metrics` group.
    - `key`: for the posterior-predictive draws (default `jax.random.key(0)`).
    - `name`: a label for the run (attribute `name`), e.g. the sampler's name.
    """
    if not isinstance(ensemble, (Ensemble, StoredEnsemble)):
        raise TypeError(f"`ensemble` must be a bo.Ensemble, got {type(ensemble).__name__}.")
    if weights not in _WEIGHT_CHOICES:
        raise ValueError(f"`weights` must be one of {_WEIGHT_CHOICES}, got {weights!r}.")
    stored = isinstance(ensemble, StoredEnsemble)
    if stored and weights == "all":
        raise ValueError(
            "`weights='all'` would load every draw of an ensemble on disk into memory; pass "
            "'subsample' (with `num_weights`) or 'none', or load it first (`ensemble.load()`)."
        )
    if isinstance(num_weights, bool) or not isinstance(num_weights, int) or num_weights < 1:
        raise ValueError(f"`num_weights` must be an int >= 1, got {num_weights!r}.")
    key = jax.random.key(0) if key is None else key
    config = ensemble.config
    attrs: dict[str, Any] = {
        "inference_library": "bayesover",
        "name": name or str(config.get("sampler_name", "ensemble")),
        "bayesover_config": json.dumps(config, default=str),
    }
    if isinstance(posterior, Posterior):
        if ensemble.model is None:
            raise TypeError("`ensemble` holds NumPyro sites; `posterior` is a network posterior.")
        groups, dims, coords, extra = _network_groups(
            ensemble, posterior, probe_x, weights, num_weights, test, key
        )
        attrs["task"] = _task(posterior)
        attrs["num_params"] = int(posterior.model.num_params)
        attrs["feature_shape"] = json.dumps(list(posterior.data.feature_shape))
    elif isinstance(posterior, NumPyroPosterior):
        if test is not None or probe_x is not None:
            raise ValueError("`test` and `probe_x` are for network posteriors only.")
        loaded = ensemble.load() if isinstance(ensemble, StoredEnsemble) else ensemble
        groups, dims, coords, extra = _numpyro_groups(loaded, posterior)
        attrs["task"] = "numpyro"
    else:
        raise TypeError(
            "`posterior` must be a bo.Posterior or a NumPyro posterior, got "
            f"{type(posterior).__name__}."
        )
    stats = {k: np.asarray(v) for k, v in ensemble.stats.items()}
    if stats:
        groups["sample_stats"] = stats

    tree = _quiet_from_dict(groups, dims, coords)
    for group, dataset in extra.items():
        tree[group] = xr.DataTree(dataset)
    if isinstance(ensemble, StoredEnsemble):  # the draws stay in their file
        attrs["ensemble_store"] = str(ensemble.path.resolve())
        attrs["ensemble_store_selection"] = json.dumps(ensemble.selection())
    else:
        tree["ensemble"] = xr.DataTree(ensemble.to_dataset())
    tree.attrs.update(attrs)
    return tree


def _quiet_from_dict(groups, dims, coords=None) -> xr.DataTree:
    import arviz as az

    with warnings.catch_warnings():
        # a deep ensemble has more chains (members) than draws (one each), by design
        warnings.filterwarnings("ignore", "Found chain dimension to be longer than draw")
        return az.from_dict(groups, dims=dims, coords=coords)


def from_datatree(tree: xr.DataTree, like: Any = None) -> Ensemble | StoredEnsemble:
    """Rebuild the `bo.Ensemble` stored in `tree` (its `ensemble` group). `like` is the
    posterior or model for a network (see `bo.Ensemble.load`), None for NumPyro sites. The
    tree of an ensemble on disk names its file instead: that is reopened (`bo.Ensemble.open`)
    with the tree's chains and draws."""
    if isinstance(tree, xr.DataTree) and "ensemble_store" in tree.attrs:
        selection = json.loads(tree.attrs["ensemble_store_selection"])
        opened = StoredEnsemble.open(tree.attrs["ensemble_store"], like)
        return opened.subset(chains=selection["chains"], draws=selection["draws"])
    if not isinstance(tree, xr.DataTree) or "ensemble" not in tree.children:
        raise ValueError("`tree` has no `ensemble` group; it was not written by bo.to_datatree.")
    return Ensemble.from_dataset(tree["ensemble"].to_dataset(), like, source="`tree`")


def save_datatree(tree: xr.DataTree, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write `tree` to netCDF (h5netcdf) at `path`: to a temporary name, then renamed, so an
    existing file is never half-written (`bayesover._atomic`; a failed write, disk full
    included, raises an OSError naming `path` and leaves the old file intact).
    `overwrite=False` refuses an existing `path`.

    The file is serialised in memory and written by Python: HDF5 meeting a failing disk
    itself raises RuntimeErrors and can crash the process when its objects are freed."""
    if not isinstance(tree, xr.DataTree):
        raise TypeError(f"`tree` must be an xarray.DataTree, got {type(tree).__name__}.")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike, got {type(path).__name__}.")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"`path` {str(path)!r} exists; pass overwrite=True to replace it.")
    return atomic_write_netcdf(path, tree)


def load_datatree(path: str | os.PathLike) -> xr.DataTree:
    """Read a tree written by `save_datatree` (fully into memory); a clear ValueError for a
    missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`path` {str(path)!r} does not exist.")
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            loaded = tree.load().copy()
    except Exception as error:
        raise ValueError(
            f"`path` {str(path)!r} is not a readable DataTree netCDF file "
            f"({type(error).__name__}: {error})."
        ) from None
    if "posterior" not in loaded.children:
        raise ValueError(f"`path` {str(path)!r} holds no `posterior` group.")
    return loaded


# -- networks -------------------------------------------------------------------------------------
def _task(posterior: Posterior) -> str:
    return (
        "classification"
        if isinstance(posterior.model.likelihood, (Categorical, Bernoulli))
        else "regression"
    )


def _default_probe(data: Data) -> np.ndarray:
    x = np.asarray(data.inputs)
    if x.ndim == 2 and x.shape[1] == 1:
        lo, hi = float(x.min()), float(x.max())
        pad = 0.1 * (hi - lo if hi > lo else 1.0)
        return np.linspace(lo - pad, hi + pad, 25, dtype=x.dtype)[:, None]
    return x[: min(10, x.shape[0])]


def _probe(posterior: Posterior, probe_x: Any) -> jax.Array:
    if probe_x is None:
        return jnp.asarray(_default_probe(posterior.data))
    x = jnp.asarray(probe_x)
    if x.ndim == 0 or x.shape[0] == 0 or x.shape[1:] != posterior.data.feature_shape:
        raise ValueError(
            f"`probe_x` must be shaped (num_probe >= 1, *{posterior.data.feature_shape}), "
            f"got {x.shape}."
        )
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError("`probe_x` holds NaN or inf values.")
    return x.astype(posterior.data.inputs.dtype)


def _distribution(model, member, x, target_shape):
    """p(y | x, theta) of one member at one input, shaped like one training target."""
    output = model.apply(member["net"], x)
    if not isinstance(model.likelihood, Categorical) and output.shape != target_shape:
        output = output.reshape(target_shape)
    return model.likelihood.distribution(output, member["likelihood"])


def _expectation(model, member, x, target_shape):
    """E[y | x, theta] of one member at one input: class probabilities for classifiers."""
    distribution = _distribution(model, member, x, target_shape)
    if isinstance(model.likelihood, Categorical):
        return distribution.probs
    return distribution.mean


@eqx.filter_jit
def _member_quantities(posterior: Posterior, members, probe_x, keys):
    """Per member (member i with `keys[i]`): f at the probes, pointwise log-lik and one
    predictive draw on the training data. `lax.map` over members in chunks bounds the
    memory."""
    model, data = posterior.model, posterior.data
    shape = data.target_shape

    def one(args):
        member, k = args
        f = jax.vmap(lambda x: _expectation(model, member, x, shape))(probe_x)

        def point(x, y, kk):
            distribution = _distribution(model, member, x, shape)
            return distribution.log_prob(y).sum(), distribution.sample(kk)

        keys = jax.random.split(k, data.num_points)
        loglik, draw = jax.vmap(point)(data.inputs, data.targets, keys)
        return f, loglik, draw

    return jax.lax.map(one, (members, keys), batch_size=_MEMBER_CHUNK)


def _safe_name(name: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z_]", "_", name)).strip("_")


def _network_groups(ensemble, posterior, probe_x, weights, num_weights, test, key):
    probe = _probe(posterior, probe_x)
    c, d = ensemble.num_chains, ensemble.num_draws
    keys = jax.random.split(key, c * d)  # member i (chain-major) draws with keys[i]
    columns = None if weights == "none" else _weight_columns(ensemble, weights, num_weights)
    parts: dict[str, list[np.ndarray]] = {}  # hyperparameter draws, block by block
    weight_blocks: list[np.ndarray] = []
    f = loglik = draws = None
    # one pass: the whole ensemble in memory, or the blocks of draws of one on disk
    blocks = ensemble.iter_blocks() if isinstance(ensemble, StoredEnsemble) else [(0, ensemble)]
    for start, block in blocks:
        k = block.num_draws
        flat = member_positions(c, d, start, k)
        values = _member_quantities(posterior, block.flat_params(), probe, keys[flat])
        if f is None:
            f, loglik, draws = (np.empty((c, d, *v.shape[1:]), v.dtype) for v in values)
        for out, value in zip((f, loglik, draws), values, strict=True):
            out[:, start : start + k] = np.asarray(value).reshape(c, k, *value.shape[1:])
        for part in ("prior", "likelihood"):
            for leaf_name, leaf in _named_leaves(block.params[part]):
                parts.setdefault(_safe_name(f"{part}_{leaf_name}"), []).append(np.asarray(leaf))
        if columns is not None:
            weight_blocks.append(_select_weights(block.params["net"], columns[1]))
    assert f is not None and loglik is not None and draws is not None

    categorical = isinstance(posterior.model.likelihood, Categorical)
    if not categorical and f.ndim >= 4 and f.shape[-1] == 1:  # one output: drop its axis
        f = f[..., 0]
    f_dims = ["probe"] + (["class"] if categorical else [])
    f_dims += [f"f_dim_{i}" for i in range(f.ndim - 3 - int(categorical))]
    target_shape = posterior.data.target_shape
    y_dims = ["obs"] + [f"y_dim_{i}" for i in range(len(target_shape))]
    posterior_vars: dict[str, np.ndarray] = {
        "f": f,
        "log_lik": loglik.sum(axis=-1),
    }
    dims: dict[str, list[str]] = {
        "f": f_dims,
        "y": y_dims,
        "x": ["obs"] + [f"x_dim_{i}" for i in range(len(posterior.data.feature_shape))],
        "x_probe": ["probe"] + [f"x_dim_{i}" for i in range(len(posterior.data.feature_shape))],
    }
    coords: dict[str, Any] = {}
    if "lp" in ensemble.stats:
        posterior_vars["lp"] = np.asarray(ensemble.stats["lp"])
    for var, arrays in parts.items():
        array = np.concatenate(arrays, axis=1)
        posterior_vars[var] = array
        dims[var] = [f"{var}_dim_{i}" for i in range(array.ndim - 2)]
    if columns is not None:
        posterior_vars["w"] = np.concatenate(weight_blocks, axis=1)
        dims["w"] = ["weight"]
        coords["weight"] = np.asarray(columns[0])
    groups: dict[str, dict[str, np.ndarray]] = {
        "posterior": posterior_vars,
        "posterior_predictive": {"y": draws},
        "observed_data": {"y": np.asarray(posterior.data.targets)},
        "constant_data": {"x": np.asarray(posterior.data.inputs), "x_probe": np.asarray(probe)},
    }

    # pointwise log-lik is per datum (summed over a datum's target axes): its own dims for "y"
    extra = {
        "log_likelihood": _quiet_from_dict({"log_likelihood": {"y": loglik}}, {"y": ["obs"]})[
            "log_likelihood"
        ].to_dataset()
    }
    ok = np.asarray(ensemble.chain_ok())
    if test is not None and ok.any():  # stopped SG-MCMC chains hold NaN draws: score the rest
        healthy = ensemble if ok.all() else ensemble.healthy()
        extra["predictive_metrics"] = predictive_metrics(healthy, test)
    return groups, dims, coords, extra


def _weight_columns(ensemble, weights, num_weights) -> tuple[list[str], list[np.ndarray]]:
    """The names of the network weights in the `w` variable and, per leaf of the net, the flat
    indices (C order) of its weights there: all of them (`weights="all"`), or `num_weights`
    drawn uniformly without replacement with `jax.random.key(0)`, in flat order."""
    template = ensemble.model.constrain(ensemble.model.initial_position())["net"]
    leaves = [(name, tuple(np.shape(leaf))) for name, leaf in _named_leaves(template)]
    sizes = [int(np.prod(shape, dtype=np.int64)) for _, shape in leaves]
    total = sum(sizes)
    if weights == "subsample" and num_weights < total:
        chosen = np.sort(
            np.asarray(jax.random.choice(jax.random.key(0), total, (num_weights,), replace=False))
        )
    else:
        chosen = np.arange(total)
    offsets = np.cumsum([0, *sizes])
    names, per_leaf = [], []
    for i, (leaf_name, shape) in enumerate(leaves):
        local = chosen[(chosen >= offsets[i]) & (chosen < offsets[i + 1])] - offsets[i]
        per_leaf.append(local)
        for index in np.stack(np.unravel_index(local, shape), axis=-1) if shape else local:
            names.append(f"{leaf_name}[{','.join(map(str, index))}]" if shape else leaf_name)
    return names, per_leaf


def _select_weights(net, per_leaf: list[np.ndarray]) -> np.ndarray:
    """The chosen weights of a block of draws: `(chain, draw, num chosen)`."""
    columns = []
    for (_, leaf), local in zip(_named_leaves(net), per_leaf, strict=True):
        array = np.asarray(leaf)
        columns.append(array.reshape(*array.shape[:2], -1)[..., local])
    return np.concatenate(columns, axis=-1)


def predictive_metrics(ensemble: Ensemble, test: Data, *, prob: float = 0.9) -> xr.Dataset:
    """The mixture predictive scored on `test`: NLL always; accuracy, Brier, ECE and a
    reliability curve for classifiers; RMSE and the coverage of the central `prob` interval for
    regression. A Dataset, for the `predictive_metrics` group."""
    from bayesover.ensemble import metrics

    if not isinstance(test, Data):
        raise TypeError(f"`test` must be a bo.Data, got {type(test).__name__}.")
    predictive = ensemble.predict(test.inputs)
    values: dict[str, Any] = {"nll": float(metrics.nll(predictive.log_prob(test.targets)))}
    if predictive.is_classification:
        probs = predictive.probs
        if probs.ndim == 1:  # Bernoulli: P(y = 1)
            probs = jnp.stack([1 - probs, probs], axis=-1)
        labels = test.targets.astype(jnp.int32).reshape(-1)
        values["accuracy"] = float(metrics.accuracy(probs, labels))
        values["brier"] = float(metrics.brier(probs, labels))
        values["ece"] = float(metrics.ece(probs, labels))
        curve = metrics.calibration_curve(probs, labels)
        dataset = xr.Dataset(
            {k: ((), v) for k, v in values.items()}
            | {
                f"calibration_{field}": ("bin", np.asarray(getattr(curve, field)))
                for field in ("confidence", "accuracy", "count")
            }
            | {"calibration_bin_edges": ("bin_edge", np.asarray(curve.bin_edges))}
        )
    else:
        lo, hi = predictive.interval(prob)
        values["rmse"] = float(metrics.rmse(predictive.mean, test.targets))
        values[f"coverage_{round(100 * prob)}"] = float(metrics.coverage(lo, hi, test.targets))
        dataset = xr.Dataset({k: ((), v) for k, v in values.items()})
    dataset.attrs["num_test"] = int(test.num_points)
    return dataset


# -- NumPyro targets ------------------------------------------------------------------------------
def _numpyro_groups(ensemble: Ensemble, posterior: NumPyroPosterior):
    import numpyro

    c, d = ensemble.num_chains, ensemble.num_draws
    params = {str(k): np.asarray(v) for k, v in ensemble.params.items()}
    flat = {k: jnp.asarray(v).reshape(c * d, *v.shape[2:]) for k, v in params.items()}
    loglik = numpyro.infer.util.log_likelihood(
        posterior.model_fn, flat, *posterior.args, **posterior.kwargs
    )
    trace = numpyro.handlers.trace(
        numpyro.handlers.substitute(
            numpyro.handlers.seed(posterior.model_fn, 0), {k: v[0] for k, v in flat.items()}
        )
    ).get_trace(*posterior.args, **posterior.kwargs)
    observed = {
        name: np.asarray(site["value"])
        for name, site in trace.items()
        if site["type"] == "sample" and site["is_observed"]
    }
    dims: dict[str, list[str]] = {}
    for name, value in observed.items():
        dims[name] = [f"{name}_obs_{i}" for i in range(np.ndim(value))]
    groups = {
        "posterior": params,
        "log_likelihood": {k: np.asarray(v).reshape(c, d, *v.shape[1:]) for k, v in loglik.items()},
        "observed_data": observed,
    }
    return groups, dims, {}, {}
