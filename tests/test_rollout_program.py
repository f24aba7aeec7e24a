"""The program owns the engine's traffic block (D7, D8): prod pins all traffic to the revision its last
rollout promoted, which it reads back from its own outputs (a StackReference to itself), and tags the
newest revision `canary` at 0 %, so a `pulumi up` never undoes what a rollout left; the deploy's
promotion `up` pins the promoted revision. Run under the mock engine, as `plan` runs it."""

from __future__ import annotations

from typing import Any

import pytest

from components.backends.cloudrun import traffic
from infra.ops.rollout import PROMOTE_ENV, SERVING_OUTPUT
from infra.plan import Plan, PlanMocks
from tests.conftest import PROJECT_DIR, plan_of

STABLE = "commission-engine-00007-kez"


def _engine_traffic(plan: Plan) -> Any:
    services = [r for r in plan.resources if r.type == "gcp:cloudrunv2/service:Service"
                and r.inputs.get("name") == "commission-engine" and r.inputs["location"] != "us-east1"]
    assert len(services) == 1
    return services[0].inputs["traffics"]


def _with_previous_outputs(monkeypatch: pytest.MonkeyPatch, outputs: dict[str, Any]) -> list[str]:
    """The stack's last outputs, as a StackReference reads them; returns the stacks referenced."""
    read: list[str] = []
    original = PlanMocks.new_resource

    def new_resource(self: PlanMocks, args: Any) -> tuple[str | None, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            read.append(args.inputs["name"])
            return args.inputs["name"], {"name": args.inputs["name"], "outputs": outputs, "secretOutputNames": []}
        return original(self, args)

    monkeypatch.setattr(PlanMocks, "new_resource", new_resource)
    return read


def test_prod_pins_the_revision_its_last_rollout_promoted_and_tags_the_next_canary(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROMOTE_ENV, raising=False)
    referenced = _with_previous_outputs(monkeypatch, {SERVING_OUTPUT: STABLE})

    plan = plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")

    assert _engine_traffic(plan) == [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": STABLE, "percent": 100, "tag": "stable"},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 0, "tag": "canary"}]
    assert referenced == ["organization/platform/prod"], "the stack reads its own outputs"
    assert plan.outputs[SERVING_OUTPUT] == STABLE, "and exports them again for the next deploy"


def test_the_promotion_up_pins_the_promoted_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_previous_outputs(monkeypatch, {SERVING_OUTPUT: STABLE})
    monkeypatch.setenv(PROMOTE_ENV, "commission-engine-00008-hwm")

    plan = plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")

    assert _engine_traffic(plan) == traffic("commission-engine-00008-hwm")
    assert plan.outputs[SERVING_OUTPUT] == "commission-engine-00008-hwm"


def test_before_any_rollout_the_latest_revision_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROMOTE_ENV, raising=False)
    _with_previous_outputs(monkeypatch, {})

    plan = plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")

    assert _engine_traffic(plan) == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]


def test_a_promotion_that_is_not_a_revision_name_stops_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROMOTE_ENV, "commission-engine-00008-hwm; rm -rf /")

    with pytest.raises(Exception, match="not a Cloud Run revision name"):
        plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")
