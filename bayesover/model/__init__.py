"""Model: an Equinox network with a prior over its weights and a likelihood (`bo.Model`).

`priors` and `likelihoods` are the public namespaces `bo.priors` and `bo.likelihoods`;
`Problem` is what a model file's `build(seed, **options)` returns.
"""

from bayesover.model import likelihoods as likelihoods
from bayesover.model import priors as priors
from bayesover.model._model import Model as Model
from bayesover.model._model import Position as Position
from bayesover.model._model import check_position as check_position
from bayesover.model._problem import Problem as Problem
