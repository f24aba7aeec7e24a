"""PLAT-PROV-001: explicit provider resources (`pulumi:providers:<package>`) say what a stack file may say to the
same provider, and no more (mirrors stacks/providerconfig.py NAMESPACES; the pack does not import the program).

A provider's inputs decide where every call of its resources goes with the deploy's credentials: an endpoint
override (`cloudflare:baseUrl`, `gcp:*CustomEndpoint`, grafana's `*Url` keys), a plain-HTTP or TLS-skipping URL, or
a credential other than the ones the program sets from secrets sends them elsewhere. Allowed keys per package
(the program's own: infra/program.py's self-hosted Grafana sets `url` https://grafana.<zone>, `auth` and
`httpHeaders`, both from secrets); `version` is the engine's plugin pin. Anything else is refused, including
`pluginDownloadURL` (where the engine fetches the provider's binary from).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from policies.rule import NotApplicable, Resource, Verdict, is_unknown

PREFIX = "pulumi:providers:"
ENGINE_KEYS = frozenset({"version"})
ALLOWED: dict[str, frozenset[str]] = {
    "gcp": frozenset({"project", "region"}),
    "cloudflare": frozenset(),
    "vercel": frozenset({"team"}),
    "grafana": frozenset({"url", "orgId", "auth", "httpHeaders"}),
    "docker": frozenset({"host", "sshOpts", "certMaterial", "caMaterial", "keyMaterial"}),
    "random": frozenset(), "time": frozenset(), "tls": frozenset(),
}
URL_KEYS = frozenset({"url"})


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-PROV-001."""
    if not resource.type.startswith(PREFIX):
        return NotApplicable("not a provider")
    package = resource.type.removeprefix(PREFIX)
    if package not in ALLOWED:
        return [f"provider {resource.name!r} is of package {package!r}, which this program does not use; expected one "
                f"of {', '.join(sorted(ALLOWED))}"]
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
    return out
