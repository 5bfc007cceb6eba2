"""`python -m bayesover.cli ...` runs the command line."""

import sys

from bayesover.cli._main import main

sys.exit(main())
