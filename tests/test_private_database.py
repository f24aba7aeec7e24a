"""Prod's PocketBase is reachable only on the private network, from the engine, in the engine's region
(#11.2): a VM with no external address in the engine's VPC, a firewall admitting only the engine's
Direct VPC egress subnet, and the engine pointed at its internal address."""

from __future__ import annotations

import base64
import hashlib
import http.server
import ipaddress
import json
import os
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from components.backends import gce
from components.backends.gce import cloud_init, secret_fetch_line
from components.backends.service import ContainerSpec
from components.database import DatabaseArgs, pocketbase_spec
from infra.plan import Plan, PlannedResource
from tests.environment import service_environment

PRIMARY = "southamerica-east1"
"""The engine's region; the standby in the failover region is tests/test_failover.py's."""


def _resource(plan: Plan, type_: str, **inputs: object) -> PlannedResource:
    found = [r for r in plan.resources if r.type == type_ and all(r.inputs.get(k) == v for k, v in inputs.items())]
    assert len(found) == 1, (type_, inputs, len(found))
    return found[0]


def _one(plan: Plan, type_: str, **inputs: object) -> dict[str, Any]:
    return _resource(plan, type_, **inputs).inputs


def test_prod_pocketbase_has_no_public_endpoint_and_sits_in_the_engines_region(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    engine = _one(plan, "gcp:cloudrunv2/service:Service", name="commission-engine", location=PRIMARY)
    vm = _one(plan, "gcp:compute/instance:Instance", name="pocketbase-prod")

    assert all("accessConfigs" not in nic for nic in vm["networkInterfaces"]), "no external address"
    assert str(vm["zone"]).startswith(str(engine["location"]) + "-")
    assert not [r for r in plan.resources if r.type == "pulumi-python:dynamic/railway:Service"]
    assert not [r for r in plan.resources if r.type == "cloudflare:index/dnsRecord:DnsRecord"
                and "pocketbase" in str(r.inputs.get("name"))]


def test_only_the_engines_egress_subnet_reaches_pocketbase(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    engine = _one(plan, "gcp:cloudrunv2/service:Service", name="commission-engine", location=PRIMARY)
    # The engine's Direct VPC egress subnetwork; the VM has its own (tests/test_gcp_nat.py).
    subnet = _one(plan, "gcp:compute/subnetwork:Subnetwork", region=PRIMARY, name="platform-prod-run")
    egress = engine["template"]["vpcAccess"]["networkInterfaces"]  # type: ignore[index]
    assert egress, "the engine leaves through Direct VPC egress"
    rules = [r.inputs for r in plan.resources if r.type == "gcp:compute/firewall:Firewall"
             and r.inputs.get("direction", "INGRESS") == "INGRESS"]

    # The standby's own rule admits the failover region's subnetwork (tests/test_failover.py).
    admitted = [rule for rule in rules if "8443" in json.dumps(rule.get("allows"))  # TLS (#22 item 7)
                and rule["targetTags"] == ["pocketbase-prod"]]
    assert admitted
    for rule in admitted:
        for source in rule["sourceRanges"]:
            assert ipaddress.ip_network(source).subnet_of(ipaddress.ip_network(subnet["ipCidrRange"]))


def test_the_engine_reaches_pocketbase_at_its_internal_address(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    address = _resource(plan, "gcp:compute/address:Address", region=PRIMARY)
    url, _ = service_environment(plan, "commission-engine")["POCKETBASE_URL"]

    subnet = _one(plan, "gcp:compute/subnetwork:Subnetwork", region=PRIMARY, name="platform-prod-vms")
    vm = _resource(plan, "gcp:compute/instance:Instance", name="pocketbase-prod")
    host = url.removeprefix("https://").removesuffix(":8443")

    assert address.inputs["addressType"] == "INTERNAL" and address.urn in vm.dependencies
    assert url.startswith("https://") and url.endswith(":8443")  # the image's TLS proxy (#22 item 7)
    assert ipaddress.ip_address(host) in ipaddress.ip_network(subnet["ipCidrRange"])


def test_the_vm_reads_its_secrets_with_what_container_optimized_os_has(tmp_path: Path) -> None:
    """The secrets script with one line, by bash, against answers shaped like the metadata server's token and Secret
    Manager's `versions/N:access` (a value with quotes, `$`, backquotes and a backslash kept as it is)."""
    secret = 'p@ss "w0rd" $HOME `x` \\ end'
    answer = {"name": "projects/1/secrets/s/versions/3",
              "payload": {"data": base64.b64encode(secret.encode()).decode(), "dataCrc32c": "1"}}
    token = {"access_token": "ya29.t", "expires_in": 3599, "token_type": "Bearer"}
    (tmp_path / "curl").write_text(
        "#!/bin/sh\ncase \"$*\" in\n"
        f"  *metadata.google.internal*) echo '{json.dumps(token)}';;\n"
        f"  *) cat <<'EOF'\n{json.dumps(answer, indent=2)}\nEOF\n;;\nesac\n")
    (tmp_path / "curl").chmod(0o755)
    env = tmp_path / "service.env"
    line = secret_fetch_line("proj", "pocketbase-prod-x", "3", "PB_SUPERUSER_PASSWORD")
    document = yaml.safe_load(cloud_init(_args_spec(), "img", {}, [line], None))
    [script] = [f["content"] for f in document["write_files"] if f["path"] == "/etc/pocketbase-secrets.sh"]

    proc = subprocess.run(["bash", "-c", script.replace("/run/service.env", str(env))], capture_output=True,
                          text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin", "SECRET_RETRY_SECONDS": "0"},
                          check=False)

    assert proc.returncode == 0, proc.stderr
    assert env.read_text() == f"PB_SUPERUSER_PASSWORD={secret}\n"


def test_the_vm_boots_from_cloud_config_that_runs_the_image_on_the_disk() -> None:
    spec = pocketbase_spec(_args(), "europe-docker.pkg.dev/p/r/pocketbase:abc", "pw", "key", "engine-pw")
    text = cloud_init(spec, "europe-docker.pkg.dev/p/r/pocketbase:abc", {"PB_SUPERUSER_EMAIL": "a@b.co"},
                      [secret_fetch_line("p", "s", "1", "PB_SUPERUSER_PASSWORD")], "europe-docker.pkg.dev")

    document = yaml.safe_load(text)
    units = {f["path"]: f["content"] for f in document["write_files"]}
    service = units["/etc/systemd/system/pocketbase.service"]
    assert "-v /mnt/disks/data:/pb/pb_data" in service and "pocketbase:abc" in service
    assert "--env-file /run/service.env" in service and "pw" not in text, "secrets never in the metadata"
    assert any("mount" in step and "google-data" in step for step in document["runcmd"])


def _args() -> DatabaseArgs:
    from components.backends.targets import Targets
    from stacks.profile import ServiceProfile

    return DatabaseArgs(environment="prod", size=ServiceProfile("gce", 1000, 2048, 2000, 4096, 1, 1), targets=Targets(),
                        superuser_email="a@b.co", backup_cron="0 3 * * *", backup_retention_days=30)


def test_the_boot_script_reads_the_token_then_every_secret(tmp_path: Path) -> None:
    """The whole secrets script cloud-init writes, run by bash against a fake metadata server and
    Secret Manager (answers shaped as documented), writes exactly the container's secret variables."""
    spec = pocketbase_spec(_args(), "img", "pw", "key", "engine-pw")
    lines = [secret_fetch_line("p", f"pocketbase-prod-{k.lower()}", "1", k) for k in sorted(spec.secret_env)]
    document = yaml.safe_load(cloud_init(spec, "img", {}, lines, None))
    [script] = [f["content"] for f in document["write_files"] if f["path"] == "/etc/pocketbase-secrets.sh"]
    (tmp_path / "curl").write_text(
        "#!/bin/bash\nfor a in \"$@\"; do url=\"$a\"; done\n"
        "case \"$url\" in\n"
        "  *metadata.google.internal*) echo '{\"access_token\": \"ya29.token\", \"expires_in\": 3599}';;\n"
        "  *) case \"$*\" in *'Authorization: Bearer ya29.token'*) ;; *) exit 22;; esac\n"
        "     name=${url##*/secrets/}; name=${name%%/*}\n"
        "     printf '{\"payload\": {\"data\": \"%s\"}}' \"$(printf 'value-of-%s' \"$name\" | base64)\";;\n"
        "esac\n")
    (tmp_path / "curl").chmod(0o755)
    env = tmp_path / "service.env"

    proc = subprocess.run(["bash", "-c", script.replace("/run/service.env", str(env))], capture_output=True, text=True,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin", "SECRET_RETRY_SECONDS": "0"}, check=False)

    assert proc.returncode == 0, proc.stderr
    assert env.read_text().splitlines() == [f"{k}=value-of-pocketbase-prod-{k.lower()}" for k in sorted(spec.secret_env)]


class _Metadata:
    """The metadata server's `wait_for_change` for one value: an ETag per value; a request with
    `last_etag` equal to the current one waits until the value changes (or its timeout)."""

    def __init__(self, value: str) -> None:
        self.value, self.changed = value, threading.Condition()

    def set(self, value: str) -> None:
        with self.changed:
            self.value = value
            self.changed.notify_all()

    def etag(self) -> str:
        return hashlib.sha256(self.value.encode()).hexdigest()[:16]


def test_the_vm_reboots_when_its_user_data_changes_since_cloud_init_applies_it_at_boot_only(tmp_path: Path) -> None:
    """A deploy changes only the VM's metadata (a new image, a setting, a secret's version): without a restart
    PocketBase keeps the old image, and an engine needing what the new one brings (its account, its schema)
    never gets ready. The watcher the VM runs, run here by bash against a stand-in of the metadata server."""
    metadata = _Metadata("#cloud-config v1")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert self.headers["Metadata-Flavor"] == "Google"
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            with metadata.changed:
                if query.get("wait_for_change") == ["true"]:
                    metadata.changed.wait_for(lambda: metadata.etag() != query["last_etag"][0], timeout=5)
                body, etag = metadata.value.encode(), metadata.etag()
            self.send_response(200)
            self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rebooted = tmp_path / "rebooted"
    script = tmp_path / "config-watch.sh"
    script.write_text(gce.CONFIG_WATCH)
    env = {**os.environ, "METADATA_URL": f"http://127.0.0.1:{server.server_address[1]}/user-data",
           "REBOOT": f"touch {rebooted}"}
    try:
        watcher = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert watcher.poll() is None and not rebooted.exists(), "nothing changed: no reboot"
        metadata.set("#cloud-config v2")
        out, _ = watcher.communicate(timeout=10)
    finally:
        server.shutdown()

    assert rebooted.exists()
    assert "user-data changed" in out
    assert "config-watch.service" in cloud_init(_args_spec(), "image", {}, [], None)


def _args_spec() -> ContainerSpec:
    return pocketbase_spec(_args(), "image", "password", "key", "engine-password")


def test_the_engines_start_outlasts_a_reboot_of_pocketbases_vm(committed_plans: dict[str, Plan]) -> None:
    """A deploy that changes PocketBase reboots its VM (above) while Cloud Run starts the engine's new
    revision, which waits for its PocketBase account and schema before it serves: the wait and the
    startup probe must outlast a reboot, an image pull and PocketBase's start (a couple of minutes), or the
    revision fails and so does `pulumi up`. Cloud Run allows a startup probe up to 240 s in all."""
    env = service_environment(committed_plans["prod"], "commission-engine")
    engine = next(r.wire_inputs for r in committed_plans["prod"].resources
                  if r.type == "gcp:cloudrunv2/service:Service" and r.name == "engine")
    probe = engine["template"]["containers"][0]["startupProbe"]
    window = probe["periodSeconds"] * probe["failureThreshold"] + probe.get("initialDelaySeconds", 0)

    wait = float(env["POCKETBASE_START_WAIT_SECONDS"][0])
    assert 120 <= wait < window <= 240
