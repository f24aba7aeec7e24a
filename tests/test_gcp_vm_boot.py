"""The PocketBase VM reads its secrets at boot so that a failed read fails, is retried and never starts PocketBase
with an empty secret; and it is created only once its grants had time to propagate (#20 item 5).

The script under test is the one prod's plan puts in the VM's `user-data` (cloud-init writes it to
/etc/pocketbase-secrets.sh), run by bash with the real curl against a local fake of the metadata server and
Secret Manager. What they answer is as documented: the metadata server's token endpoint returns
`{"access_token": ..., "expires_in": ..., "token_type": "Bearer"}` (cloud.google.com/compute/docs/access/
authenticate-workloads#applications); `versions/N:access` returns `{"name": ..., "payload": {"data": base64}}`
and, to a caller whose grant has not propagated yet, 403 PERMISSION_DENIED (cloud.google.com/iam/docs/
access-change-propagation: "typically 2 minutes, potentially 7 minutes or longer").
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import yaml

from infra.plan import Plan, PlanMocks, PlannedResource
from tests.conftest import PROJECT_DIR, plan_of

_SIG = "4dabf18193072939515e22adb298388d"


def _unwrap(value: object) -> object:
    while isinstance(value, dict) and _SIG in value:
        value = cast(dict[str, object], value)["value"]
    return cast(object, value)


@pytest.fixture(scope="module")
def prod_with_versions() -> Iterator[Plan]:
    """Prod's plan with Secret Manager's answer to a new version (its number, `1`), so the user-data, which names
    each version, is known as it will be at `pulumi up` (at preview it is unknown)."""
    original = PlanMocks.new_resource

    def new_resource(self: PlanMocks, args: Any) -> tuple[str | None, dict[str, Any]]:
        id_, state = original(self, args)
        if args.typ == "gcp:secretmanager/secretVersion:SecretVersion":
            state = {**state, "version": "1", "name": f"{args.name}/versions/1"}
        return id_, state

    PlanMocks.new_resource = new_resource  # type: ignore[method-assign]
    try:
        yield plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")
    finally:
        PlanMocks.new_resource = original  # type: ignore[method-assign]


def _vm(plan: Plan, name: str) -> PlannedResource:
    [vm] = [r for r in plan.resources if r.type == "gcp:compute/instance:Instance" and r.inputs["name"] == name]
    return vm


def _files(plan: Plan) -> dict[str, str]:
    metadata = cast(dict[str, object], _unwrap(_vm(plan, "pocketbase-prod").wire_inputs["metadata"]))
    user_data = _unwrap(metadata["user-data"])
    assert isinstance(user_data, str) and user_data.startswith("#cloud-config"), user_data
    return {f["path"]: f["content"] for f in yaml.safe_load(user_data)["write_files"]}


class _SecretManager(http.server.BaseHTTPRequestHandler):
    """The metadata server's token and Secret Manager's `:access`; each secret denied `denials` times first."""

    denials = 1
    seen: ClassVar[Counter[str]] = Counter()

    def do_GET(self) -> None:
        if self.path.startswith("/md/computeMetadata/v1/instance/service-accounts/default/token"):
            assert self.headers["Metadata-Flavor"] == "Google"
            self._answer(200, {"access_token": "ya29.vm-token", "expires_in": 3599, "token_type": "Bearer"})
            return
        found = re.fullmatch(r"/sm/v1/projects/[^/]+/secrets/([^/]+)/versions/(\d+):access", self.path)
        if found is None or self.headers["Authorization"] != "Bearer ya29.vm-token":
            self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
            return
        secret = found.group(1)
        self.seen[secret] += 1
        if self.seen[secret] <= self.denials:
            self._answer(403, {"error": {"code": 403, "status": "PERMISSION_DENIED", "message":
                                         f"Permission 'secretmanager.versions.access' denied for {secret}"}})
            return
        data = base64.b64encode(f"value-of-{secret}".encode()).decode()
        self._answer(200, {"name": self.path, "payload": {"data": data, "dataCrc32c": "1"}})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        encoded = json.dumps(body, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ExpiringTokens(_SecretManager):
    """The metadata server hands out a cached token until it is about to expire, then a new one
    (cloud.google.com/compute/docs/access/authenticate-workloads: "The metadata server caches access tokens until
    they have 5 minutes of remaining time before they expire"): here a token serves `uses` reads of Secret Manager,
    then Secret Manager answers 401 UNAUTHENTICATED to it, and the metadata server's next answer is a new token."""

    uses = 2
    issued: ClassVar[list[int]] = [0, 0]  # [the current token's number, reads it served]

    def do_GET(self) -> None:
        number, served = self.issued
        if self.path.startswith("/md/computeMetadata/v1/instance/service-accounts/default/token"):
            if served >= self.uses:
                self.issued[:] = [number + 1, 0]
            self._answer(200, {"access_token": f"ya29.vm-token-{self.issued[0]}", "expires_in": 300,
                               "token_type": "Bearer"})
            return
        if self.headers["Authorization"] != f"Bearer ya29.vm-token-{number}" or served >= self.uses:
            self._answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
            return
        self.issued[1] = served + 1
        self.headers.replace_header("Authorization", "Bearer ya29.vm-token")
        super().do_GET()


def _run(script: str, tmp_path: Path, denials: int, fake: type[_SecretManager] = _SecretManager
         ) -> tuple[subprocess.CompletedProcess[str], Path, list[str]]:
    """The script, by bash, with curl's Google hosts pointed at the local fake (the real curl does the rest)."""
    handler = type("Handler", (fake,), {"denials": denials, "seen": Counter(), "issued": [0, 0]})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    (tmp_path / "curl").write_text(
        "#!/bin/bash\nargs=()\nfor a in \"$@\"; do\n"
        f"  a=\"${{a//https:\\/\\/secretmanager.googleapis.com/{base}/sm}}\"\n"
        f"  a=\"${{a//http:\\/\\/metadata.google.internal/{base}/md}}\"\n"
        "  args+=(\"$a\")\ndone\nexec /usr/bin/curl \"${args[@]}\"\n")
    (tmp_path / "curl").chmod(0o755)
    env_file = tmp_path / "service.env"
    try:
        proc = subprocess.run(["bash", "-c", script.replace("/run/service.env", str(env_file))], capture_output=True,
                              text=True, timeout=120, check=False,
                              env={"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path),
                                   # No wait between attempts here (on the VM: 5 s, doubling, at most 60 s).
                                   "SECRET_RETRY_SECONDS": "0"})
    finally:
        server.shutdown()
        server.server_close()
    secrets = sorted(handler.seen)
    return proc, env_file, secrets


def _expected(plan: Plan) -> dict[str, str]:
    """Each variable PocketBase reads from Secret Manager -> the value the fake answers for its secret."""
    prefix = "pocketbase-prod-"
    return {str(r.inputs["secretId"]).removeprefix(prefix).upper().replace("-", "_"): f"value-of-{r.inputs['secretId']}"
            for r in plan.resources if r.type == "gcp:secretmanager/secret:Secret"
            and str(r.inputs["secretId"]).startswith(prefix) and "standby" not in str(r.inputs["secretId"])}


def _env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_a_read_denied_before_the_grant_propagated_is_retried_until_it_succeeds(
    prod_with_versions: Plan, tmp_path: Path
) -> None:
    script = _files(prod_with_versions)["/etc/pocketbase-secrets.sh"]

    proc, env_file, _ = _run(script, tmp_path, denials=1)

    assert proc.returncode == 0, proc.stderr
    assert _env(env_file) == _expected(prod_with_versions)
    assert "403" in proc.stderr, "each failed read is logged (the journal keeps the unit's stderr)"


def test_a_token_that_expires_while_a_grant_propagates_is_replaced_not_reused(
    prod_with_versions: Plan, tmp_path: Path
) -> None:
    """Reads retried for minutes outlive the token read at the start: each attempt asks the metadata server for
    the token again (a cheap local call), so an expired one is never sent twice."""
    script = _files(prod_with_versions)["/etc/pocketbase-secrets.sh"]

    proc, env_file, _ = _run(script, tmp_path, denials=1, fake=_ExpiringTokens)

    assert proc.returncode == 0, proc.stderr[-600:]
    assert _env(env_file) == _expected(prod_with_versions)


def test_a_read_that_keeps_failing_fails_the_unit_and_leaves_no_empty_secret(
    prod_with_versions: Plan, tmp_path: Path
) -> None:
    script = _files(prod_with_versions)["/etc/pocketbase-secrets.sh"]

    proc, env_file, _ = _run(script, tmp_path, denials=10_000)

    assert proc.returncode != 0, "a secret that cannot be read must fail the unit, not write an empty value"
    assert all(value for value in _env(env_file).values()), env_file.read_text()
    assert "403" in proc.stderr


def test_pocketbase_starts_only_after_its_secrets_were_read_and_the_read_is_retried(prod_with_versions: Plan) -> None:
    """systemd: a oneshot unit that failed stays failed unless `Restart=` says otherwise
    (freedesktop.org/software/systemd/man/systemd.service.html, Restart=); a unit whose ExecStartPre= fails does not
    run ExecStart= and, with Restart=on-failure or always, is started again after RestartSec=."""
    units = {path: text for path, text in _files(prod_with_versions).items() if path.startswith("/etc/systemd/")}
    [(path, runner)] = [(p, t) for p, t in units.items() if "/etc/pocketbase-secrets.sh" in t]
    assert re.search(r"^Restart=(on-failure|always)$", runner, re.MULTILINE), runner
    assert "StartLimitIntervalSec=0" in runner, "never give up retrying: the grant may take minutes"
    service = units["/etc/systemd/system/pocketbase.service"]
    if path == "/etc/systemd/system/pocketbase.service":
        lines = service.splitlines()
        fetch = next(i for i, ln in enumerate(lines) if "pocketbase-secrets.sh" in ln)
        start = next(i for i, ln in enumerate(lines) if ln.startswith("ExecStart=") and "docker run" in ln)
        assert lines[fetch].startswith("ExecStartPre=") and fetch < start
    else:
        unit = path.rsplit("/", 1)[1]
        assert f"Requires={unit}" in service and unit in service.split("After=", 1)[1].splitlines()[0]


def _seconds(duration: str) -> float:
    return sum(float(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"([\d.]+)([smh])", duration))


@pytest.mark.parametrize("vm_name", ["pocketbase-prod", "pocketbase-prod-standby"])
def test_the_vm_waits_for_its_grants_to_propagate(vm_name: str, committed_plans: dict[str, Plan]) -> None:
    """As the Cloud Run services do (components/backends/cloudrun.py, `-iam-propagation`): the VM is created only
    after a sleep of at least the documented typical propagation (2 minutes) that itself follows every grant to the
    VM's account: each secret's accessor and the registry's reader."""
    plan = committed_plans["prod"]
    by_urn = {r.urn: r for r in plan.resources}
    vm = _vm(plan, vm_name)
    member = f"serviceAccount:{vm.inputs['serviceAccount']['email']}"
    grants = {r.urn for r in plan.resources if r.inputs.get("member") == member
              and r.type in ("gcp:secretmanager/secretIamMember:SecretIamMember",
                             "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")}
    assert {by_urn[u].type for u in grants} == {"gcp:secretmanager/secretIamMember:SecretIamMember",
                                                "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"}
    sleeps = [by_urn[u] for u in vm.dependencies if by_urn[u].type == "time:index/sleep:Sleep"
              and _seconds(str(by_urn[u].inputs.get("createDuration", ""))) >= 120]
    assert sleeps, f"{vm_name} waits for no IAM propagation"
    assert any(grants <= s.dependencies for s in sleeps), [sorted(grants - s.dependencies) for s in sleeps]


def test_the_fake_answers_as_secret_manager_does(tmp_path: Path) -> None:
    """The fake itself: 403 first, then the payload; real curl -f fails on the 403 (exit 22)."""
    handler = type("Handler", (_SecretManager,), {"denials": 1, "seen": Counter()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/sm/v1/projects/p/secrets/s/versions/1:access"
    try:
        first = subprocess.run(["curl", "-sf", "-H", "Authorization: Bearer ya29.vm-token", url], capture_output=True,
                               text=True, check=False, env={"PATH": os.environ.get("PATH", "/usr/bin")})
        second = subprocess.run(["curl", "-sf", "-H", "Authorization: Bearer ya29.vm-token", url], capture_output=True,
                                text=True, check=False, env={"PATH": os.environ.get("PATH", "/usr/bin")})
    finally:
        server.shutdown()
        server.server_close()
    assert first.returncode == 22
    assert base64.b64decode(json.loads(second.stdout)["payload"]["data"]) == b"value-of-s"
