"""Samplers: one `(state, info)` protocol for HMC/NUTS (BlackJAX) and SG-MCMC (own loop)."""

from bayesover.inference.samplers._base import AbstractSampler as AbstractSampler
from bayesover.inference.samplers._base import Algorithm as Algorithm
from bayesover.inference.samplers._hmc import HMC as HMC
from bayesover.inference.samplers._hmc import NUTS as NUTS
from bayesover.inference.samplers._mclmc import MCLMC as MCLMC
from bayesover.inference.samplers._mclmc import AdjustedMCLMC as AdjustedMCLMC
from bayesover.inference.samplers._sgmcmc import SGHMC as SGHMC
from bayesover.inference.samplers._sgmcmc import SGLD as SGLD
from bayesover.inference.samplers._sgmcmc import pSGLD as pSGLD
