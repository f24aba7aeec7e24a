"""The bootstrap program's entry point under the Pulumi CLI (`pulumi -C infra/bootstrap up -s ENV`): the CLI runs
this directory; the repository root goes on the path so `infra` imports as it does for the platform's program."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pulumi

from infra.bootstrap import run

run(pulumi.get_stack())
