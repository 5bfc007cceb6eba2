"""bayesover: Equinox networks as Bayesian posteriors, sampled with BlackJAX, read with ArviZ."""

# `import arviz` leaves `numpyro` in sys.modules as a lazy module (arviz_base uses lazy_loader);
# a first `import numpyro.distributions` then leaves that package without its submodule
# attributes and `numpyro.factor` (used for every constrained site) raises AttributeError.
# Importing the top-level package first loads it properly.
import numpyro as _numpyro  # noqa: F401

from bayesover import builders as builders
from bayesover import data as data
from bayesover import lens as lens
from bayesover import likelihoods as likelihoods
from bayesover import metrics as metrics
from bayesover import priors as priors
from bayesover import samplers as samplers
from bayesover import schedules as schedules
from bayesover.data import Data as Data
from bayesover.deep_ensemble import deep_ensemble as deep_ensemble
from bayesover.diagnostics.datatree import from_datatree as from_datatree
from bayesover.diagnostics.datatree import load_datatree as load_datatree
from bayesover.diagnostics.datatree import save_datatree as save_datatree
from bayesover.diagnostics.datatree import to_datatree as to_datatree
from bayesover.diagnostics.report import report as report
from bayesover.diagnostics.verdict import Diagnostics as Diagnostics
from bayesover.diagnostics.verdict import diagnose as diagnose
from bayesover.distill import DistillResult as DistillResult
from bayesover.distill import distill as distill
from bayesover.ensemble import Ensemble as Ensemble
from bayesover.model import Model as Model
from bayesover.optimize import MAPResult as MAPResult
from bayesover.optimize import map_estimate as map_estimate
from bayesover.posterior import AbstractPosterior as AbstractPosterior
from bayesover.posterior import NumPyroPosterior as NumPyroPosterior
from bayesover.posterior import Posterior as Posterior
from bayesover.problem import Problem as Problem
from bayesover.sample import sample as sample
from bayesover.samplers import HMC as HMC
from bayesover.samplers import NUTS as NUTS
from bayesover.samplers import SGHMC as SGHMC
from bayesover.samplers import SGLD as SGLD
from bayesover.samplers import pSGLD as pSGLD

__version__ = "0.1.0"
