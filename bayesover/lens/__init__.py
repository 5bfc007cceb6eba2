"""The universality lens: evidence, regret and the weight of the hypothesis (Feder, Urbanke and
Fogel, 2025). See the docs page "The universality lens"."""

from bayesover.lens.target import Target as Target
from bayesover.lens.target import as_target as as_target
from bayesover.lens import closed_form as closed_form
from bayesover.lens.result import EvidenceResult as EvidenceResult
from bayesover.lens.prequential import prequential_log_evidence as prequential_log_evidence
from bayesover.lens.regret import RegretResult as RegretResult
from bayesover.lens.regret import expected_regret as expected_regret
from bayesover.lens.regret import regret as regret
from bayesover.lens.attach import attach as attach
