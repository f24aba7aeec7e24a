"""`python -m infra adopt-zone`: a first deploy into a zone that already has phase entry points (dashboard
rules, WAF enrollment) must import them, because creating a second entry point for a phase fails
(terraform-provider-cloudflare#6273; "Each phase has at most one entry point ruleset at the account and
zone level", https://developers.cloudflare.com/ruleset-engine/about/phases/).

Tested against a fake of the Rulesets API speaking Cloudflare's v4 envelope (`{"success": true, "errors": [],
"result": ...}`; list: `GET /zones/{zone_id}/rulesets`, entry point: `GET /zones/{zone_id}/rulesets/phases/
{phase}/entrypoint`, 404 when the phase has none)."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from infra.plan import Plan
from tests.conftest import CliResult
from tests.test_fix2e_ruleset_names import RULESET_TYPE, plan_with_options

PROD_ZONE = "7c9e1f3a5b7d4c6e8f0a1b2c3d4e5f60"  # Pulumi.prod.yaml, platform:zone.zoneId
TOKEN = "test-token-0123456789"
WAF_ENTRY = "060013b1eeb14c93b0dcd896537e0d2c"
CUSTOM_ENTRY = "2a1c7e0f9b3d4e5f8a6b7c8d9e0f1a2b"
REWRITE_ENTRY = "5d4c3b2a19f8e7d6c5b4a3928170f6e5"
DASHBOARD_RULE = {"id": "r1", "action": "execute", "expression": "true", "description": "zone-level managed",
                  "action_parameters": {"id": "efb7b8c949ac4650a09736fc376e9aee"}}


class FakeRulesets:
    """A zone's rulesets as the API lists them: its own (kind zone) and Cloudflare's managed ones, two pages."""

    def __init__(self, zone_rulesets: list[dict[str, Any]],
                 rules: dict[str, list[dict[str, Any]]] | None = None) -> None:
        managed = {"id": "efb7b8c949ac4650a09736fc376e9aee", "kind": "managed", "name": "Cloudflare Managed Ruleset",
                   "phase": "http_request_firewall_managed"}
        self.pages = [[managed], zone_rulesets]
        self.rules = rules or {}
        """Each phase's entry-point rules (default: one dashboard rule)."""
        self.requests: list[str] = []

    def answer(self, path: str, query: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.requests.append(path)
        if authorization != f"Bearer {TOKEN}":
            return 403, {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}],
                         "messages": [], "result": None}
        if path == f"/client/v4/zones/{PROD_ZONE}/rulesets":
            page = 1 if query == "cursor=page2" else 0
            info = {"cursor": "page2"} if page == 0 else {}
            return 200, {"success": True, "errors": [], "messages": [], "result": self.pages[page], "result_info": info}
        prefix = f"/client/v4/zones/{PROD_ZONE}/rulesets/phases/"
        if path.startswith(prefix) and path.endswith("/entrypoint"):
            phase = path.removeprefix(prefix).removesuffix("/entrypoint")
            for ruleset in self.pages[1]:
                if ruleset["phase"] == phase:
                    return 200, {"success": True, "errors": [], "messages": [],
                                 "result": {**ruleset, "rules": self.rules.get(phase, [DASHBOARD_RULE])}}
        return 404, {"success": False, "errors": [{"code": 10003, "message": "could not find entrypoint ruleset"}],
                     "messages": [], "result": None}


@pytest.fixture
def serve() -> Iterator[Callable[[FakeRulesets], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(fake: FakeRulesets) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                status, body = fake.answer(path, query, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/client/v4"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _adopt(run_cli: Callable[..., CliResult], url: str, output: Path) -> CliResult:
    return run_cli("adopt-zone", "--stack", "prod", "--api-url", url, "--output", str(output))


def test_existing_entry_points_become_an_import_file_under_the_programs_names(
        run_cli: Callable[..., CliResult], serve: Callable[[FakeRulesets], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, committed_plans: dict[str, Plan]) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    fake = FakeRulesets([
        {"id": WAF_ENTRY, "kind": "zone", "name": "default", "phase": "http_request_firewall_managed"},
        {"id": CUSTOM_ENTRY, "kind": "zone", "name": "default", "phase": "http_request_firewall_custom"},
        {"id": REWRITE_ENTRY, "kind": "zone", "name": "default", "phase": "http_request_transform"}])
    output = tmp_path / "import-prod.json"

    result = _adopt(run_cli, serve(fake), output)

    assert result.code == 0, result.err
    document = json.loads(output.read_text())
    # The program's own WAF ruleset for that phase, under its component: what `pulumi up` will then update.
    # The program's own ruleset for each phase, under its component: what `pulumi up` will then update.
    ours = {r.inputs["phase"]: r for r in committed_plans["prod"].resources if r.type == "cloudflare:index/ruleset:Ruleset"}
    [edge] = [r for r in committed_plans["prod"].resources if r.urn == ours["http_request_firewall_managed"].parent]
    assert document == {"resources": [
        {"type": edge.type, "name": edge.name, "component": True},
        # The provider's import id: '<{accounts|zones}/{account_id|zone_id}>/<ruleset_id>'.
        {"type": "cloudflare:index/ruleset:Ruleset", "name": ours["http_request_firewall_custom"].name,
         "id": f"zones/{PROD_ZONE}/{CUSTOM_ENTRY}", "parent": edge.name},
        {"type": "cloudflare:index/ruleset:Ruleset", "name": ours["http_request_firewall_managed"].name,
         "id": f"zones/{PROD_ZONE}/{WAF_ENTRY}", "parent": edge.name}]}
    # The dashboard's rules, which the first `up` replaces, are kept for review.
    assert json.loads(output.with_suffix(".rules.json").read_text())["http_request_firewall_managed"]["rules"] == \
        [DASHBOARD_RULE]
    # A phase the program does not manage (URL rewrites here) is named, not imported.
    assert "http_request_transform" in result.err and REWRITE_ENTRY not in output.read_text()
    assert f"/client/v4/zones/{PROD_ZONE}/rulesets/phases/http_request_firewall_managed/entrypoint" in fake.requests


def test_a_zone_without_entry_points_needs_no_import(
        run_cli: Callable[..., CliResult], serve: Callable[[FakeRulesets], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    output = tmp_path / "import-prod.json"

    result = _adopt(run_cli, serve(FakeRulesets([])), output)

    assert result.code == 0, result.err
    assert "nothing to adopt" in result.out and not output.exists()


def test_an_api_error_exits_1_with_cloudflares_message_and_writes_nothing(
        run_cli: Callable[..., CliResult], serve: Callable[[FakeRulesets], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "a-revoked-token")
    output = tmp_path / "import-prod.json"

    result = _adopt(run_cli, serve(FakeRulesets([])), output)

    assert result.code == 1 and "Traceback" not in result.err
    assert "HTTP 403: 10000 Authentication error" in result.err and not output.exists()


def test_a_missing_token_exits_2_naming_the_variable(run_cli: Callable[..., CliResult], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)

    result = _adopt(run_cli, "http://127.0.0.1:9/client/v4", tmp_path / "import-prod.json")

    assert result.code == 2 and "set CLOUDFLARE_API_TOKEN" in result.err


def test_a_deployed_stack_gaining_a_phase_adopts_only_that_one_under_its_existing_edge(
        run_cli: Callable[..., CliResult], serve: Callable[[FakeRulesets], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, committed_plans: dict[str, Plan]) -> None:
    """A new phase on a deployed stack (the storefront's custom rule, into a zone with dashboard custom
    rules) meets the same refusal: import that entry point alone, under the edge the state already holds."""
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    fake = FakeRulesets([
        {"id": WAF_ENTRY, "kind": "zone", "name": "platform WAF", "phase": "http_request_firewall_managed"},
        {"id": CUSTOM_ENTRY, "kind": "zone", "name": "default", "phase": "http_request_firewall_custom"}])
    output = tmp_path / "import-prod.json"

    result = run_cli("adopt-zone", "--stack", "prod", "--api-url", serve(fake), "--output", str(output),
                     "--phase", "http_request_firewall_custom", "--stack-deployed")

    assert result.code == 0, result.err
    [custom] = [r for r in committed_plans["prod"].resources if r.type == "cloudflare:index/ruleset:Ruleset"
                and r.inputs["phase"] == "http_request_firewall_custom"]
    [edge] = [r for r in committed_plans["prod"].resources if r.urn == custom.parent]
    # Pulumi's URN form (github.com/pulumi/pulumi sdk/go/common/resource/urn, pkg.go.dev: "urn:pulumi:<Stack>::
    # <Project>::<Qualified$Type$Name>::<Name>"): the qualified type chains the parents' types below the root
    # stack, which is left out (a top-level resource is `urn:pulumi:<stack>::<project>::<type>::<name>`). The
    # mock engine here prefixes `pulumi:pulumi:Stack$`, so the expectation is written from the form.
    assert edge.urn.endswith(f"{edge.type}::{edge.name}")
    assert json.loads(output.read_text()) == {
        "nameTable": {edge.name: f"urn:pulumi:prod::platform::{edge.type}::{edge.name}"},
        "resources": [{"type": "cloudflare:index/ruleset:Ruleset", "name": custom.name,
                       "id": f"zones/{PROD_ZONE}/{CUSTOM_ENTRY}", "parent": edge.name}]}
    assert "warning" not in result.err  # the WAF phase is the program's, not an unmanaged one


# Properties whose change the provider answers with a replace: `stringplanmodifier.RequiresReplace()` on
# account_id, zone_id, kind, name and phase (cloudflare/terraform-provider-cloudflare
# internal/services/ruleset/schema.go, v5), in Pulumi's camelCase.
REPLACE_ON = ("accountId", "zoneId", "kind", "name", "phase")


def _replaced_properties(state: dict[str, Any], goal: dict[str, Any], ignore_changes: list[str]) -> set[str]:
    """What Pulumi's engine plans to replace the resource over: for each ignored property the goal takes the
    state's value ("Pulumi ignores a property by using the old value from the state instead of the value provided
    by the Pulumi program when determining whether an update or replace is needed",
    https://www.pulumi.com/docs/iac/concepts/options/ignorechanges/), then any RequiresReplace property that
    still differs triggers a replace."""
    effective = {k: state[k] if k in ignore_changes and k in state else v for k, v in goal.items()}
    return {k for k in REPLACE_ON if effective.get(k) != state.get(k)}


def test_an_adopted_default_entry_point_is_updated_in_place_not_replaced(
        run_cli: Callable[..., CliResult], serve: Callable[[FakeRulesets], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard names its entry points "default" and the program names them "platform WAF" etc.; `name` is
    RequiresReplace, so after the import the program's options must keep the next `up` from replacing it (a
    second entry point, refused) and the import must not protect it (a protected resource cannot be replaced or
    deleted: https://www.pulumi.com/docs/iac/concepts/options/protect/)."""
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    dashboard = [{"id": WAF_ENTRY, "kind": "zone", "name": "default", "phase": "http_request_firewall_managed"},
                 {"id": CUSTOM_ENTRY, "kind": "zone", "name": "default", "phase": "http_request_firewall_custom"}]
    output = tmp_path / "import-prod.json"

    result = _adopt(run_cli, serve(FakeRulesets(dashboard)), output)

    assert result.code == 0, result.err
    plan, ignored = plan_with_options("prod")
    imported = [r for r in json.loads(output.read_text())["resources"] if r["type"] == RULESET_TYPE]
    assert len(imported) == len(dashboard)
    for entry in imported:
        [ours] = [r for r in plan.resources if r.type == RULESET_TYPE and r.name == entry["name"]]
        [live] = [d for d in dashboard if entry["id"].endswith(d["id"])]
        # What `pulumi import` records: the provider's read of the live entry point.
        state = {"zoneId": PROD_ZONE, "kind": live["kind"], "name": live["name"], "phase": live["phase"]}
        assert _replaced_properties(state, ours.inputs, ignored[ours.urn]) == set(), entry["name"]
    # The import it tells the operator to run leaves the adopted rulesets unprotected (`pulumi import` protects
    # by default; "you can pass --protect=false": https://www.pulumi.com/docs/iac/cli/commands/pulumi_import/).
    assert f"pulumi import --file {output} --stack prod --protect=false" in result.out


# Made at each run, as the stack's generated passwords are: a secret-shaped literal in the repository is one a
# scanner (rightly) reports.
ORIGIN_SECRET = f"origin-auth-{secrets.token_hex(16)}"
STOREFRONT_SECRET = f"storefront-key-{secrets.token_hex(16)}"


def test_the_saved_rules_never_hold_a_header_secret(
        run_cli: Callable[..., CliResult], serve: Callable[[FakeRulesets], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A zone already holding our rules (a re-adoption, a stack recreated over its zone) has the origin-auth
    header's value in its late-transform rule and the storefront key in its custom rule's expression: the
    review copy `adopt-zone` writes is a file on an operator's disk, so those values are redacted there."""
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    api = '"api.acme-commerce.com"'
    rules = {
        "http_request_late_transform": [{
            "id": "r2", "action": "rewrite", "expression": f"http.host eq {api}",
            "action_parameters": {"headers": {"X-Origin-Auth": {"operation": "set", "value": ORIGIN_SECRET},
                                              "X-Other": {"operation": "remove"}}}}],
        "http_request_firewall_custom": [{
            "id": "r3", "action": "skip", "action_parameters": {"phases": ["http_ratelimit"]},
            "expression": f'http.host eq {api} and any(http.request.headers["x-storefront-key"][*] eq '
                          f'"{STOREFRONT_SECRET}")'}]}
    fake = FakeRulesets([
        {"id": REWRITE_ENTRY, "kind": "zone", "name": "platform request headers", "phase": "http_request_late_transform"},
        {"id": CUSTOM_ENTRY, "kind": "zone", "name": "platform custom rules", "phase": "http_request_firewall_custom"}],
        rules)
    output = tmp_path / "import-prod.json"

    result = _adopt(run_cli, serve(fake), output)

    assert result.code == 0, result.err
    saved_text = output.with_suffix(".rules.json").read_text()
    assert ORIGIN_SECRET not in saved_text and STOREFRONT_SECRET not in saved_text
    assert ORIGIN_SECRET not in result.out + result.err and STOREFRONT_SECRET not in result.out + result.err
    saved = json.loads(saved_text)
    # Still reviewable: which header is set, and what the rule matches, with the literal masked.
    [rewrite] = saved["http_request_late_transform"]["rules"]
    assert rewrite["action_parameters"]["headers"]["X-Origin-Auth"]["operation"] == "set"
    assert rewrite["action_parameters"]["headers"]["X-Other"] == {"operation": "remove"}
    [skip] = saved["http_request_firewall_custom"]["rules"]
    # Every literal is masked (over-redaction is harmless in a file people read); the structure stays.
    assert skip["expression"] == 'http.host eq "[redacted]" and any(http.request.headers["[redacted]"][*] eq "[redacted]")'


def test_the_files_adopt_zone_writes_by_default_are_ignored_by_git() -> None:
    """`adopt-zone --stack S` writes import-S.json and, beside it, import-S.rules.json (the zone's rules)."""
    names = ["import-prod.json", "import-prod.rules.json", "import-staging.json", "import-staging.rules.json"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, check=False)

    assert sorted(done.stdout.split()) == sorted(names), done.stdout + done.stderr


# Every string literal form of the Rules language, hand-written: quoted "..." (with \" and \\ escapes) and
# raw r"..." / r#"..."# ("Cloudflare rules support two formats for specifying literal strings ... quoted literal
# strings and raw strings", developers.cloudflare.com/ruleset-engine/rules-language/values/). Any literal may be
# the storefront key, whatever function, operator or side it sits in, so each one is masked.
KEY = "sk-9f8e7d6c5b4a"
LITERAL_FORMS = {
    "set": (f'http.request.headers["x-key"][0] in {{"{KEY}" "other-{KEY}"}}',
            'http.request.headers["[redacted]"][0] in {"[redacted]" "[redacted]"}'),
    "raw": (f'any(http.request.headers["x-key"][*] eq r"{KEY}")',
            'any(http.request.headers["[redacted]"][*] eq "[redacted]")'),
    "raw-hash": (f'any(http.request.headers["x-key"][*] eq r#"{KEY} "quoted" "#)',
                 'any(http.request.headers["[redacted]"][*] eq "[redacted]")'),
    "lower": (f'any(lower(http.request.headers["x-key"][*])[*] eq "{KEY}")',
              'any(lower(http.request.headers["[redacted]"][*])[*] eq "[redacted]")'),
    "starts-with": (f'starts_with(http.request.headers["x-key"][0], "{KEY}")',
                    'starts_with(http.request.headers["[redacted]"][0], "[redacted]")'),
    "reversed": (f'"{KEY}" eq http.request.headers["x-key"][0]',
                 '"[redacted]" eq http.request.headers["[redacted]"][0]'),
    "escaped-quote": (f'http.host eq "a\\"{KEY}" and true', 'http.host eq "[redacted]" and true'),
}


@pytest.mark.parametrize("form", sorted(LITERAL_FORMS))
def test_every_string_literal_in_an_expression_is_redacted(form: str) -> None:
    from infra.ops.adopt_zone import redacted_rules
    expression, expected = LITERAL_FORMS[form]

    [saved] = redacted_rules([{"id": "r", "action": "block", "expression": expression}])

    assert KEY not in json.dumps(saved)
    assert saved["expression"] == expected


def test_expressions_below_the_top_level_are_redacted_too() -> None:
    """A rate-limiting rule carries `ratelimit.counting_expression` (and `mitigation_expression` in older
    rules): same Rules language, same possible secret."""
    from infra.ops.adopt_zone import redacted_rules
    counting = f'http.request.headers["x-key"][0] ne "{KEY}"'
    rule: dict[str, Any] = {"id": "r", "action": "block", "expression": "true",
            "ratelimit": {"counting_expression": counting,
                          "mitigation_expression": f'lower(http.request.headers["x-key"][0]) eq r"{KEY}"',
                          "period": 10},
            "action_parameters": {"rules": [{"expression": f'"{KEY}" in http.request.headers.values[*]'}]}}

    [saved] = redacted_rules([rule])

    assert KEY not in json.dumps(saved)
    assert saved["ratelimit"]["counting_expression"] == 'http.request.headers["[redacted]"][0] ne "[redacted]"'
    assert saved["ratelimit"]["period"] == 10
    assert rule["ratelimit"]["counting_expression"] == counting, "the input is left as it was"
