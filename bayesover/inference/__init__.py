"""Inference: samplers (one `(state, info)` protocol), the sampling driver `sample`, MAP
optimisation and deep ensembles. Each returns a `bo.Ensemble` (or a MAP result)."""

from bayesover.inference import samplers as samplers
from bayesover.inference import schedules as schedules
from bayesover.inference._deep_ensemble import deep_ensemble as deep_ensemble
from bayesover.inference._optimize import MAPResult as MAPResult
from bayesover.inference._optimize import map_estimate as map_estimate
from bayesover.inference._sample import sample as sample
