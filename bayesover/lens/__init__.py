"""The universality lens: evidence, regret and the weight of the hypothesis (Feder, Urbanke and
Fogel, 2025). See the docs page "The universality lens"."""

from bayesover.lens import closed_form as closed_form
from bayesover.lens._ais import ais_log_evidence as ais_log_evidence
from bayesover.lens._attach import attach as attach
from bayesover.lens._bounds import Bounds as Bounds
from bayesover.lens._bounds import bounds as bounds
from bayesover.lens._effective_dimension import EffectiveDimension as EffectiveDimension
from bayesover.lens._effective_dimension import effective_dimension as effective_dimension
from bayesover.lens._ensemble_regret import EnsembleRegret as EnsembleRegret
from bayesover.lens._ensemble_regret import cumulative_regret as cumulative_regret
from bayesover.lens._ensemble_regret import ensemble_regret as ensemble_regret
from bayesover.lens._evidence import log_evidence as log_evidence
from bayesover.lens._kl import GaussianOutputKL as GaussianOutputKL
from bayesover.lens._kl import SampleKL as SampleKL
from bayesover.lens._kl import kl_from_sample as kl_from_sample
from bayesover.lens._kl import kl_gaussian_outputs as kl_gaussian_outputs
from bayesover.lens._laplace import laplace_log_evidence as laplace_log_evidence
from bayesover.lens._learning_coefficient import LearningCoefficient as LearningCoefficient
from bayesover.lens._learning_coefficient import learning_coefficient as learning_coefficient
from bayesover.lens._nested import nested_log_evidence as nested_log_evidence
from bayesover.lens._prequential import prequential_log_evidence as prequential_log_evidence
from bayesover.lens._prior_mc import prior_log_evidence as prior_log_evidence
from bayesover.lens._regret import RegretResult as RegretResult
from bayesover.lens._regret import expected_regret as expected_regret
from bayesover.lens._regret import regret as regret
from bayesover.lens._result import EvidenceResult as EvidenceResult
from bayesover.lens._smc import smc_log_evidence as smc_log_evidence
from bayesover.lens._target import Target as Target
from bayesover.lens._target import as_target as as_target
from bayesover.lens._weight import WeightCurve as WeightCurve
from bayesover.lens._weight import weight_curve as weight_curve
