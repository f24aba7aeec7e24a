"""Environments do not share identities (issue #22 item 14).

Each environment owns its Cloudflare account and zone, Google Cloud project, backup bucket and key, image
repository, Vercel team and project, Railway project and environment, and Grafana Cloud stack: a value one stack
file shares with another environment's committed stack file lets one environment's deploy (or its credentials) act
on the other's (staging rewriting prod's zone; prod's backups in a bucket staging's key reads). When a stack is
planned, the project's other committed `Pulumi.<stack>.yaml` files are read and any identity shared with one
of them is refused, naming both files and key paths.

Names carry their environment where a name is ours to choose: a non-prod zone, Vercel project, Google Cloud
project, backup bucket and Grafana stack name carry the environment's word, and no name carries another
environment's word (prod's project and bucket carry `prod`; its zone, storefront project and Grafana are the
public brand). Words are the name's parts between dots, hyphens, underscores and slashes.

The Grafana organization (`grafana:url` with `grafana:orgId`) is also checked in
components/observability/stackconfig.py: two organizations of one self-hosted Grafana are two policy trees; a
Grafana Cloud stack (`<slug>.grafana.net`) is one environment's whatever the organization.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

PROJECT_DIR = Path(__file__).resolve().parents[1]
"""Where Pulumi.yaml and the committed stack files are: where Pulumi runs the program, and `plan` reads them."""

ENVIRONMENT_WORDS: dict[str, frozenset[str]] = {
    "prod": frozenset({"prod", "production", "prd"}),
    "staging": frozenset({"staging", "stg", "stage"}),
    "integration": frozenset({"integration", "int"}),
}


@dataclass(frozen=True)
class Identity:
    kind: str
    path: str
    value: str
    shown: str

    @property
    def normalized(self) -> str:
        return self.value.strip().lower().rstrip("./")


def canonical_host(host: str) -> str:
    """The host as the resolver sees it: lowercase, one trailing dot dropped, IDNA-encoded (Python's `idna` codec
    applies RFC 3490 nameprep, so a fullwidth s, U+FF53, is `s`); a port is never part of it (urlsplit's hostname).
    Unencodable hosts are compared as given, lowercased."""
    name = host.strip().lower().removesuffix(".")
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return name


def _grafana_host(url: str | None) -> str:
    try:
        return canonical_host(urlsplit(url).hostname or "") if url else ""
    except ValueError:
        return ""


def _decoded(values: Mapping[str, str], key: str) -> dict[str, Any]:
    raw = values.get(key)
    if raw is None:
        return {}
    try:
        document: Any = json.loads(raw)
    except ValueError:
        return {}
    return cast(dict[str, Any], document) if isinstance(document, dict) else {}


def identities(values: Mapping[str, str], undecrypted: str) -> Iterator[Identity]:
    """Every identity a stack's config names (values as the engine hands them: strings, structures JSON)."""
    def one(kind: str, section: str, field: str, shown: str | None = None,
            value: str | None = None) -> Iterator[Identity]:
        found = _decoded(values, section).get(field)
        if isinstance(found, str | int) and not isinstance(found, bool) and str(found) != undecrypted and str(found):
            yield Identity(kind, f"{section}.{field}", value if value is not None else str(found),
                           shown if shown is not None else json.dumps(str(found)))

    yield from one("Cloudflare zone", "platform:zone", "name")
    yield from one("Cloudflare zone id", "platform:zone", "zoneId")
    # One Cloudflare account per environment (issue #22 item 3): Cloudflare Tunnel and Access permissions are
    # account-level, and an API token's account resources are all accounts or one whole account
    # (developers.cloudflare.com/fundamentals/api/reference/permissions/, docs/first-deploy.md): the token that
    # manages integration's tunnel could manage every tunnel and Access application of a shared account.
    yield from one("Cloudflare account", "platform:zone", "accountId")
    yield from one("Google Cloud project", "platform:gcp", "project")
    gcp_project = values.get("gcp:project")
    if gcp_project and gcp_project != undecrypted:
        yield Identity("Google Cloud project", "gcp:project", gcp_project, json.dumps(gcp_project))
    yield from one("backup bucket", "platform:backups", "bucket")
    yield from one("backup access key", "platform:backups", "accessKeyId")
    registry = _decoded(values, "platform:registry")
    if isinstance(registry.get("server"), str) and isinstance(registry.get("repository"), str):
        location = f"{registry['server']}/{registry['repository']}"
        yield from one("image repository", "platform:registry", "repository", json.dumps(location), location)
    frontend = _decoded(values, "platform:frontend")
    team = frontend.get("teamId") or values.get("vercel:team") or ""
    if isinstance(frontend.get("projectName"), str):
        name = str(frontend["projectName"])
        yield from one("Vercel project", "platform:frontend", "projectName",
                       f"{json.dumps(name)} (team {team or 'default'})", f"{team}/{name}")
    # One Vercel team per environment (issue #22 item 3): a Vercel access token's scope is a whole team, every
    # project of it (docs/first-deploy.md), so a shared team gives integration's token prod's storefront.
    yield from one("Vercel team", "platform:frontend", "teamId")
    vercel_team = values.get("vercel:team")
    if vercel_team and vercel_team != undecrypted:
        yield Identity("Vercel team", "vercel:team", vercel_team, json.dumps(vercel_team))
    yield from one("Railway project", "platform:railway", "projectId")
    yield from one("Railway environment", "platform:railway", "environmentId")
    # A Grafana Cloud stack is https://<slug>.grafana.net; "Each stack is completely isolated from all other stacks
    # in your account. Features, configuration, and data are not shared across stacks"
    # (grafana.com/docs/grafana-cloud/account-management/cloud-stacks): one per environment, whatever grafana:orgId.
    url = values.get("grafana:url")
    host = _grafana_host(url)
    if host.endswith(".grafana.net"):
        yield Identity("Grafana Cloud stack", "grafana:url", host, json.dumps(url))
    yield from one("Grafana Cloud Prometheus instance", "platform:grafanaCloud", "prometheusUser")
    yield from one("Grafana Cloud OTLP instance", "platform:grafanaCloud", "otlpUser")
    yield from one("Grafana Cloud Loki instance", "platform:grafanaCloud", "lokiUser")


def _words(name: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", name.lower()) if w}


def _named(values: Mapping[str, str], undecrypted: str) -> Iterator[tuple[str, str, bool]]:
    """(key path, name, whether a non-prod name must carry its environment's word) of every name we choose."""
    for section, field, must in (("platform:zone", "name", True), ("platform:frontend", "projectName", True),
                                 ("platform:gcp", "project", True), ("platform:backups", "bucket", True),
                                 ("platform:registry", "repository", False)):
        found = _decoded(values, section).get(field)
        if isinstance(found, str) and found and found != undecrypted:
            yield f"{section}.{field}", found, must
    for key in ("gcp:project",):
        found = values.get(key)
        if found and found != undecrypted:
            yield key, found, True
    url = values.get("grafana:url")
    if url:
        host = _grafana_host(url)
        if host.endswith(".grafana.net"):  # a Grafana Cloud stack: its name is the host's first label
            yield "grafana:url", host.removesuffix(".grafana.net"), True


def naming_problems(environment: str, values: Mapping[str, str], undecrypted: str) -> list[str]:
    ours = ENVIRONMENT_WORDS.get(environment)
    if ours is None:
        return []
    problems: list[str] = []
    for path, name, must in _named(values, undecrypted):
        words = _words(name)
        for other, theirs in sorted(ENVIRONMENT_WORDS.items()):
            if other != environment and words & theirs:
                problems.append(f"{path}: {json.dumps(name)} carries another environment's name "
                                f"({'/'.join(sorted(words & theirs))}: {other}); expected a name of {environment}'s "
                                f"own, carrying {'/'.join(sorted(ours))} or no environment's name")
                break
        else:
            if must and environment != "prod" and not words & ours:
                problems.append(f"{path}: {json.dumps(name)} does not carry its environment's name; expected a "
                                f"name with one of the words {', '.join(sorted(ours))}, so it cannot be taken "
                                "for another environment's")
            elif must and environment == "prod" and path in ("platform:gcp.project", "gcp:project",
                                                              "platform:backups.bucket") and not words & ours:
                problems.append(f"{path}: {json.dumps(name)} does not carry its environment's name; expected a "
                                f"name with one of the words {', '.join(sorted(ours))}")
    return problems


def committed_stacks(stack: str, directory: Path = PROJECT_DIR) -> list[tuple[str, str, Mapping[str, str]]]:
    """(stack, file name, config values) of every other committed stack file of the project."""
    from infra.config import ConfigError
    from infra.stackfile import read_stack_file

    found: list[tuple[str, str, Mapping[str, str]]] = []
    for path in sorted(directory.glob("Pulumi.*.yaml")):
        other = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        if other == stack:
            continue
        try:
            raw = read_stack_file(path, other)
        except ConfigError:
            continue  # refused when that stack is planned; nothing to compare with here
        found.append((other, path.name, raw.values))
    return found


def shared_problems(stack: str, values: Mapping[str, str], undecrypted: str,
                    directory: Path = PROJECT_DIR) -> list[str]:
    ours = list(identities(values, undecrypted))
    problems: list[str] = []
    for other, file, theirs_values in committed_stacks(stack, directory):
        theirs: dict[tuple[str, str], list[Identity]] = {}
        for found in identities(theirs_values, undecrypted):
            theirs.setdefault((found.kind, found.normalized), []).append(found)
        for mine in ours:
            matches = theirs.get((mine.kind, mine.normalized), [])
            # The same key path when the other file has it there (a Vercel team is in two keys of each file).
            match = next((m for m in matches if m.path == mine.path), matches[0] if matches else None)
            if match is not None:
                problems.append(f"{mine.path}: {mine.shown} is also {other}'s {mine.kind} ({file}: {match.path}); "
                                f"expected {stack}'s own: environments never share a Cloudflare account or zone, "
                                "project, bucket, key, registry, Vercel team or project, Railway environment or "
                                "Grafana stack")
    return problems
