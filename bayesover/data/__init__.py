r"""Data sets: a validated `(inputs, targets)` container, splits, scaling, minibatches and loaders.

- `_container`: `Data`, the container (checks, `split`, `take`, minibatches);
- `_standardise`: `Standardizer`, the per-feature affine scaling fitted on training data;
- `_loaders`: `load` and the tables of scikit-learn's bundled data sets (offline);
- `_synthetic`: `gap_regression_1d`, `two_moons`, `teacher_student`.
"""

from bayesover.data._container import Data as Data
from bayesover.data._loaders import DATASETS as DATASETS
from bayesover.data._loaders import NUM_CLASSES as NUM_CLASSES
from bayesover.data._loaders import TASKS as TASKS
from bayesover.data._loaders import load as load
from bayesover.data._loaders import num_classes as num_classes
from bayesover.data._standardise import Standardizer as Standardizer
from bayesover.data._synthetic import gap_function as gap_function
from bayesover.data._synthetic import gap_regression_1d as gap_regression_1d
from bayesover.data._synthetic import teacher_student as teacher_student
from bayesover.data._synthetic import two_moons as two_moons

__all__ = [
    "DATASETS",
    "NUM_CLASSES",
    "TASKS",
    "Data",
    "Standardizer",
    "gap_function",
    "gap_regression_1d",
    "load",
    "num_classes",
    "teacher_student",
    "two_moons",
]
