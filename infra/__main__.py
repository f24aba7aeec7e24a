"""`python -m infra ...`: the command line (`plan`, `compose`, `policy-config`). The Pulumi program
itself is the project root's `__main__.py`."""

import sys

from infra.cli import main

sys.exit(main())
