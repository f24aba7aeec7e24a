"""CR-PROBE-001 as Cloud Run documents it for services: no product limit on a startup probe's whole budget
(failureThreshold x periodSeconds), only per-field maxima in the v2 API's Probe message ("Maximum value for
startup probe is 240" for initialDelaySeconds and periodSeconds). The 240 s budget cited before came from the
jobs page, which now says 600 s; it stopped valid service probes (e.g. 100 x 3 s = 300 s)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stacks.contracts import RULES, check

[PROBE_RULE] = [r for r in RULES if r.id == "CR-PROBE-001"]


@dataclass(frozen=True)
class Service:
    type: str = "gcp:cloudrunv2/service:Service"
    name: str = "engine"
    inputs: dict[str, Any] = field(default_factory=dict[str, Any])


def _with_startup_probe(**probe: int) -> Service:
    return Service(inputs={"template": {"maxInstanceRequestConcurrency": 80, "containers": [{
        "name": "app", "ports": {"containerPort": 8000}, "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
        "startupProbe": {"timeoutSeconds": 2, **probe}}]}})


def test_a_service_probe_longer_than_240_s_in_all_is_not_refused() -> None:
    # 100 x 3 s = 300 s, 200 x 3 s = 600 s: each field within the Probe message's maxima.
    for failures in (100, 200):
        assert check([_with_startup_probe(failureThreshold=failures, periodSeconds=3)], rules=[PROBE_RULE]) == []


def test_a_startup_period_or_initial_delay_above_240_s_is_refused() -> None:
    # v2 Probe: periodSeconds and initialDelaySeconds, "Maximum value for startup probe is 240".
    for probe in ({"failureThreshold": 1, "periodSeconds": 241}, {"initialDelaySeconds": 241, "periodSeconds": 3}):
        found = check([_with_startup_probe(**probe)], rules=[PROBE_RULE])
        assert [v.rule.id for v in found] == ["CR-PROBE-001"], probe
    assert check([_with_startup_probe(initialDelaySeconds=240, periodSeconds=240)], rules=[PROBE_RULE]) == []


def test_the_rule_cites_the_services_page_and_the_probe_message_not_the_jobs_budget() -> None:
    assert "configuring/healthchecks" in PROBE_RULE.source
    assert "jobs/healthchecks" not in PROBE_RULE.source
    assert "Maximum value for startup probe is 240" in PROBE_RULE.source
