"""PLAT-PROV-001: provider resources (`pulumi:providers:<package>`, explicit or the engine's defaults) say what a
stack file may say to the same provider, and no more, with the stack's own values (mirrors stacks/providerconfig.py
NAMESPACES and infra/config.py provider consistency; the pack does not import the program).

A provider's inputs decide where every call of its resources goes with the deploy's credentials: an endpoint
override (`cloudflare:baseUrl`, `gcp:*CustomEndpoint`, grafana's `*Url` keys), a plain-HTTP or TLS-skipping URL, or
a credential other than the ones the program sets from secrets sends them elsewhere. Allowed keys per package
(the program's own: infra/program.py's self-hosted Grafana sets `url` https://grafana.<zone>, `auth` and
`httpHeaders`, both from secrets); `version` is the engine's plugin pin. Anything else is refused, including
`pluginDownloadURL` (where the engine fetches the provider's binary from).

The engine registers a default provider for every package a resource without an explicit one uses
(github.com/pulumi/pulumi pkg/resource/deploy/default_providers.go newRegisterDefaultProviderEvent), named
`default[_<version>...]`, with the package's stack config as inputs; the analyzers see it like any resource
(step_generator.go generateResourceSteps, analyzeAll). For the Python dynamic provider (`pulumi-python`: Railway's
services and the log sink) target.go GetPackageConfig gives the whole stack config, keys namespaced: its inputs are
allowed when they are exactly the stack's config as the engine gives it to the pack (PULUMI_CONFIG), nothing else.

Values are compared with the stack's config (PULUMI_CONFIG, analyzer_plugin.go constructEnv) when the engine
gives it: gcp `project` is `gcp:project` and `region` is `gcp:region` or `platform:gcp.failoverRegion`; vercel `team`
is `vercel:team` (or `platform:frontend.teamId`); grafana `url` is `grafana:url`, or on a stack without one (its own
Grafana on docker) https://grafana.<platform:zone.name>; docker `host` is `docker:host` with its `sshOpts`, or a
`tcp://` host with TLS client certificates (`certMaterial`, `keyMaterial`, `caMaterial`), never a plain TCP daemon
(components/backends/docker.py host_problems; docs.docker.com/engine/security/protect-access/).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from policies.rule import NotApplicable, Resource, Verdict, as_map, is_unknown
from policies.rules.env_stack_identity import engine_context

PREFIX = "pulumi:providers:"
ENGINE_KEYS = frozenset({"version"})
ALLOWED: dict[str, frozenset[str]] = {
    "gcp": frozenset({"project", "region"}),
    "cloudflare": frozenset(),
    "vercel": frozenset({"team"}),
    "grafana": frozenset({"url", "orgId", "auth", "httpHeaders"}),
    "docker": frozenset({"host", "sshOpts", "certMaterial", "caMaterial", "keyMaterial"}),
    "random": frozenset(), "time": frozenset(), "tls": frozenset(),
    "pulumi-python": frozenset(),  # plus exactly the stack's config, namespaced (see above)
}
URL_KEYS = frozenset({"url"})
DOCKER_TLS = ("certMaterial", "keyMaterial", "caMaterial")


def _json(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            return as_map(json.loads(value))
        except ValueError:
            return {}
    return as_map(value)


def _host(url: Any) -> tuple[str, str | None, str] | None:
    """(scheme, host, path) of a URL string, None when it is not one."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        if parts.username or parts.password or parts.port or parts.query or parts.fragment:
            return ("", None, "")
    except ValueError:
        return None
    return parts.scheme.lower(), (parts.hostname or "").lower() or None, parts.path


def _same_url(given: Any, expected: str) -> bool:
    a, b = _host(given), _host(expected)
    return a is not None and b is not None and a[1] is not None and (a[0], a[1]) == (b[0], b[1]) \
        and a[2].rstrip("/") == b[2].rstrip("/")


def _python_provider(resource: Resource, stack_config: Mapping[str, Any] | None) -> list[str]:
    extra = {k: v for k, v in resource.props.items() if k not in ENGINE_KEYS and v is not None}
    if not extra:
        return []
    if stack_config is None:
        return [f"provider {resource.name!r} (pulumi-python) sets {sorted(extra)} with no stack config from the "
                "engine to compare them with; expected none, or exactly the stack's config"]
    out: list[str] = []
    for key, value in sorted(extra.items()):
        if key not in stack_config:
            out.append(f"provider {resource.name!r} (pulumi-python) sets {key!r}, which is no key of the stack's "
                       "config; the engine gives the dynamic provider the stack's config and nothing else")
        elif value != stack_config[key] and not is_unknown(value):
            out.append(f"provider {resource.name!r} (pulumi-python) sets {key!r} to another value than the stack's "
                       "config; expected the stack's own")
    return out


def _values(package: str, resource: Resource, config: Mapping[str, Any]) -> list[str]:
    """The provider's values against the stack's config (PULUMI_CONFIG)."""
    name, props = resource.name, resource.props
    out: list[str] = []
    if package == "gcp":
        gcp = _json(config.get("platform:gcp"))
        project = config.get("gcp:project", gcp.get("project"))
        regions = {config.get("gcp:region", gcp.get("region")), gcp.get("failoverRegion")} - {None}
        if "project" in props and props["project"] != project:
            out.append(f"provider {name!r} (gcp) puts resources in project {props['project']!r}; expected the stack's "
                       f"{project!r}")
        if "region" in props and props["region"] not in regions:
            out.append(f"provider {name!r} (gcp) puts resources in region {props['region']!r}; expected one of the "
                       f"stack's {sorted(map(str, regions))}")
    elif package == "vercel":
        team = config.get("vercel:team", _json(config.get("platform:frontend")).get("teamId"))
        if "team" in props and props["team"] != team:
            out.append(f"provider {name!r} (vercel) acts in team {props['team']!r}; expected the stack's {team!r}")
    elif package == "grafana" and "url" in props:
        zone = _json(config.get("platform:zone")).get("name")
        expected = config.get("grafana:url") or (f"https://grafana.{zone}" if isinstance(zone, str) else None)
        if not isinstance(expected, str) or not _same_url(props["url"], expected):
            out.append(f"provider {name!r} (grafana) sends its credentials to {props['url']!r}; expected the stack's "
                       f"Grafana {expected!r}")
    elif package == "docker" and "host" in props:
        host = props["host"]
        scheme = host.split("://", 1)[0].lower() if isinstance(host, str) and "://" in host else ""
        if scheme == "tcp":
            missing = [k for k in DOCKER_TLS if not props.get(k)]
            if missing:
                out.append(f"provider {name!r} (docker) reaches {host!r}, a plain TCP daemon without {missing}: anyone "
                           "on the path gets root on the host; expected TLS client certificates or the stack's "
                           "docker:host over ssh")
        elif not (host == config.get("docker:host") and _json_list(props.get("sshOpts"))
                  == _json_list(config.get("docker:sshOpts"))):
            out.append(f"provider {name!r} (docker) reaches {host!r} with sshOpts {props.get('sshOpts')!r}; expected "
                       "the stack's docker:host and docker:sshOpts (a pinned host key), or tcp:// with TLS "
                       "certificates")
    return out


def _json_list(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-PROV-001."""
    if not resource.type.startswith(PREFIX):
        return NotApplicable("not a provider")
    package = resource.type.removeprefix(PREFIX)
    if package not in ALLOWED:
        return [f"provider {resource.name!r} is of package {package!r}, which this program does not use; expected one "
                f"of {', '.join(sorted(ALLOWED))}"]
    _, stack_config = engine_context()
    if package == "pulumi-python":
        return _python_provider(resource, stack_config)
    out: list[str] = []
    for key, value in sorted(resource.props.items()):
        if key in ENGINE_KEYS or value is None:
            continue
        if key not in ALLOWED[package]:
            out.append(f"provider {resource.name!r} ({package}) sets {key!r}, which the program never sets (an "
                       "endpoint "
                       "override, a TLS flag or a credential sends the deploy's calls elsewhere); expected only "
                       f"{', '.join(sorted(ALLOWED[package])) or 'none'}")
        elif key in URL_KEYS:
            text = value if isinstance(value, str) else None
            if is_unknown(value) or text is None or urlsplit(text.strip()).scheme != "https" \
                    or not urlsplit(text.strip()).hostname:
                out.append(f"provider {resource.name!r} ({package}) url {value!r}; expected an https:// URL known "
                           "before apply")
    if stack_config is not None:
        out += _values(package, resource, stack_config)
    return out
