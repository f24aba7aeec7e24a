"""The bootstrap: a Pulumi program of its own (`infra/bootstrap/Pulumi.yaml`, project `platform-bootstrap`, one
stack per environment), run once per environment by a human with admin rights before the environment's first
`pulumi up` (docs/first-deploy.md), and planned offline like the stacks: `python -m infra bootstrap-plan ENV`.

Why here: the top level is fixed by the design card (one project, `Pulumi.<env>.yaml` per environment), and
`infra/` is where programs and their CLIs live; a room of its own under it keeps the bootstrap's project file,
stack files and program apart from the platform's, with the admin credentials only its stacks hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[2]
BOOTSTRAP_DIR = Path(__file__).resolve().parent


def planned_of(model: Any, raw: Any, environment: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, inputs) of every custom resource the environment's plan declares (in this process)."""
    from infra.plan import run_program

    plan = run_program(model, raw, environment)
    return [(r.type, {"phase": r.inputs.get("phase"), "role": r.inputs.get("role")})
            for r in plan.resources if r.custom]


def planned_in_subprocess(environment: str) -> list[tuple[str, dict[str, Any]]]:
    """The same, from a fresh interpreter: under the Pulumi CLI the bootstrap's own run owns this one's engine."""
    out = subprocess.run([sys.executable, "-m", "infra.bootstrap.stack_types", environment], cwd=PROJECT_DIR,
                         check=True, capture_output=True, text=True).stdout
    return [(str(t), dict(i)) for t, i in json.loads(out)]


def run(environment: str, planned: Sequence[tuple[str, Mapping[str, Any]]] | None = None) -> None:
    """The program body: the environment's validated model, the bootstrap's config, then the declarations."""
    from infra.bootstrap.program import declare, read_config
    from infra.config import load_model
    from infra.stackfile import read_stack_file

    model = load_model(read_stack_file(PROJECT_DIR / f"Pulumi.{environment}.yaml", environment))
    declare(environment, model, read_config(environment, model),
            planned if planned is not None else planned_in_subprocess(environment))
