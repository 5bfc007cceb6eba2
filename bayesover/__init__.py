"""bayesover: Equinox networks as Bayesian posteriors, sampled with BlackJAX, read with ArviZ."""

from bayesover import builders as builders
from bayesover import data as data
from bayesover import likelihoods as likelihoods
from bayesover import priors as priors
from bayesover import samplers as samplers
from bayesover import schedules as schedules
from bayesover.data import Data as Data
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
