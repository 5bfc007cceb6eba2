"""Ensemble: posterior draws or ensemble members as one stacked pytree; their mixture
predictive, distillation into one network, and the metrics that score predictions."""

from bayesover.ensemble import metrics as metrics
from bayesover.ensemble._distill import DistillResult as DistillResult
from bayesover.ensemble._distill import distill as distill
from bayesover.ensemble._ensemble import Ensemble as Ensemble
from bayesover.ensemble._predictive import Predictive as Predictive
from bayesover.ensemble._stored import StoredEnsemble as StoredEnsemble
from bayesover.ensemble._stored import StoredPredictive as StoredPredictive
