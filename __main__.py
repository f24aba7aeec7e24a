"""The Pulumi program. `Pulumi.yaml` names no `main:`, so the CLI runs this directory: the program,
its provider plugins (docker, the Python dynamic provider) and every relative path they resolve all
start from the project root (pulumi/pulumi pkg/engine/project.go `getPwdMain`).
"""

from infra.program import run_under_pulumi

run_under_pulumi()
