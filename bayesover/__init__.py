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

# public name -> (module, attribute); attribute None re-exports the module itself. In the
# order of the flow: model -> posterior -> inference -> ensemble -> {lens, diagnostics} -> cli.
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "builders": ("bayesover.cli.builders", None),
    "data": ("bayesover.data", None),
    "lens": ("bayesover.lens", None),
    "likelihoods": ("bayesover.model.likelihoods", None),
    "metrics": ("bayesover.ensemble.metrics", None),
    "priors": ("bayesover.model.priors", None),
    "samplers": ("bayesover.inference.samplers", None),
    "schedules": ("bayesover.inference.schedules", None),
    "Model": ("bayesover.model._model", "Model"),
    "Problem": ("bayesover.model._problem", "Problem"),
    "Data": ("bayesover.data._container", "Data"),
    "AbstractPosterior": ("bayesover.posterior._posterior", "AbstractPosterior"),
    "NumPyroPosterior": ("bayesover.posterior._posterior", "NumPyroPosterior"),
    "Posterior": ("bayesover.posterior._posterior", "Posterior"),
    "HMC": ("bayesover.inference.samplers._hmc", "HMC"),
    "NUTS": ("bayesover.inference.samplers._hmc", "NUTS"),
    "MCLMC": ("bayesover.inference.samplers._mclmc", "MCLMC"),
    "AdjustedMCLMC": ("bayesover.inference.samplers._mclmc", "AdjustedMCLMC"),
    "SGHMC": ("bayesover.inference.samplers._sgmcmc", "SGHMC"),
    "SGLD": ("bayesover.inference.samplers._sgmcmc", "SGLD"),
    "pSGLD": ("bayesover.inference.samplers._sgmcmc", "pSGLD"),
    "sample": ("bayesover.inference._sample", "sample"),
    "MAPResult": ("bayesover.inference._optimize", "MAPResult"),
    "map_estimate": ("bayesover.inference._optimize", "map_estimate"),
    "deep_ensemble": ("bayesover.inference._deep_ensemble", "deep_ensemble"),
    "Ensemble": ("bayesover.ensemble._ensemble", "Ensemble"),
    "DistillResult": ("bayesover.ensemble._distill", "DistillResult"),
    "distill": ("bayesover.ensemble._distill", "distill"),
    "from_datatree": ("bayesover.diagnostics._datatree", "from_datatree"),
    "load_datatree": ("bayesover.diagnostics._datatree", "load_datatree"),
    "save_datatree": ("bayesover.diagnostics._datatree", "save_datatree"),
    "to_datatree": ("bayesover.diagnostics._datatree", "to_datatree"),
    "Diagnostics": ("bayesover.diagnostics._verdict", "Diagnostics"),
    "diagnose": ("bayesover.diagnostics._verdict", "diagnose"),
    "report": ("bayesover.diagnostics._report", "report"),
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
    from bayesover import data as data
    from bayesover import lens as lens
    from bayesover.cli import builders as builders
    from bayesover.data._container import Data as Data
    from bayesover.diagnostics._datatree import from_datatree as from_datatree
    from bayesover.diagnostics._datatree import load_datatree as load_datatree
    from bayesover.diagnostics._datatree import save_datatree as save_datatree
    from bayesover.diagnostics._datatree import to_datatree as to_datatree
    from bayesover.diagnostics._report import report as report
    from bayesover.diagnostics._verdict import Diagnostics as Diagnostics
    from bayesover.diagnostics._verdict import diagnose as diagnose
    from bayesover.ensemble import metrics as metrics
    from bayesover.ensemble._distill import DistillResult as DistillResult
    from bayesover.ensemble._distill import distill as distill
    from bayesover.ensemble._ensemble import Ensemble as Ensemble
    from bayesover.inference import samplers as samplers
    from bayesover.inference import schedules as schedules
    from bayesover.inference._deep_ensemble import deep_ensemble as deep_ensemble
    from bayesover.inference._optimize import MAPResult as MAPResult
    from bayesover.inference._optimize import map_estimate as map_estimate
    from bayesover.inference._sample import sample as sample
    from bayesover.inference.samplers._hmc import HMC as HMC
    from bayesover.inference.samplers._hmc import NUTS as NUTS
    from bayesover.inference.samplers._mclmc import MCLMC as MCLMC
    from bayesover.inference.samplers._mclmc import AdjustedMCLMC as AdjustedMCLMC
    from bayesover.inference.samplers._sgmcmc import SGHMC as SGHMC
    from bayesover.inference.samplers._sgmcmc import SGLD as SGLD
    from bayesover.inference.samplers._sgmcmc import pSGLD as pSGLD
    from bayesover.model import likelihoods as likelihoods
    from bayesover.model import priors as priors
    from bayesover.model._model import Model as Model
    from bayesover.model._problem import Problem as Problem
    from bayesover.posterior._posterior import AbstractPosterior as AbstractPosterior
    from bayesover.posterior._posterior import NumPyroPosterior as NumPyroPosterior
    from bayesover.posterior._posterior import Posterior as Posterior
