"""`python -m infra adopt-zone --stack S`: before the first `pulumi up` into a zone that already has rules,
write the `pulumi import` file that adopts the zone's existing phase entry points.

Why: a zone has at most one entry-point ruleset per phase ("Each phase has at most one entry point ruleset
at the account and zone level", https://developers.cloudflare.com/ruleset-engine/about/phases/). Dashboard
rules, WAF enrollment or Cloudflare's defaults create it; then creating our `cloudflare.Ruleset` for that
phase fails (cloudflare/terraform-provider-cloudflare#6273, #5599: "you cannot create multiple resources of
the same type and it errors. the way to go about this is following the guidance in
.../waf-managed-rulesets/#import-or-delete-existing-rulesets"). So each existing entry point in a phase the
program declares is imported under the resource name the program gives that phase, and the first `up`
then replaces its rules with ours (a ruleset update replaces the whole rule list:
https://developers.cloudflare.com/ruleset-engine/rulesets-api/update/). The rules being replaced are saved
beside the import file for review. Runbook: docs/runbooks/first-deploy-existing-zone.md.

Reads (Rulesets API, v4 envelope `{"success": ..., "errors": [...], "result": ...}`):
- `GET /zones/{zone_id}/rulesets`: every ruleset of the zone (kind `zone` are its own; `managed` ones are
  Cloudflare's, deployable, never imported), https://developers.cloudflare.com/api/resources/rulesets/methods/list/
- `GET /zones/{zone_id}/rulesets/phases/{phase}/entrypoint`: an entry point with its rules.
Writes Pulumi's bulk import file (https://www.pulumi.com/docs/iac/cli/commands/pulumi_import/: `{"resources":
[{"type", "name", "id", "parent", "component"}]}`; a `component: true` entry without an id creates the empty
parent component, Pulumi 3.94+), the id in the provider's form
`zones/<zone_id>/<ruleset_id>` (pulumi_cloudflare Ruleset: "pulumi import cloudflare:index/ruleset:Ruleset
example '<{accounts|zones}/{account_id|zone_id}>/<ruleset_id>'").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from components.edge import RULESET_NAMES, edge_rules

API_URL = "https://api.cloudflare.com/client/v4"
TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
"""The variable the Cloudflare provider reads too; the token needs read access to the zone's rulesets (e.g.
Zone WAF Read, Cache Settings Read, Config Settings Read, Dynamic URL Redirects Read, Transform Rules Read)."""
EDGE_COMPONENT = ("platform:edge:Edge", "edge")
"""The type and name `infra.program` declares the edge under: the imported rulesets are its children."""
RULESET_TYPE = "cloudflare:index/ruleset:Ruleset"
PROJECT = "platform"
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class CloudflareError(Exception):
    """The API refused or failed a request: the message names the request and Cloudflare's errors."""


@dataclass(frozen=True)
class EntryPoint:
    phase: str
    ruleset_id: str
    name: str
    rules: list[dict[str, Any]]


class Rulesets:
    """The few Rulesets API reads this command needs, over Cloudflare's v4 envelope."""

    def __init__(self, token: str, api_url: str = API_URL, timeout_s: float = 30.0) -> None:
        self._token, self._api_url, self._timeout_s = token, api_url.rstrip("/"), timeout_s

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = f"{self._api_url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._token}",
                                                       "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, body = err.code, err.read()
        except (urllib.error.URLError, TimeoutError) as err:
            raise CloudflareError(f"GET {path}: {getattr(err, 'reason', err)}") from err
        try:
            document = cast(dict[str, Any], json.loads(body))
        except ValueError as err:
            raise CloudflareError(f"GET {path}: HTTP {status}, not a Cloudflare API answer") from err
        document["_status"] = status
        return document

    def _result(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        document = self._get(path, query)
        if document.get("success") is not True:
            listed = cast(list[dict[str, Any]], document.get("errors") or [])
            errors = "; ".join(f"{e.get('code')} {e.get('message')}" for e in listed)
            raise CloudflareError(f"GET {path}: HTTP {document['_status']}: {errors or 'no error given'}")
        return document

    def zone_rulesets(self, zone_id: str) -> list[dict[str, Any]]:
        """Every ruleset the zone lists, following the list's cursor."""
        out: list[dict[str, Any]] = []
        query: dict[str, str] = {}
        while True:
            document = self._result(f"/zones/{zone_id}/rulesets", query)
            out += cast(list[dict[str, Any]], document.get("result") or [])
            cursor = cast(dict[str, Any], document.get("result_info") or {}).get("cursor")
            if not cursor:
                return out
            query = {"cursor": str(cursor)}

    def entry_point(self, zone_id: str, phase: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._result(f"/zones/{zone_id}/rulesets/phases/{phase}/entrypoint")["result"])


def existing_entry_points(api: Rulesets, zone_id: str, phases: list[str],
                          declared: list[str]) -> tuple[list[EntryPoint], list[str]]:
    """(the zone's entry points in `phases`, with their rules; the phases it has entry points in that the
    program does not declare)."""
    listed = [r for r in api.zone_rulesets(zone_id) if r.get("kind") == "zone"]
    found: list[EntryPoint] = []
    for ruleset in sorted(listed, key=lambda r: str(r.get("phase"))):
        phase = str(ruleset.get("phase"))
        if phase in phases:
            full = api.entry_point(zone_id, phase)
            found.append(EntryPoint(phase, str(full.get("id") or ruleset["id"]), str(full.get("name", "")),
                                    cast(list[dict[str, Any]], full.get("rules") or [])))
    others = sorted({str(r.get("phase")) for r in listed} - set(declared))
    return found, others


REDACTED = "[redacted]"
STRING_LITERAL = re.compile(r'(?<![A-Za-z0-9_])r(#*)".*?"\1|"(?:[^"\\]|\\.)*"', re.DOTALL)
"""Every string literal of the Rules language: "Cloudflare rules support two formats for specifying literal
strings ... quoted literal strings and raw strings" (developers.cloudflare.com/ruleset-engine/rules-language/
values/): `"..."` with backslash escapes, and `r"..."` / `r#"..."#` (as many `#` as needed) without. A secret
may sit in any of them: a set `in {"S1" "S2"}`, a function argument (`starts_with(..., "S")`), either side of
an operator, a `lower(...)` comparison."""


def redacted_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules as saved for review, without the secrets a zone holding the platform's rules carries: each
    header a rule sets keeps its operation but not its static `value` (the `X-Origin-Auth` secret), and every
    string literal in every `*expression` field, at any depth (`ratelimit.counting_expression` too), becomes
    `"[redacted]"` (the storefront key; masking harmless literals too costs a reader little)."""
    out: list[dict[str, Any]] = []
    for rule in rules:
        copy = cast(dict[str, Any], _redact_expressions(json.loads(json.dumps(rule))))
        parameters = copy.get("action_parameters")
        headers = cast(dict[str, Any], parameters).get("headers") if isinstance(parameters, dict) else None
        for header in cast(dict[str, Any], headers).values() if isinstance(headers, dict) else ():
            if isinstance(header, dict) and "value" in header:
                header["value"] = REDACTED
        out.append(copy)
    return out


def _redact_expressions(node: Any) -> Any:
    """`node` (a fresh JSON copy, changed in place) with the literals of each `*expression` string masked."""
    if isinstance(node, list):
        return [_redact_expressions(item) for item in cast(list[Any], node)]
    if isinstance(node, dict):
        fields: dict[str, Any] = cast(dict[str, Any], node)
        for key, value in fields.items():
            if key.endswith("expression") and isinstance(value, str):
                fields[key] = STRING_LITERAL.sub(f'"{REDACTED}"', value)
            else:
                fields[key] = _redact_expressions(value)
        return fields
    return cast(object, node)


def import_document(zone_id: str, entry_points: list[EntryPoint], edge_urn: str | None = None) -> dict[str, Any]:
    """Pulumi's bulk import file: each entry point as a child of the edge component. On a first deploy the
    file creates the component, empty (`component: true`); into a deployed stack (`edge_urn`) it names the
    existing one in `nameTable`."""
    component_type, component_name = EDGE_COMPONENT
    resources: list[dict[str, Any]] = []
    if edge_urn is None:
        resources.append({"type": component_type, "name": component_name, "component": True})
    for entry in entry_points:
        suffix, _ = RULESET_NAMES[entry.phase]
        resources.append({"type": RULESET_TYPE, "name": f"{component_name}-{suffix}",
                          "id": f"zones/{zone_id}/{entry.ruleset_id}", "parent": component_name})
    return {"nameTable": {component_name: edge_urn}, "resources": resources} if edge_urn else {"resources": resources}


def edge_urn(stack: str) -> str:
    """The edge component's URN in a deployed stack (project `platform`, Pulumi.yaml)."""
    component_type, component_name = EDGE_COMPONENT
    return f"urn:pulumi:{stack}::{PROJECT}::{component_type}::{component_name}"


def import_command(output: Path, stack: str) -> str:
    """The `pulumi import` to run. `--protect=false`: the CLI protects what it imports by default ("The resources
    are protected from deletion by default ... you can pass --protect=false",
    https://www.pulumi.com/docs/iac/cli/commands/pulumi_import/), and the engine refuses to replace or delete a
    protected resource; the program does not protect its rulesets, so none is left protected behind its back.
    (The program also ignores changes to a ruleset's `name`, the one property an adopted entry point keeps:
    components/edge.py.)"""
    return f"pulumi import --file {output} --stack {stack} --protect=false --generate-code=false"


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # pyright: ignore[reportPrivateUsage]
    adopt = commands.add_parser("adopt-zone", help="write the `pulumi import` file adopting the zone's existing "
                                                   "phase entry points (before a first deploy into an existing zone)")
    adopt.add_argument("--stack", required=True)
    adopt.add_argument("--config-file", type=Path, help="a stack file to use instead of Pulumi.<stack>.yaml")
    adopt.add_argument("--output", type=Path, metavar="FILE",
                       help="the import file to write (default: import-<stack>.json); the rules it replaces go "
                            "to FILE with .rules.json")
    adopt.add_argument("--phase", action="append", metavar="PHASE",
                       help="only this phase (repeatable): a deployed stack that gains a phase adopts just that one")
    adopt.add_argument("--stack-deployed", action="store_true",
                       help="the stack already exists: parent the imports to its edge component instead of creating it")
    adopt.add_argument("--api-url", default=API_URL, help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    from infra.edge_plan import edge_args
    from infra.ops import load_stack

    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        print(f"error: adopt-zone reads the zone's rulesets with a Cloudflare API token: set {TOKEN_ENV} (read "
              "access to the zone's rulesets: Zone WAF Read, Cache Settings Read, Config Settings Read, Dynamic URL "
              "Redirects Read, Transform Rules Read)", file=sys.stderr)
        return EXIT_INVALID
    loaded = load_stack(args.stack, args.config_file)
    if loaded is None:
        return EXIT_INVALID
    model = loaded[1]
    edge = edge_args(model)
    phases = list(edge_rules(edge.settings, edge.zone_name, edge.rate_limit_overrides, edge.waf_log_only_hosts,
                             edge.api_origin_ssl, edge.origin_auth_secret, edge.storefront_key))
    unknown = sorted(set(args.phase or ()) - set(phases))
    if unknown:
        print(f"error: --phase {', '.join(unknown)}: not a phase this stack's edge declares; expected one of "
              f"{', '.join(phases)}", file=sys.stderr)
        return EXIT_INVALID
    wanted = [p for p in phases if not args.phase or p in args.phase]
    try:
        found, others = existing_entry_points(Rulesets(token, args.api_url), model.zone.zone_id, wanted, phases)
    except CloudflareError as err:
        print(f"error: Cloudflare API: {err}", file=sys.stderr)
        return EXIT_FAILED
    output: Path = args.output or Path(f"import-{args.stack}.json")
    if others:
        print(f"warning: zone {model.zone.name} also has entry points in {', '.join(others)}, which this program "
              "does not manage: their rules keep running (a custom rule can skip the WAF); review them",
              file=sys.stderr)
    if not found:
        print(f"nothing to adopt: zone {model.zone.name} has no entry point in {', '.join(wanted)}; "
              "`pulumi up` creates them")
        return EXIT_OK
    document = import_document(model.zone.zone_id, found, edge_urn(args.stack) if args.stack_deployed else None)
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    backup = output.with_suffix(".rules.json")
    backup.write_text(json.dumps({e.phase: {"id": e.ruleset_id, "name": e.name, "rules": redacted_rules(e.rules)}
                                  for e in found}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for entry in found:
        print(f"adopt {entry.phase}: ruleset {entry.ruleset_id} ({len(entry.rules)} rules, replaced by the "
              f"program's at the next `pulumi up`)")
    print(f"wrote {output} (then: {import_command(output, args.stack)}) and the rules it replaces, header secrets "
          f"redacted, to {backup}")
    return EXIT_OK
