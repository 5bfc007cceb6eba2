"""bayesover: Equinox networks as Bayesian posteriors, sampled with BlackJAX, read with ArviZ.

The public names load lazily (PEP 562 `__getattr__`): `import bayesover` costs nothing, and
JAX, BlackJAX, NumPyro and ArviZ are imported on the first use of a name that needs them, so
the command line answers `--help` and argument errors at once. `import bayesover as bo;
bo.sample(...)` works as with eager imports; type checkers read the imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None re-exports the module itself.
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "builders": ("bayesover.builders", None),
    "data": ("bayesover.data", None),
    "lens": ("bayesover.lens", None),
    "likelihoods": ("bayesover.likelihoods", None),
    "metrics": ("bayesover.metrics", None),
    "priors": ("bayesover.priors", None),
    "samplers": ("bayesover.samplers", None),
    "schedules": ("bayesover.schedules", None),
    "Data": ("bayesover.data", "Data"),
    "deep_ensemble": ("bayesover._deep_ensemble", "deep_ensemble"),
    "from_datatree": ("bayesover.diagnostics.datatree", "from_datatree"),
    "load_datatree": ("bayesover.diagnostics.datatree", "load_datatree"),
    "save_datatree": ("bayesover.diagnostics.datatree", "save_datatree"),
    "to_datatree": ("bayesover.diagnostics.datatree", "to_datatree"),
    "report": ("bayesover.diagnostics.report", "report"),
    "Diagnostics": ("bayesover.diagnostics.verdict", "Diagnostics"),
    "diagnose": ("bayesover.diagnostics.verdict", "diagnose"),
    "DistillResult": ("bayesover._distill", "DistillResult"),
    "distill": ("bayesover._distill", "distill"),
    "Ensemble": ("bayesover.ensemble", "Ensemble"),
    "Model": ("bayesover.model", "Model"),
    "MAPResult": ("bayesover.optimize", "MAPResult"),
    "map_estimate": ("bayesover.optimize", "map_estimate"),
    "AbstractPosterior": ("bayesover.posterior", "AbstractPosterior"),
    "NumPyroPosterior": ("bayesover.posterior", "NumPyroPosterior"),
    "Posterior": ("bayesover.posterior", "Posterior"),
    "Problem": ("bayesover.problem", "Problem"),
    "sample": ("bayesover._sample", "sample"),
    "HMC": ("bayesover.samplers", "HMC"),
    "NUTS": ("bayesover.samplers", "NUTS"),
    "SGHMC": ("bayesover.samplers", "SGHMC"),
    "SGLD": ("bayesover.samplers", "SGLD"),
    "pSGLD": ("bayesover.samplers", "pSGLD"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'bayesover' has no attribute {name!r}") from None
    # `import arviz` leaves `numpyro` in sys.modules as a lazy module (arviz_base uses
    # lazy_loader); a first `import numpyro.distributions` then leaves that package without its
    # submodule attributes and `numpyro.factor` raises AttributeError. Import it properly first.
    importlib.import_module("numpyro")
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
    from bayesover import builders as builders
    from bayesover import data as data
    from bayesover import lens as lens
    from bayesover import likelihoods as likelihoods
    from bayesover import metrics as metrics
    from bayesover import priors as priors
    from bayesover import samplers as samplers
    from bayesover import schedules as schedules
    from bayesover._deep_ensemble import deep_ensemble as deep_ensemble
    from bayesover._distill import DistillResult as DistillResult
    from bayesover._distill import distill as distill
    from bayesover._sample import sample as sample
    from bayesover.data import Data as Data
    from bayesover.diagnostics.datatree import from_datatree as from_datatree
    from bayesover.diagnostics.datatree import load_datatree as load_datatree
    from bayesover.diagnostics.datatree import save_datatree as save_datatree
    from bayesover.diagnostics.datatree import to_datatree as to_datatree
    from bayesover.diagnostics.report import report as report
    from bayesover.diagnostics.verdict import Diagnostics as Diagnostics
    from bayesover.diagnostics.verdict import diagnose as diagnose
    from bayesover.ensemble import Ensemble as Ensemble
    from bayesover.model import Model as Model
    from bayesover.optimize import MAPResult as MAPResult
    from bayesover.optimize import map_estimate as map_estimate
    from bayesover.posterior import AbstractPosterior as AbstractPosterior
    from bayesover.posterior import NumPyroPosterior as NumPyroPosterior
    from bayesover.posterior import Posterior as Posterior
    from bayesover.problem import Problem as Problem
    from bayesover.samplers import HMC as HMC
    from bayesover.samplers import NUTS as NUTS
    from bayesover.samplers import SGHMC as SGHMC
    from bayesover.samplers import SGLD as SGLD
    from bayesover.samplers import pSGLD as pSGLD
