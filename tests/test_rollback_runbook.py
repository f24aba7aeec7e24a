"""#25.7: every command of docs/runbooks/rollback.md names what prod and staging really are: the gcloud
commands their project, region and Cloud Run service; `--target` URNs and `jq` names resources the plan
declares; the Cloudflare API calls prod's zone id, a setting and a phase the stack manages; the Railway calls
staging's project and environment with documents Railway's schema accepts."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
from graphql import build_schema, parse, validate

from infra.plan import Plan
from tests.conftest import PROJECT_DIR, stack_document

RUNBOOK = PROJECT_DIR / "docs" / "runbooks" / "rollback.md"


def _commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def _flags(argv: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            flags[arg] = argv[i + 1]
    return flags


def test_gcloud_commands_name_prods_project_regions_and_engine_service(committed_plans: dict[str, Plan]) -> None:
    gcp = stack_document("prod")["config"]["platform:gcp"]
    services = {(r.inputs["name"], r.inputs["location"]) for r in committed_plans["prod"].resources
                if r.type == "gcp:cloudrunv2/service:Service"}
    gclouds = [shlex.split(c) for c in _commands() if c.startswith("gcloud ")]

    assert len(gclouds) >= 3
    for argv in gclouds:
        flags = _flags(argv)
        assert flags["--project"] == gcp["project"], argv
        assert flags["--region"] == gcp["region"], argv
        service = flags.get("--service") or argv[4]  # `gcloud run services <verb> NAME`
        assert (service, flags["--region"]) in services, argv
    assert "--region us-east1" in RUNBOOK.read_text() and gcp["failoverRegion"] == "us-east1"
    assert ("commission-engine", gcp["failoverRegion"]) in services


def test_pulumi_targets_and_outputs_are_in_prods_plan(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    urns = {r.urn for r in plan.resources}
    text = "\n".join(_commands())
    targets = re.findall(r"--target '([^']+)'", text)

    assert targets
    assert set(targets) <= urns
    for name in re.findall(r'select\(\.name == "([^"]+)"\)', text):
        assert any(r.name == name for r in plan.resources), name
    for output in re.findall(r"stack output (\w+)", text):
        assert output in plan.outputs, output


def test_cloudflare_calls_name_prods_zone_and_what_the_stack_manages(committed_plans: dict[str, Plan]) -> None:
    zone_id = stack_document("prod")["config"]["platform:zone"]["zoneId"]
    resources = committed_plans["prod"].resources
    settings = {r.inputs["settingId"] for r in resources if r.type == "cloudflare:index/zoneSetting:ZoneSetting"}
    phases = {r.inputs["phase"] for r in resources if r.type == "cloudflare:index/ruleset:Ruleset"}
    urls = re.findall(r"https://api\.cloudflare\.com/client/v4/zones/([^/\s]+)/(\S+)", "\n".join(_commands()))

    assert urls
    for zone, path in urls:
        assert zone == zone_id
        setting = re.match(r"settings/(\w+)", path)
        phase = re.match(r"rulesets/phases/(\w+)/", path)
        assert setting or phase, path
        assert (setting is None or setting.group(1) in settings) and (phase is None or phase.group(1) in phases), path


@pytest.mark.parametrize("kind", ["query", "mutation"])
def test_railway_calls_are_valid_for_stagings_project(kind: str) -> None:
    railway = stack_document("staging")["config"]["platform:railway"]
    schema = build_schema((PROJECT_DIR / "tests/schemas/railway-public-api.graphql").read_text(), assume_valid=True)
    bodies: list[dict[str, Any]] = [json.loads(shlex.split(c)[shlex.split(c).index("-d") + 1])
                                    for c in _commands() if "backboard.railway.com" in c]

    [body] = [b for b in bodies if b["query"].startswith(kind)]
    assert validate(schema, parse(body["query"])) == []
    if kind == "query":
        assert body["variables"]["input"] == {"projectId": railway["projectId"],
                                              "environmentId": railway["environmentId"]}
