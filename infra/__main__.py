"""Two entry points in one file, because Pulumi runs the `main:` directory's `__main__.py`:

- `pulumi up` / `pulumi preview` execute this directory as a script (no package): the program;
- `python -m infra ...` runs it as the `infra` package's main module: the command line (`plan`).
"""

import sys

if __package__ == "infra":
    from infra.cli import main

    sys.exit(main())
else:
    from infra.program import run_under_pulumi

    run_under_pulumi()
