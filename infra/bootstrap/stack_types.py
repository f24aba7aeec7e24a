"""`python -m infra.bootstrap.stack_types ENV`: the (type, inputs) pairs the bootstrap derives access from, as
JSON (what `infra.bootstrap.planned_in_subprocess` reads)."""

from __future__ import annotations

import json
import sys

from infra.bootstrap import PROJECT_DIR, planned_of
from infra.config import load_model
from infra.stackfile import read_stack_file

if __name__ == "__main__":
    environment = sys.argv[1]
    raw = read_stack_file(PROJECT_DIR / f"Pulumi.{environment}.yaml", environment)
    print(json.dumps(planned_of(load_model(raw), raw, environment)))
