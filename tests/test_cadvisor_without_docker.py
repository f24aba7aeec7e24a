"""cAdvisor reads the containers' cgroups, never Docker's API (#22 item 11).

The Docker socket is the whole Engine API, root on the host even mounted read-only ("cAdvisor effectively has
root on your node. It has access to the docker socket, which would allow an attacker to run pretty much anything
on the node (even if the socket is mounted as read-only)", google/cadvisor#2009), and a socket proxy that lets
`GET /containers/{id}/json` through hands every container's environment (the secrets) to whoever reaches it. So
cAdvisor gets no socket at all. What it loses is Docker's factory, which names a container (`name`, from its first
alias, cadvisor metrics/prometheus.go DefaultContainerLabels): a raw cgroup has only its path (`id`). So every
container runs under a cgroup parent named after it (`platform-<name>.slice`), and the scrape sets `name` from the
path, so the CPU and memory alerts (`name!=""`, `by (name)`) read the same series as before.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from engine.dev import free_port, wait_http

from components.observability import selfhosted, telemetry
from components.observability.spec import SPEC_FILE, load
from infra.analyzer import AnalyzerInput, run_policies
from infra.plan import Plan
from policies import waivers
from tests.conftest import PROJECT_DIR

CONTAINER = "docker:index/container:Container"
RUNTIME_SOCKETS = ("docker.sock", "containerd.sock", "crio.sock", "podman.sock")


def _host_paths(service: dict[str, Any]) -> list[str]:
    return [str(v).split(":", 1)[0] for v in service.get("volumes", []) if str(v).startswith("/")]


def test_no_compose_service_mounts_a_runtime_socket_or_dockers_state() -> None:
    services = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())["services"]

    mounts = {name: _host_paths(service) for name, service in services.items()}
    assert not {name: paths for name, paths in mounts.items()
                if any(p.endswith(RUNTIME_SOCKETS) or p.startswith(("/var/run", "/run", "/var/lib/docker"))
                       for p in paths)}
    assert mounts["cadvisor"] == ["/sys/fs/cgroup"]


def test_every_container_runs_under_a_cgroup_parent_named_after_it(committed_plans: dict[str, Plan]) -> None:
    """Docker's systemd driver takes a slice name (runc's ExpandSlice: `a-b.slice` is `/a.slice/a-b.slice`, and
    `--` or a leading `-` are refused); with the cgroupfs driver the same name is one directory."""
    containers = [r.inputs for r in committed_plans["integration"].resources
                  if r.type == "docker:index/container:Container"]
    assert containers
    assert {c["name"]: c.get("cgroupParent") for c in containers} == {
        c["name"]: f"platform-{c['name']}.slice" for c in containers}
    services = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())["services"]
    assert {name: s.get("cgroup_parent") for name, s in services.items()} == {
        name: f"platform-{name}.slice" for name in services}


ENGINE_ID = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970"
REDIS_ID = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d"
# The cgroups cAdvisor's raw factory reports on a host whose Docker uses the systemd driver (the engine) and on one
# with the cgroupfs driver (Redis), each container with its parents. The slices above a container have no limit of
# their own: cgroup v2's memory.max reads "max", which cAdvisor reports as the largest uint64
# (container/common/helpers.go readUInt64 of "max"). They must not be read as containers.
UNLIMITED = 18446744073709551615.0
SERIES = [
    ("/", 4e9, UNLIMITED),
    ("/platform.slice", 9e8, UNLIMITED),
    ("/platform.slice/platform-commission.slice", 6e8, UNLIMITED),
    ("/platform.slice/platform-commission.slice/platform-commission-engine.slice", 6e8, UNLIMITED),
    (f"/platform.slice/platform-commission.slice/platform-commission-engine.slice/docker-{ENGINE_ID}.scope",
     6e8, 1e9),
    ("/platform-redis.slice", 3e8, UNLIMITED),
    (f"/platform-redis.slice/{REDIS_ID}", 3e8, 4e8),
]


def _exposition() -> bytes:
    lines = ["# TYPE container_memory_working_set_bytes gauge"]
    lines += [f'container_memory_working_set_bytes{{id="{i}",image="",name=""}} {used}' for i, used, _ in SERIES]
    lines += ["# TYPE container_spec_memory_limit_bytes gauge"]
    lines += [f'container_spec_memory_limit_bytes{{id="{i}",image="",name=""}} {limit}' for i, _, limit in SERIES]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def fake_cadvisor() -> Iterator[int]:
    body = _exposition()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name for it
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


def test_prometheus_names_the_containers_from_their_cgroups_for_the_memory_alert(tmp_path: Path,
                                                                                 fake_cadvisor: int) -> None:
    """The stack's own cadvisor scrape job (only its target and interval changed), in the real Prometheus, and
    the ContainerMemoryHigh expression as deployed: each container by its name, its parents' slices not at all."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install prometheus"
    config = yaml.safe_load(selfhosted.prometheus_config([telemetry.cadvisor_job()]))
    job = next(c for c in config["scrape_configs"] if c["job_name"] == telemetry.CADVISOR)
    job |= {"static_configs": [{"targets": [f"127.0.0.1:{fake_cadvisor}"]}], "scrape_interval": "1s",
            "scrape_timeout": "1s"}
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    process = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    expr = next(a.expr for a in load(SPEC_FILE).alerts if a.name == "ContainerMemoryHigh")
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready")
        result: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not result:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=5).json()
            result = answer["data"]["result"]
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert {r["metric"].get("name"): float(r["value"][1]) for r in result} == {"commission-engine": 0.6,
                                                                               "redis": 0.75}


def test_the_runtime_socket_rule_is_never_waived() -> None:
    """A container with the Docker socket is root on the host in every environment: no waiver covers it."""
    today = dt.date.today()
    waiver = {"resource": "c", "subject": "c", "expires": (today + dt.timedelta(days=30)).isoformat(),
              "ticket": "OPS-522", "reason": "cAdvisor reads container names over the socket until a proxy lands"}
    for stack in ("integration", "staging", "prod"):
        problems = waivers.field_problems(waiver, "PLAT-CTR-001", stack, today, False)
        assert any(field == "rule" and "never waived" in problem for field, problem in problems), (stack, problems)

    socket = AnalyzerInput(f"urn:pulumi:integration::platform::{CONTAINER}::c", CONTAINER, "c", {"name": "c", "volumes": [
        {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": True}]})
    report = run_policies([socket], {"PLAT-CTR-001": {"waivers": [waiver]},
                                     "PLAT-WAIVER-001": {"waivers": [{"rule": "PLAT-CTR-001", **waiver}]}})
    assert ("PLAT-CTR-001", "c") in [(f.rule, f.resource) for f in report.mandatory]
    assert any(f.rule == "PLAT-WAIVER-001" and "never waived" in f.message for f in report.mandatory), report.findings


def test_the_integration_stack_waives_nothing_for_cadvisor() -> None:
    stack = yaml.safe_load((PROJECT_DIR / "Pulumi.integration.yaml").read_text())
    assert [w for w in stack["config"].get("platform:waivers", []) if w.get("rule") == "PLAT-CTR-001"] == []


@pytest.mark.parametrize("driver, path", [
    # Docker's systemd driver (its default on cgroup v2): runc expands `platform-redis.slice` (opencontainers/runc
    # systemd ExpandSlice) and names the scope docker-<id>.scope.
    ("systemd", f"/platform.slice/platform-redis.slice/docker-{REDIS_ID}.scope"),
    # cgroupfs on a host whose init is not systemd: the relative parent goes under the root.
    ("cgroupfs, no systemd", f"/platform-redis.slice/{REDIS_ID}"),
    # cgroupfs on a systemd host: runc puts a relative path under the parent of its own cgroup
    # (opencontainers/cgroups fs2/defaultpath.go), which is dockerd's, /system.slice (outside audit, session 7).
    ("cgroupfs under systemd", f"/system.slice/platform-redis.slice/{REDIS_ID}"),
])
def test_cadvisor_reports_and_names_a_container_under_each_cgroup_driver(driver: str, path: str) -> None:
    """cAdvisor with --docker_only reports only cgroups under a whitelisted prefix (container/raw/factory.go
    CanHandleAndAccept: strings.HasPrefix over --raw_cgroup_prefix_whitelist), and the scrape names it from the path:
    a layout no prefix covers leaves the memory and CPU alerts (M3, M4) without data while up{job="cadvisor"} is 1."""
    command = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())["services"]["cadvisor"]["command"]
    flag = next(c for c in command if c.startswith("--raw_cgroup_prefix_whitelist="))
    prefixes = flag.split("=", 1)[1].split(",")
    assert any(path.startswith(p) for p in prefixes), (driver, path, prefixes)
    match = re.fullmatch(telemetry.CGROUP_NAME, path)
    assert match is not None and match.group(1) == "redis", (driver, path)
