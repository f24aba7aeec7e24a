"""Tenants cannot claim what is not theirs (issue #11, item 10): config validation, exit 2.

A tenant's own domain must be a name someone can own under a real public suffix (the Public Suffix
List bundled in `publicsuffixlist`, read offline: publicsuffix.org), not a suffix itself (`com.br`,
or `vercel.app` from the list's private section), not an IP address, not under any platform zone
(any stack's `platform:zone.name` in this project), and not under a registered domain another
tenant already claims. IDN labels are accepted only as Latin letters with accents (what
Portuguese needs), and none may read as another tenant's or the platform's domain once its accents
are dropped (a homograph). Resource names derive from hostnames (components/tenant.py joins labels
with '-'), so two hostnames that give one name are refused here, before the engine sees two
resources with one URN.
"""

from __future__ import annotations

import functools
import ipaddress
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from publicsuffixlist import PublicSuffixList

from infra.spec import StackSpecV1

PROJECT_DIR = Path(__file__).resolve().parent.parent


@functools.cache
def _psl() -> PublicSuffixList:
    # accept_unknown=False: a name under a TLD the list does not know (`shop.internal`) has no owner.
    return PublicSuffixList(accept_unknown=False)


@functools.cache
def platform_zones() -> frozenset[str]:
    """Every zone the project's stacks own, read from `Pulumi.*.yaml` beside the project."""
    zones: set[str] = set()
    for path in PROJECT_DIR.glob("Pulumi.*.yaml"):
        try:
            document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
            name = document["config"]["platform:zone"]["name"]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            continue
        if isinstance(name, str):
            zones.add(name)
    return frozenset(zones)


def hostname_key(hostname: str) -> str:
    """How components/tenant.py (`_hostname_key`) turns a hostname into part of a resource name."""
    return hostname.replace(".", "-")


def resource_names(slug: str, zone: str, domains: list[str]) -> list[tuple[str, str]]:
    """(resource name, the hostname it comes from) of everything TenantSite declares for a tenant."""
    name = f"tenant-{slug}"
    hosts = [f"{slug}.{zone}", *domains]
    return ([(name, slug), (f"{name}-subdomain", hosts[0])]
            + [(f"{name}-vercel-{hostname_key(h)}", h) for h in hosts]
            + [(f"{name}-custom-{hostname_key(d)}", d) for d in domains])


def _unicode(domain: str) -> str | None:
    """The domain as a browser shows it; None if an xn-- label is not valid Punycode."""
    labels: list[str] = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            try:
                decoded = label[4:].encode("ascii").decode("punycode")
            except (UnicodeError, ValueError):
                return None
            if not decoded or decoded.encode("punycode").decode("ascii") != label[4:]:
                return None
            labels.append(decoded)
        else:
            labels.append(label)
    return ".".join(labels)


def _latin_skeleton(text: str) -> str | None:
    """The text without accents if every letter is a Latin letter (ASCII once decomposed); else None."""
    out: list[str] = []
    for char in text:
        if char.isascii():
            out.append(char)
            continue
        base = [c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)]
        if len(base) != 1 or not base[0].isascii() or not base[0].isalpha():
            return None
        out.append(base[0])
    return "".join(out)


def _registered(domain: str) -> str | None:
    return _psl().privatesuffix(domain)


def check_tenants(spec: StackSpecV1, namespace: str, show: Callable[[Any], str]) -> list[str]:
    problems: list[str] = []
    zone = spec.zone.name
    zones = platform_zones() | {zone}
    slugs: dict[str, int] = {}
    domains: dict[str, str] = {}
    skeletons: dict[str, str] = {z: f"the platform zone {z}" for z in zones}
    names: dict[str, str] = {}
    claims: dict[str, set[int]] = {}
    for i, tenant in enumerate(spec.tenants):
        for domain in tenant.domains:
            owner = _registered(domain) if _unicode(domain) is not None else None
            if owner is not None:
                claims.setdefault(owner, set()).add(i)
    for i, tenant in enumerate(spec.tenants):
        where = f"{namespace}:tenants[{i}]"
        if tenant.slug in slugs:
            problems.append(f"{where}.slug: {show(tenant.slug)} is already used by "
                            f"{namespace}:tenants[{slugs[tenant.slug]}]; expected a unique slug")
        slugs.setdefault(tenant.slug, i)
        for j, domain in enumerate(tenant.domains):
            path = f"{where}.domains[{j}]"
            problem = _domain_problem(domain, zone, zones, claims, i, namespace)
            if problem is None and domain in domains:
                problem = f"is already used by {domains[domain]}; expected each domain in one tenant only"
            if problem is None:
                shown = _unicode(domain) or domain
                skeleton = _latin_skeleton(shown)
                if skeleton is None:
                    problem = (f"(shown as {shown!r}) is not written in Latin letters; expected ASCII or Latin letters "
                               "with accents, so no domain reads as another")
                else:
                    twin = next((other for s, other in skeletons.items()
                                 if s != domain and (skeleton == s or skeleton.endswith(f".{s}"))), None)
                    if twin is not None and skeleton != domain:
                        problem = (f"(shown as {shown!r}) looks like {skeleton}, {twin}; expected a domain that does "
                                   "not read as another")
            if problem is not None:
                problems.append(f"{path}: {show(domain)} {problem}")
                continue
            domains.setdefault(domain, path)
            skeletons.setdefault(_latin_skeleton(_unicode(domain) or domain) or domain, f"the domain of {where}")
        for name, host in resource_names(tenant.slug, zone, list(tenant.domains)):
            if name in names and names[name] != host:
                at = f"{where}.domains[{tenant.domains.index(host)}]" if host in tenant.domains else f"{where}.slug"
                problems.append(f"{at}: {show(host)} gives the resource name {name!r}, as {names[name]!r} does; "
                                "expected hostnames that give distinct resource names")
            names.setdefault(name, host)
    return problems


def _domain_problem(domain: str, zone: str, zones: frozenset[str], claims: dict[str, set[int]], tenant: int,
                    namespace: str) -> str | None:
    try:
        ipaddress.ip_address(domain)
        return "is an IP address; expected a domain the tenant owns"
    except ValueError:
        pass
    if domain.rsplit(".", 1)[-1].isdigit():
        return "ends in a numeric label, as an IP address does; expected a domain the tenant owns"
    for platform in sorted(zones):
        if domain == platform or domain.endswith(f".{platform}"):
            here = platform == zone
            return (f"is under the platform zone {platform}; expected a domain the tenant owns"
                    + (f" (its platform hostname under {zone} is created automatically)" if here else ""))
    if _unicode(domain) is None:
        return "has an xn-- label that is not valid Punycode; expected a real domain"
    psl = _psl()
    if psl.publicsuffix(domain) is None:
        return "is not under a public suffix (a top-level domain the Public Suffix List knows); expected a real domain"
    if psl.is_public(domain):
        return "is a public suffix, which nobody owns alone; expected a domain registered under it"
    owner = _registered(domain)
    others = sorted(claims.get(owner, set()) - {tenant}) if owner is not None else []
    if others:
        return (f"is under {owner}, which {namespace}:tenants[{others[0]}] also claims; expected each registered "
                "domain claimed by one tenant only")
    return None
