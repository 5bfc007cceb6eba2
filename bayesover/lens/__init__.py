"""The universality lens: evidence, regret and the weight of the hypothesis (Feder, Urbanke and
Fogel, 2025). See the docs page "The universality lens"."""

from bayesover.lens import closed_form as closed_form
from bayesover.lens.attach import attach as attach
from bayesover.lens.bounds import Bounds as Bounds
from bayesover.lens.bounds import bounds as bounds
from bayesover.lens.evidence import ais_log_evidence as ais_log_evidence
from bayesover.lens.evidence import laplace_log_evidence as laplace_log_evidence
from bayesover.lens.evidence import log_evidence as log_evidence
from bayesover.lens.evidence import nested_log_evidence as nested_log_evidence
from bayesover.lens.evidence import prior_log_evidence as prior_log_evidence
from bayesover.lens.evidence import smc_log_evidence as smc_log_evidence
from bayesover.lens.flatness import EffectiveDimension as EffectiveDimension
from bayesover.lens.flatness import LearningCoefficient as LearningCoefficient
from bayesover.lens.flatness import effective_dimension as effective_dimension
from bayesover.lens.flatness import learning_coefficient as learning_coefficient
from bayesover.lens.kl import GaussianOutputKL as GaussianOutputKL
from bayesover.lens.kl import SampleKL as SampleKL
from bayesover.lens.kl import kl_from_sample as kl_from_sample
from bayesover.lens.kl import kl_gaussian_outputs as kl_gaussian_outputs
from bayesover.lens.prequential import prequential_log_evidence as prequential_log_evidence
from bayesover.lens.regret import RegretResult as RegretResult
from bayesover.lens.regret import expected_regret as expected_regret
from bayesover.lens.regret import regret as regret
from bayesover.lens.result import EvidenceResult as EvidenceResult
from bayesover.lens.target import Target as Target
from bayesover.lens.target import as_target as as_target
from bayesover.lens.weight import WeightCurve as WeightCurve
from bayesover.lens.weight import weight_curve as weight_curve
