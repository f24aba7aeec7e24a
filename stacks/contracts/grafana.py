"""Grafana: dashboard and folder UIDs, dashboards owned by one writer (file provisioning or the API), and
alert rule group intervals the scheduler accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import yaml

from stacks.contracts.rule import Context, Planned, Problem, Rule, get, items, known

DASHBOARD = "grafana:oss/dashboard:Dashboard"
FOLDER = "grafana:oss/folder:Folder"
RULE_GROUP = "grafana:alerting/ruleGroup:RuleGroup"
UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
BASE_INTERVAL_S = 10
DASHBOARD_PROVISIONING_DIR = "/etc/grafana/provisioning/dashboards"


def _dashboard_uid(resource: Planned) -> str | None:
    config = get(resource.inputs, "configJson")
    try:
        uid = json.loads(config).get("uid") if isinstance(config, str) else None
    except (ValueError, AttributeError):
        return None
    return uid if isinstance(uid, str) else None


def _uid(resource: Planned, _: Context) -> Sequence[Problem]:
    uid = _dashboard_uid(resource) if resource.type == DASHBOARD else get(resource.inputs, "uid")
    return [f"uid {uid!r}"] if isinstance(uid, str) and not UID.match(uid) else []


def _provider_paths(uploads: list[Mapping[str, Any]]) -> list[str]:
    """The `options.path` of every file provider in an uploaded dashboards provisioning file."""
    paths: list[str] = []
    for upload in uploads:
        file, content = get(upload, "file"), get(upload, "content")
        if not (isinstance(file, str) and isinstance(content, str) and file.startswith(DASHBOARD_PROVISIONING_DIR)):
            continue
        try:
            document: Any = yaml.safe_load(content)
        except yaml.YAMLError:
            continue
        for provider in items(document.get("providers") if isinstance(document, dict) else None):  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
            path = get(provider, "options", "path")
            if isinstance(path, str):
                paths.append(path)
    return paths


def provisioned_uids(resource: Planned) -> dict[str, str]:
    """UID -> file of each dashboard a container's uploads put where its provisioning reads dashboards."""
    uploads: list[Mapping[str, Any]] = [u for u in items(get(resource.inputs, "uploads")) if isinstance(u, Mapping)]
    roots = [PurePosixPath(p) for p in _provider_paths(uploads)]
    found: dict[str, str] = {}
    for upload in uploads:
        file, content = get(upload, "file"), get(upload, "content")
        if not (isinstance(file, str) and isinstance(content, str) and known(content)):
            continue
        if not any(PurePosixPath(file).is_relative_to(root) for root in roots):
            continue
        try:
            uid = json.loads(content).get("uid")
        except (ValueError, AttributeError):
            continue
        if isinstance(uid, str):
            found[uid] = file
    return found


def _one_writer(plan: Sequence[Planned], _: Context) -> Sequence[tuple[Planned, Problem]]:
    provisioned: dict[str, str] = {}
    for resource in plan:
        provisioned |= provisioned_uids(resource)
    found: list[tuple[Planned, Problem]] = []
    for dashboard in (r for r in plan if r.type == DASHBOARD):
        uid = _dashboard_uid(dashboard)
        if uid is not None and uid in provisioned:
            found.append((dashboard, f"uid {uid!r} is also provisioned from {provisioned[uid]}"))
    return found


def _interval(resource: Planned, _: Context) -> Sequence[Problem]:
    interval = get(resource.inputs, "intervalSeconds")
    if isinstance(interval, int | float) and (interval <= 0 or interval % BASE_INTERVAL_S):
        return [f"intervalSeconds {interval:g}"]
    return []


_GRAFANA = "github.com/grafana/grafana"
RULES: tuple[Rule, ...] = (
    Rule("GF-UID-001", "Grafana", "a dashboard or folder UID is 1-40 letters, digits, '-' and '_'",
         f"{_GRAFANA} pkg/util/shortid_generator.go (MaxUIDLength = 40; ErrUIDFormatInvalid \"invalid format "
         "of UID. Only letters, numbers, '-' and '_' are allowed\")", frozenset({DASHBOARD, FOLDER}), _uid),
    Rule("GF-PROV-001", "Grafana", "a dashboard UID is either file-provisioned or created through the API, "
         "not both", f"{_GRAFANA} pkg/services/dashboards/service/dashboard_service.go "
         "(ErrDashboardCannotSaveProvisionedDashboard: \"Cannot save provisioned dashboard\", HTTP 400)",
         check_plan=_one_writer),
    Rule("GF-RULEGROUP-001", "Grafana", "an alert rule group's interval is a positive multiple of the "
         "scheduler's 10 s base interval", f"{_GRAFANA} pkg/services/ngalert/models/alert_rule.go "
         "ValidateRuleGroupInterval (\"interval (%v) should be non-zero and divided exactly by scheduler "
         "interval: %v\"; [unified_alerting] base interval 10s)", frozenset({RULE_GROUP}), _interval),
)
