"""Waivers: narrow, dated, checked. Shared by the pack (which enforces them) and by config validation
(which refuses a bad one before anything is declared, exit 2).

A waiver waives one rule for one resource and one subject: a tenant (its hosts), a host, or the
resource itself, never a whole zone. It carries an expiry date at most `MAX_DAYS` ahead, a ticket
and a reason that says something. IAM rules are never waived in production, the rules in
`NEVER_WAIVED` nowhere. In the pack's config a rule's waivers are
`{"waivers": [{"resource", "subject", "expires", "ticket", "reason"}, ...]}`; PLAT-WAIVER-001 gets all
of them, each with its `rule`, and checks them against the whole stack.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from policies.rule import Resource, as_map, stack_kind

MAX_DAYS = 90
"""A waiver is a plan to fix something within a quarter; longer is a decision, made in the rules."""
FIELDS = ("resource", "subject", "expires", "ticket", "reason")
TICKET = re.compile(r"^[A-Z][A-Z0-9]{1,9}-[1-9][0-9]{0,6}$")
"""A tracker key like OPS-412."""
_WORD = re.compile(r"[^\W\d_]{3,}")
_FILLER = {"todo", "tbd", "fixme", "later", "temporary", "temp", "placeholder", "lorem", "ipsum", "dolor",
           "asdf", "test", "testing", "foo", "bar", "baz", "xxx", "n/a", "none", "reason", "because", "needed",
           "required", "waiver", "waive", "waived", "explain", "will", "fix", "this", "that", "the", "for", "and",
           "now", "just", "some", "stuff", "thing", "things", "whatever", "etc", "ok", "okay", "see", "ticket"}


@dataclass(frozen=True)
class Waiver:
    rule: str
    resource: str
    subject: str
    expires: str
    ticket: str
    reason: str


def reason_problem(reason: Any) -> str | None:
    """Why a reason says nothing, or None: at least 20 characters and five real words, most of them
    not filler ("TODO", "temporary", "will fix later"), not one word repeated."""
    if not isinstance(reason, str) or len(reason.strip()) < 20:
        return "is not a reason: expected at least 20 characters saying why and until when"
    words = [w.lower() for w in _WORD.findall(reason)]
    meaningful = [w for w in words if w not in _FILLER]
    if len(words) < 5 or len(set(meaningful)) < 4 or len(set(words)) < len(words) / 2:
        return ("is not a reason: expected a sentence that says what is waived, why, and what happens until "
                "the expiry (at least five words, most of them not filler)")
    return None


def expiry_problem(expires: Any, today: dt.date) -> str | None:
    if not isinstance(expires, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", expires):
        return "is not a date; expected YYYY-MM-DD"
    try:
        date = dt.date.fromisoformat(expires)
    except ValueError:
        return "is not a calendar date; expected YYYY-MM-DD"
    if date < today:
        return f"has passed (today is {today.isoformat()}); expected the fix, or a new reviewed waiver"
    if (date - today).days > MAX_DAYS:
        return (f"is more than {MAX_DAYS} days ahead ({(date - today).days}); expected an expiry within "
                f"{MAX_DAYS} days (by {(today + dt.timedelta(days=MAX_DAYS)).isoformat()})")
    return None


NEVER_WAIVED = {"PLAT-CTR-001": "a privileged container or a runtime socket is root on the host, in any environment"}
"""Rules no waiver covers, in any stack, with why (#22 item 11: cAdvisor's docker.sock waiver was the last)."""


def field_problems(entry: Mapping[str, Any], rule: str, stack: str, today: dt.date,
                   is_iam: bool) -> list[tuple[str, str]]:
    """(field, problem) for everything wrong with one waiver on its own."""
    problems: list[tuple[str, str]] = []
    for name in FIELDS:
        if not isinstance(entry.get(name), str) or not str(entry.get(name)).strip():
            problems.append((name, "is required but missing"))
    extra = sorted(set(entry) - {*FIELDS, "rule"})
    problems += [(name, "is not a waiver field; expected one of " + ", ".join(FIELDS)) for name in extra]
    if isinstance(entry.get("expires"), str):
        problem = expiry_problem(entry["expires"], today)
        if problem:
            problems.append(("expires", problem))
    ticket = entry.get("ticket")
    if isinstance(ticket, str) and ticket and not TICKET.match(ticket):
        problems.append(("ticket", f"{ticket!r} is not a ticket; expected a tracker key like OPS-412"))
    if isinstance(entry.get("reason"), str) and entry.get("reason"):
        problem = reason_problem(entry["reason"])
        if problem:
            problems.append(("reason", problem))
    if rule in NEVER_WAIVED:
        problems.append(("rule", f"{rule} is never waived: {NEVER_WAIVED[rule]}; expected the container fixed"))
    if is_iam and stack_kind(stack) == "prod":
        problems.append(("rule", f"{rule} is an IAM rule, and IAM rules cannot be waived in {stack}; "
                                 "expected the grant fixed"))
    return problems


def parse(config_waivers: Any, rule: str, stack: str, today: dt.date, is_iam: bool) -> list[Waiver]:
    """The valid waivers of a rule's config; anything malformed is left out (so waives nothing)."""
    valid: list[Waiver] = []
    for raw in cast(list[Any], config_waivers) if isinstance(config_waivers, list) else []:
        entry = as_map(raw)
        if entry.get("rule", rule) != rule:
            continue
        if entry and not field_problems(entry, rule, stack, today, is_iam):
            valid.append(Waiver(rule, *(str(entry[f]) for f in FIELDS)))
    return valid


def tenant_hosts(resources: Sequence[Resource]) -> dict[str, set[str]]:
    """Each tenant's hosts, from the names TenantSite gives its records (components/tenant.py):
    `tenant-<slug>-subdomain` (its platform hostname) and `tenant-<slug>-custom-<host key>`."""
    hosts: dict[str, set[str]] = {}
    for r in resources:
        if not r.name.startswith("tenant-"):
            continue
        if r.type.startswith("cloudflare:index/") and r.name.endswith("-subdomain") and isinstance(r.get("name"), str):
            slug = r.name.removeprefix("tenant-").removesuffix("-subdomain")
            if str(r.get("name")).startswith(f"{slug}."):
                hosts.setdefault(slug, set()).add(str(r.get("name")))
    for r in resources:
        hostname = r.get("hostname")
        if r.type == "cloudflare:index/customHostname:CustomHostname" and isinstance(hostname, str):
            key = hostname.replace(".", "-")
            for slug in hosts:
                if r.name == f"tenant-{slug}-custom-{key}":
                    hosts[slug].add(hostname)
    return hosts


def subject_hosts(subject: str, resource_name: str, resources: Sequence[Resource] | None) -> set[str]:
    """What a subject stands for: a tenant's hosts, one host, or the waived resource itself."""
    if subject == resource_name:
        return {subject}
    if resources is None:
        return set()
    tenants = tenant_hosts(resources)
    if subject in tenants:
        return tenants[subject]
    known = {h for hosts in tenants.values() for h in hosts} | _platform_hosts(resources)
    return {subject} if subject in known else set()


def _platform_hosts(resources: Sequence[Resource]) -> set[str]:
    return {str(r.get("name")) for r in resources
            if r.type in ("cloudflare:index/dnsRecord:DnsRecord", "cloudflare:index/record:Record")
            and isinstance(r.get("name"), str)}
