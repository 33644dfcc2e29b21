"""`python -m fares.cli`: the `fares` command."""

import sys

from fares.cli.main import main

sys.exit(main())
