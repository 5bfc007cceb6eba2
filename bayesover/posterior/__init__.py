"""Posterior: log density, minibatch estimator and NumPyro bridge of a model and its data."""

from bayesover.posterior._posterior import AbstractPosterior as AbstractPosterior
from bayesover.posterior._posterior import NumPyroPosterior as NumPyroPosterior
from bayesover.posterior._posterior import Posterior as Posterior
