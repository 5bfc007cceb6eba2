"""Samplers: one `(state, info)` protocol for HMC/NUTS (BlackJAX) and SG-MCMC (own loop)."""

from bayesover.samplers.base import AbstractSampler as AbstractSampler
from bayesover.samplers.base import Algorithm as Algorithm
from bayesover.samplers.hmc import HMC as HMC
from bayesover.samplers.hmc import NUTS as NUTS
from bayesover.samplers.sgmcmc import SGHMC as SGHMC
from bayesover.samplers.sgmcmc import SGLD as SGLD
from bayesover.samplers.sgmcmc import pSGLD as pSGLD
