"""Cloudflare resources judged by what they do (issue #22 item 15).

PLAT-DNS-002: record types are A, AAAA, CNAME, TXT, CAA or MX. An NS (or DS) record delegates a name, a
tenant's subdomain say, to someone else's name servers: they then answer for it, around the proxy, the
WAF and the certificates (developers.cloudflare.com/dns/manage-dns-records/reference/dns-record-types/#ns).

PLAT-EDGE-001: a cache rule that caches (`cache: true`) matches one host and a reviewed public path
prefix (the catalog JSON, C5), nothing else: a cache rule over an authenticated path serves one client's
answer to the next (developers.cloudflare.com/cache/how-to/cache-rules/settings/).

PLAT-EDGE-002: a request-header transform rule (it sets the origin secret, `X-Origin-Auth`) matches only
hosts the stack proxies, by `http.host eq` / `in`: under `true`, `ne` or `not` it carries the secret to
any host of the zone, a tenant's custom hostname whose origin the tenant names included
(developers.cloudflare.com/rules/transform/request-header-modification/).

The storefront's edge header (`x-storefront-edge-auth`, what Vercel's firewall requires: PLAT-FE-003) goes only
to the storefront's hosts, the domains of this stack's Vercel project (`vercel:index/projectDomain`): on the API
or Grafana it would hand the value to another origin, which could then reach the storefront around the edge.

PLAT-EDGE-003: a Cloudflare Tunnel routes by hostname only to reviewed services and never to PocketBase
(its admin UI `/_/` and superuser API), and ends with a catch-all `http_status:404`
(developers.cloudflare.com/cloudflare-one/connections/connect-networks/configure-tunnels/local-management/
configuration-file/). A route to an operator's UI (Grafana, Prometheus: by name or their ports 3000, 9090) sits
behind a Cloudflare Access application of this stack on exactly its hostname (PLAT-EDGE-005 judges what the
application admits): without one, Grafana's login page and API answer the internet.

PLAT-EDGE-004: zone settings through a configuration rule (`http_config_settings`, the per-request form
of zone settings) keep the edge as PLAT-TLS-001 keeps the zone: only settings this rule knows, security
level not off, Browser Integrity Check not off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.edge import RECORD_TYPES, RULESET, proxied_hosts
from policies.rule import Finding, NotApplicable, Resource, Verdict, as_list, as_map, is_unknown

RECORD_KINDS = frozenset({"A", "AAAA", "CNAME", "TXT", "CAA", "MX"})


def check_record_kind(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-DNS-002."""
    if resource.type not in RECORD_TYPES:
        return NotApplicable("not a DNS record")
    kind = resource.get("type")
    if kind not in RECORD_KINDS:
        why = " (it delegates the name to other name servers, around the proxy and the WAF)" \
            if kind in ("NS", "DS") else ""
        kinds = ", ".join(sorted(RECORD_KINDS))
        return [f"{resource.get('name')!r} is a {kind!r} record{why}; expected one of {kinds}"]
    return []


_CACHE_SHAPE = re.compile(r'^http\.host eq "(?P<host>[^"]+)" and starts_with\(http\.request\.uri\.path, '
                          r'"(?P<prefix>/[^"]*)"\)$')


def check_cache_rules(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-EDGE-001."""
    if resource.type != RULESET or resource.get("phase") != "http_request_cache_settings":
        return NotApplicable("not a cache ruleset")
    allowed = [str(p) for p in as_list(config.get("allowed_cache_paths"))]
    out: list[str] = []
    rules = resource.get("rules")
    if is_unknown(rules):
        return ["cache rules not known until apply; expected them known"]
    for rule in map(as_map, as_list(rules)):
        if rule.get("enabled") is False:
            continue
        params = as_map(rule.get("actionParameters"))
        if params.get("cache") is False or rule.get("action") != "set_cache_settings":
            continue
        expression = " ".join(str(rule.get("expression", "")).split())
        match = _CACHE_SHAPE.match(expression)
        if match is None or match.group("prefix") not in allowed:
            out.append(f"cache rule {rule.get('description')!r} caches {expression!r}; expected only one host and a "
                       f"public path prefix ({', '.join(allowed)}), never an authenticated path")
        if as_map(params.get("cacheKey")).get("customKey") and "header" in str(params.get("cacheKey")).lower():
            out.append(f"cache rule {rule.get('description')!r} changes the cache key's headers; expected the "
                       "default key")
    return out


_HOST_ONLY = re.compile(r'^http\.host (?:eq "(?P<one>[^"]+)"|in \{(?P<set>[^}]*)\})$')


STOREFRONT_HEADER = "x-storefront-edge-auth"
"""components/edge.py STOREFRONT_AUTH_HEADER; policies/rules/vercel_firewall.py EDGE_HEADER."""
PROJECT_DOMAIN = "vercel:index/projectDomain:ProjectDomain"


def check_header_transforms(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-EDGE-002."""
    hosts = {h.host for h in proxied_hosts(resources)}
    storefronts = {str(r.get("domain")) for r in resources if r.type == PROJECT_DOMAIN}
    out: list[tuple[str, Finding]] = []
    for r in (r for r in resources if r.type == RULESET
              and r.get("phase") in ("http_request_late_transform", "http_request_transform")):
        if is_unknown(r.get("rules")):
            out.append((r.urn, "request header rules not known until apply; expected them known"))
            continue
        for rule in map(as_map, as_list(r.get("rules"))):
            headers = as_map(as_map(rule.get("actionParameters")).get("headers"))
            if rule.get("enabled") is False or not headers:
                continue
            expression = " ".join(str(rule.get("expression", "")).split())
            match = _HOST_ONLY.match(expression)
            named = ([match.group("one")] if match and match.group("one") else
                     re.findall(r'"([^"]*)"', match.group("set") or "") if match else [])
            others = [h for h in named if h not in hosts]
            note = f" (hosts {others} are not proxied by this stack)" if others else ""
            if match is None or not named or others:
                out.append((r.urn, f"request header rule {rule.get('description')!r} sets {sorted(headers)} on "
                                   f"{expression!r}{note}"
                                   "; expected http.host eq/in only hosts this stack proxies (the API, the "
                                   "storefronts), so the origin secret goes nowhere else"))
                continue
            beyond = [h for h in named if h not in storefronts]
            if any(str(k).lower() == STOREFRONT_HEADER for k in headers) and beyond:
                out.append((r.urn, f"request header rule {rule.get('description')!r} sets {STOREFRONT_HEADER} on "
                                   f"{beyond}, which are not the storefront's domains (vercel projectDomain); "
                                   "expected the storefront hosts alone, so the value Vercel's firewall requires "
                                   "reaches no other origin"))
    return out


TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
TUNNEL = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
_POCKETBASE = re.compile(r"(?i)(pocketbase|:8090\b)")


ACCESS_APPLICATION = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
_OPERATOR_UI = re.compile(r"(?i)(grafana|prometheus|alertmanager|:3000\b|:9090\b|:9093\b)")


def check_tunnels(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-EDGE-003: each tunnel's routes, and Access in front of every route to an operator's UI."""
    guarded = {str(r.get("domain")) for r in resources if r.type == ACCESS_APPLICATION
               and r.get("type") == "self_hosted" and isinstance(r.get("domain"), str)}
    out: list[tuple[str, Finding]] = []
    # pulumi_cloudflare zero_trust_tunnel_cloudflared.py `config_src`: "If `local`, manage the tunnel using a YAML
    # file on the origin machine. If `cloudflare`, manage the tunnel on the Zero Trust dashboard": a local tunnel's
    # routes are in cloudflared's own file, which no rule reads.
    for r in (r for r in resources if r.type == TUNNEL):
        if r.get("configSrc") != "cloudflare":
            out.append((r.urn, f"tunnel {r.get('name')!r} has configSrc {r.get('configSrc')!r}: its routes live in "
                               "cloudflared's own file, which no rule reads; expected configSrc cloudflare with a "
                               "ZeroTrustTunnelCloudflaredConfig judged here"))
    for r in (r for r in resources if r.type == TUNNEL_CONFIG):
        verdict = check_tunnel(r, config)
        out += [(r.urn, f) for f in verdict] if not isinstance(verdict, NotApplicable) else []
        cfg = r.get("config")
        for i in ([] if is_unknown(cfg) else [as_map(x) for x in as_list(as_map(cfg).get("ingresses"))]):
            service, host = str(i.get("service", "")), i.get("hostname")
            if host and _OPERATOR_UI.search(service) and str(host) not in guarded:
                out.append((r.urn, f"tunnel route {host!r} reaches an operator's UI ({service}) with no Cloudflare "
                                   "Access application of this stack on that host, so its login page and API answer "
                                   "the internet; expected a self_hosted ZeroTrustAccessApplication with domain "
                                   f"{host!r}"))
    return out


REVIEWED_ROUTES = {"api": "http://commission-engine:8000", "grafana": "http://grafana:3000"}
"""The routes infra/program.py gives the tunnel: the engine's public listener (not its internal :9000 metrics
listener) and Grafana, which check_tunnels requires behind Access. Anything else (Prometheus, the engine's metrics)
is a new way in from the internet and needs its review first."""


def check_tunnel(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-EDGE-003, one tunnel's routes."""
    if resource.type != TUNNEL_CONFIG:
        return NotApplicable("not a tunnel configuration")
    cfg = resource.get("config")
    if is_unknown(cfg):
        return ["tunnel ingress not known until apply; expected it known"]
    ingresses = [as_map(i) for i in as_list(as_map(cfg).get("ingresses"))]
    out: list[str] = []
    if not ingresses or ingresses[-1].get("service") != "http_status:404" or ingresses[-1].get("hostname"):
        out.append("the tunnel does not end with a catch-all http_status:404; expected unmatched hosts refused")
    # The top-level originRequest applies to every route (developers.cloudflare.com/cloudflare-one/connections/
    # connect-networks/configure-tunnels/cloudflared-parameters/origin-parameters/).
    if as_map(as_map(cfg).get("originRequest")).get("noTlsVerify") not in (None, False):
        out.append("the tunnel's top-level originRequest skips TLS verification to every origin; expected it checked")
    for i in ingresses[:-1]:
        service, path = str(i.get("service", "")), str(i.get("path") or "")
        label = str(i.get("hostname") or "").split(".", 1)[0].lower()
        if REVIEWED_ROUTES.get(label) != service.rstrip("/"):
            out.append(f"tunnel route {i.get('hostname')!r} -> {service!r} is no reviewed route; expected only "
                       + ", ".join(f"{h}.<zone> -> {s}" for h, s in sorted(REVIEWED_ROUTES.items())))
        if not i.get("hostname") or "*" in str(i.get("hostname")):
            out.append(f"tunnel route to {service!r} matches any host ({i.get('hostname')!r}); expected one hostname")
        if _POCKETBASE.search(service) or "/_/" in path or "_/" in path:
            out.append(f"tunnel route {i.get('hostname')!r}{path} reaches PocketBase ({service}), its admin UI /_/ and "
                       "superuser API included; expected PocketBase on the private network only")
        if as_map(i.get("originRequest")).get("noTlsVerify") not in (None, False):
            out.append(f"tunnel route {i.get('hostname')!r} skips TLS verification to its origin; expected it checked")
    return out


# Per-request zone settings (developers.cloudflare.com/rules/configuration-rules/settings/): the ones that
# cannot weaken the edge, and the allowed values of the others.
CONFIG_SETTINGS: dict[str, set[Any] | None] = {
    "ssl": None,  # PLAT-TLS-001 judges it
    "automaticHttpsRewrites": {True}, "bic": {True}, "emailObfuscation": None, "hotlinkProtection": None,
    "fonts": None, "polish": None, "rocketLoader": None, "mirage": None, "autominify": None,
    "securityLevel": {"low", "medium", "high", "under_attack"}, "opportunisticEncryption": None,
    "sxg": None, "contentConverter": None, "requestBodyBuffering": None, "responseBodyBuffering": None,
}


def check_config_rules(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-EDGE-004."""
    if resource.type != RULESET or resource.get("phase") != "http_config_settings":
        return NotApplicable("not a configuration ruleset")
    if is_unknown(resource.get("rules")):
        return ["configuration rules not known until apply; expected them known"]
    out: list[str] = []
    for rule in map(as_map, as_list(resource.get("rules"))):
        if rule.get("enabled") is False:
            continue
        for key, value in as_map(rule.get("actionParameters")).items():
            if key not in CONFIG_SETTINGS:
                out.append(f"configuration rule {rule.get('description')!r} sets {key!r}, which this rule does not "
                           f"know (disable_waf, disable_apps and the like turn the edge off); expected only "
                           f"{', '.join(sorted(CONFIG_SETTINGS))}")
            elif CONFIG_SETTINGS[key] is not None and value not in (CONFIG_SETTINGS[key] or set()):
                out.append(f"configuration rule {rule.get('description')!r} sets {key} {value!r}; expected "
                           f"{' or '.join(sorted(map(str, CONFIG_SETTINGS[key] or set())))}")
    return out
