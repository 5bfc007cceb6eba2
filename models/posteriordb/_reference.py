"""Reference posteriors of the Stan posterior database (posteriordb), read in place, and the one
`problem` helper that every model file of this folder's `build` calls.

A test oracle, not part of the library: the model files beside it import it relatively
(`from ._reference import problem`; `bo.builders.load_module` makes the folder a package), and
the tests load it with `bo.builders.load_module(models/posteriordb/_reference.py)`.

The data live outside the project (`../shared/validation/posteriordb` next to the repository, or
wherever the environment variable `BAYESOVER_POSTERIORDB` points) and are never copied into it.
For each posterior `NAME` the folder holds

- `posteriors/NAME.json`: which data set (`data_name`) and model the posterior joins;
- `data/DATA.json.zip`: the data, one JSON object;
- `reference_draws/NAME.json.zip`: 10 chains x 1,000 gold-standard Stan draws, per scalar
  parameter with Stan names (`beta[1]`, `a[1,2]`, 1-based);
- `summary/mean_value/NAME.json`, `summary/mean_squared_value/NAME.json`: the reference
  E[x] and E[x^2] with their Monte Carlo standard errors.

`flatten_draws` and `unflatten_draws` translate between arrays per model site and these scalar
Stan names.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

import bayesover

ENV_VAR = "BAYESOVER_POSTERIORDB"

POSTERIORS: tuple[str, ...] = (
    "eight_schools-eight_schools_noncentered",
    "sblri-blr",
    "sblrc-blr",
    "kidiq-kidscore_momiq",
    "mesquite-logmesquite",
    "arK-arK",
    "garch-garch11",
    "gp_pois_regr-gp_pois_regr",
    "low_dim_gauss_mix-low_dim_gauss_mix",
    "diamonds-diamonds",
    "nes2000-nes",
)

_RELATIVE = Path("..") / "shared" / "validation" / "posteriordb"
_STAN_NAME = re.compile(r"^(?P<base>[^\[\]]+)\[(?P<index>\d+(?:,\d+)*)\]$")


def posteriordb_root() -> Path:
    """The posteriordb folder: `$BAYESOVER_POSTERIORDB`, else `shared/validation/posteriordb`
    beside the repository root or the working directory, or beside any of their ancestors."""
    env = os.environ.get(ENV_VAR)
    if env:
        root = Path(env).expanduser()
        if not (root / "posteriors").is_dir():
            raise FileNotFoundError(
                f"{ENV_VAR}={env!r} is not a posteriordb folder (no 'posteriors/' inside)."
            )
        return root.resolve()
    repo_root = Path(__file__).resolve().parents[2]  # models/posteriordb/ -> the repository
    candidates = [
        ancestor / _RELATIVE
        for start in (repo_root, Path.cwd().resolve())
        for ancestor in (start, *start.parents)
    ]
    for candidate in candidates:
        if (candidate / "posteriors").is_dir():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"posteriordb reference data not found (tried {tried}); set the environment variable "
        f"{ENV_VAR} to the folder that holds 'posteriors/', 'data/' and 'reference_draws/'."
    )


def _check_name(posterior_name: str) -> None:
    if posterior_name not in POSTERIORS:
        raise KeyError(f"unknown posterior {posterior_name!r}; known: {', '.join(POSTERIORS)}")


@functools.lru_cache(maxsize=32)
def _read_json(path: Path) -> Any:
    """Parse a JSON file, or the single JSON member of a `.zip` (cached; callers copy)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".json")]
            if len(members) != 1:
                raise ValueError(f"{path} should hold exactly one JSON file, has {members}")
            return json.loads(archive.read(members[0]))
    return json.loads(path.read_text())


def posterior_info(posterior_name: str) -> dict[str, Any]:
    """The posterior's metadata, `posteriors/NAME.json` (data_name, model_name, dimensions)."""
    _check_name(posterior_name)
    return dict(_read_json(posteriordb_root() / "posteriors" / f"{posterior_name}.json"))


def load_data(posterior_name: str) -> dict[str, Any]:
    """The posterior's data: JSON scalars as Python numbers, JSON lists as numpy arrays."""
    data_name = posterior_info(posterior_name)["data_name"]
    raw = _read_json(posteriordb_root() / "data" / f"{data_name}.json.zip")
    return {k: np.array(v) if isinstance(v, list) else v for k, v in raw.items()}


def problem(
    posterior_name: str,
    model: Callable[..., None],
    model_kwargs: Callable[[Mapping[str, Any]], dict[str, Any]],
    options: Mapping[str, Any],
    **model_options: Any,
) -> bayesover.Problem:
    """The `build` of a model file: `model`'s posterior on posterior `posterior_name`'s data.

    `model_kwargs` maps the posteriordb data dict to `model`'s keyword data, `model_options`
    are passed to `model` as well (e.g. a jitter); `options` are the `**options` that `build`
    was given, which must be empty (a `TypeError` otherwise). There is no held-out set.
    """
    if options:
        raise TypeError(f"unexpected options {sorted(options)}")
    data = model_kwargs(load_data(posterior_name))
    posterior = bayesover.Posterior.from_numpyro(model, **data, **model_options)
    return bayesover.Problem(posterior=posterior, test=None, name=posterior_name)


def reference_draws(posterior_name: str) -> dict[str, np.ndarray]:
    """Reference draws per scalar Stan name, each of shape (chains=10, draws=1000)."""
    _check_name(posterior_name)
    chains = _read_json(posteriordb_root() / "reference_draws" / f"{posterior_name}.json.zip")
    names = list(chains[0])
    return {n: np.array([chain[n] for chain in chains], dtype=np.float64) for n in names}


def reference_summary(posterior_name: str) -> dict[str, dict[str, float]]:
    """Per scalar name: `mean`, `mean_mcse`, `mean_squared`, `mean_squared_mcse`,
    `sd = sqrt(E[x^2] - E[x]^2)` (clipped at 0) and `draws_sd`, the standard deviation of the
    10,000 reference draws. E[x^2] is stored to 7 significant digits, so `sd` is off by a few
    percent where sd << |mean| (blr's beta: ~2%); `draws_sd` is exact."""
    _check_name(posterior_name)
    summary = posteriordb_root() / "summary"
    first = _read_json(summary / "mean_value" / f"{posterior_name}.json")
    second = _read_json(summary / "mean_squared_value" / f"{posterior_name}.json")
    pairs = zip(second["mean_squared_value"], second["mcse_mean"], strict=True)
    squared = dict(zip(second["names"], pairs, strict=True))
    draws = reference_draws(posterior_name)
    out: dict[str, dict[str, float]] = {}
    for name, mean, mcse in zip(
        first["names"], first["mean_value"], first["mcse_mean"], strict=True
    ):
        m2, m2_mcse = squared[name]
        out[name] = {
            "mean": float(mean),
            "mean_mcse": float(mcse),
            "mean_squared": float(m2),
            "mean_squared_mcse": float(m2_mcse),
            "sd": math.sqrt(max(float(m2) - float(mean) ** 2, 0.0)),
            "draws_sd": float(np.std(draws[name], ddof=1)),
        }
    return out


def _stan_indices(site_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """All 0-based indices of `site_shape` in Stan's column-major order (first index fastest)."""
    return [idx[::-1] for idx in np.ndindex(*site_shape[::-1])]


def flatten_draws(samples: Mapping[str, Any], *, sample_ndim: int = 2) -> dict[str, np.ndarray]:
    """Split site arrays of shape (*sample_shape, *site_shape) into scalar Stan names.

    A scalar site keeps its name (`mu`); an element `a[i, j]` becomes `"a[i+1,j+1]"`, listed
    in Stan's column-major order. Each value has shape `sample_shape` (the leading
    `sample_ndim` axes, e.g. (chain, draw)).
    """
    flat: dict[str, np.ndarray] = {}
    for name, value in samples.items():
        array = np.asarray(value)
        if array.ndim < sample_ndim:
            raise ValueError(f"site {name!r} has shape {array.shape}, < {sample_ndim} sample axes")
        site_shape = array.shape[sample_ndim:]
        if not site_shape:
            flat[name] = array
            continue
        for idx in _stan_indices(site_shape):
            key = f"{name}[{','.join(str(i + 1) for i in idx)}]"
            flat[key] = array[(Ellipsis, *idx)]  # type: ignore[arg-type]
    return flat


def unflatten_draws(flat: Mapping[str, Any], *, sample_ndim: int = 2) -> dict[str, np.ndarray]:
    """Inverse of `flatten_draws`: gather `"a[i,j]"` values into a site array `a` of shape
    (*sample_shape, max i, max j); names without brackets stay scalar sites."""
    sites: dict[str, dict[tuple[int, ...], np.ndarray]] = {}
    for key, value in flat.items():
        array = np.asarray(value)
        if array.ndim != sample_ndim:
            raise ValueError(f"{key!r} has shape {array.shape}, expected {sample_ndim} sample axes")
        match = _STAN_NAME.match(key)
        base, index = (key, ()) if match is None else (match["base"], _parse_index(match))
        elements = sites.setdefault(base, {})
        if elements and len(next(iter(elements))) != len(index):
            raise ValueError(f"site {base!r} mixes index lengths")
        elements[index] = array
    out: dict[str, np.ndarray] = {}
    for base, elements in sites.items():
        if () in elements:
            out[base] = elements[()]
            continue
        ndim = len(next(iter(elements)))
        site_shape = tuple(max(idx[d] for idx in elements) + 1 for d in range(ndim))
        if len(elements) != math.prod(site_shape):
            raise ValueError(f"site {base!r}: {len(elements)} elements for shape {site_shape}")
        first = next(iter(elements.values()))
        array = np.empty(first.shape + site_shape, dtype=np.result_type(*elements.values()))
        for idx, value in elements.items():
            array[(Ellipsis, *idx)] = value  # type: ignore[index]
        out[base] = array
    return out


def _parse_index(match: re.Match[str]) -> tuple[int, ...]:
    """0-based index tuple of a Stan name's 1-based `[i,j]`."""
    return tuple(int(i) - 1 for i in match["index"].split(","))
