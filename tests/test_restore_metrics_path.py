"""The restore test's metrics reach the Grafana its alerts query (A5, C7).

PocketBase's image runs the restore test itself (components/pocketbase/drtool.py `restore-test`) and
pushes `backup_restore_last_success_timestamp_seconds` and `pocketbase_replica_lag_seconds` over
OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`: a job is not scraped. Without that variable the gauges are
printed and go nowhere, and BackupRestoreTestStale pages 8 days after every deploy although the
restores succeed. Prod's PocketBase is a VM without an external address: Private Google Access reaches
Google's APIs (the image, the replica bucket, Secret Manager) but not Grafana Cloud, so its subnetwork
needs Cloud NAT to send anything there.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from components.pocketbase import drtool
from infra.plan import Plan
from tests.conftest import stack_document
from tests.environment import service_environment


def test_staging_pocketbase_pushes_to_its_grafana_cloud_with_the_token_as_a_secret(
        committed_plans: dict[str, Plan]) -> None:
    env = service_environment(committed_plans["staging"], "pocketbase")
    grafana = stack_document("staging")["config"]["platform:grafanaCloud"]

    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"][0] == grafana["otlpEndpoint"]
    headers, secret = env["OTEL_EXPORTER_OTLP_HEADERS"]
    assert secret and str(headers).startswith("Authorization=Basic%20")


def _one(plan: Plan, type_: str, name: str) -> dict[str, Any]:
    found = [r.wire_inputs for r in plan.resources if r.type == type_ and r.name == name]
    assert len(found) == 1, f"{type_} {name}: {len(found)} declared"
    return found[0]


@pytest.mark.parametrize("vm", ["database", "database-standby"])
def test_each_prod_pocketbase_vm_has_its_token_and_a_way_out_to_grafana_cloud(
        committed_plans: dict[str, Plan], vm: str) -> None:
    plan = committed_plans["prod"]
    instance = _one(plan, "gcp:compute/instance:Instance", vm)
    name = str(instance["name"])
    region = str(instance["zone"]).rsplit("-", 1)[0]
    subnetwork = instance["networkInterfaces"][0]["subnetwork"]

    secrets = {r.inputs["secretId"] for r in plan.resources if r.type == "gcp:secretmanager/secret:Secret"}
    assert f"{name}-otel-exporter-otlp-headers" in secrets
    assert not instance["networkInterfaces"][0].get("accessConfigs"), "the VM stays without an external address"
    subnet = next(r.wire_inputs for r in plan.resources if r.type == "gcp:compute/subnetwork:Subnetwork"
                  and f"{r.name}-id" == subnetwork)
    assert ipaddress.ip_address(instance["networkInterfaces"][0]["networkIp"]) in ipaddress.ip_network(
        subnet["ipCidrRange"]), "the VM's address is in its subnetwork"
    nats = [r.wire_inputs for r in plan.resources if r.type == "gcp:compute/routerNat:RouterNat"
            and r.wire_inputs.get("region") == region]
    covered = [n for n in nats if n.get("sourceSubnetworkIpRangesToNat") == "ALL_SUBNETWORKS_ALL_IP_RANGES"
               or any(s.get("name") == subnetwork for s in n.get("subnetworks", []))]
    assert covered, f"no Cloud NAT in {region} covers {vm}'s subnetwork: the push to Grafana Cloud has no route"


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Receiver.received.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/otlp"
    finally:
        server.shutdown()


def test_the_push_carries_the_gauges_the_alerts_read_and_the_token(receiver: str) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver, "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20dXNlcjp0b2tlbg=="}

    drtool.push_metrics({"backup_restore_last_success_timestamp_seconds": 1.7e9, "pocketbase_replica_lag_seconds": 1.5},
                        {"replica": "bucket/litestream/pocketbase"}, env)

    [(path, headers, body)] = _Receiver.received
    assert path == "/otlp/v1/metrics"
    assert headers["Authorization"] == "Basic dXNlcjp0b2tlbg=="
    metrics = body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    assert {m["name"] for m in metrics} == {"backup_restore_last_success_timestamp_seconds",
                                            "pocketbase_replica_lag_seconds"}
