"""The command line `bayesover demo | sample | diagnose | report`, and `builders`, which turns
a model file (`build(seed, **options) -> bo.Problem`) into a problem.

Importing this package imports no JAX: `--help` and argument errors answer at once.
"""

from bayesover.cli import builders as builders
from bayesover.cli._main import main as main
