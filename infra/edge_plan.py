"""A stack's edge against its zone's Cloudflare plan (stacks/cloudflare.py).

The rules checked are the ones `components.edge` declares, built by the same functions from the same
model, so the check and the deploy cannot drift apart. A stack whose edge does not fit fails config
validation (exit 2) before any resource is declared, naming the key to change and the limit's source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import pulumi

from components.backends.service import DnsEntry
from components.edge import MANAGED_RULESET_ID, OWASP_RULESET_ID, EdgeArgs, RateLimitOverride, edge_rules
from infra.model import StackModel
from stacks.cloudflare import EXPRESSION_MAX_CHARS, LIMITS, PLANS, SOURCES, Plan, PlanLimits

PLAN_KEY = "platform:zone.plan"
_FIELD = re.compile(r"\b(?:http|ip|cf|ssl)(?:\.[a-z0-9_]+)+|\bssl\b")


# What validation builds the transform rule with: the rule's shape, not the secret, is what a plan limits.
ORIGIN_AUTH_STAND_IN = "[secret]"
STOREFRONT_KEY_STAND_IN = "0" * 48
"""As long as the generated key (components/frontend.py): the rule's expression length is what a plan limits."""


def edge_args(model: StackModel, api_records: Sequence[DnsEntry] = (),
              origin_auth_secret: pulumi.Input[str] = ORIGIN_AUTH_STAND_IN,
              storefront_key: pulumi.Input[str] = STOREFRONT_KEY_STAND_IN,
              origin_gate: pulumi.Input[str] | None = ORIGIN_AUTH_STAND_IN,
              storefront_auth: pulumi.Input[str] = STOREFRONT_KEY_STAND_IN) -> EdgeArgs:
    """The edge of `model`: what the program declares and what validation checks."""
    return EdgeArgs(
        zone_id=model.zone.zone_id,
        zone_name=model.zone.name,
        tokens_expire_on=model.zone.tokens_expire_on,
        settings=model.profile.edge,
        api_records=api_records,
        custom_domains_enabled=any(t.custom_domains for t in model.tenants),
        rate_limit_overrides=[RateLimitOverride(t.hostnames, t.rate_limit_per_minute)
                              for t in model.tenants if t.rate_limit_per_minute is not None],
        waf_log_only_hosts=[h for t in model.tenants if t.waf_log_only for h in t.hostnames],
        api_origin_ssl="full" if model.services["engine"].backend == "railway" else None,
        origin_auth_secret=origin_auth_secret,
        storefront_key=storefront_key,
        # Only a load balancer's Cloud Armor reads it (components/backends/cloudrun.py).
        origin_gate=origin_gate if model.services["engine"].backend == "cloudrun" else None,
        storefront_hosts=[h for t in model.tenants for h in t.hostnames],
        storefront_auth=storefront_auth,
    )


Rule = dict[str, Any]


def _rules(phase_rules: Sequence[Any]) -> list[Rule]:
    """The SDK's typed dicts, read as plain JSON."""
    return [cast(Rule, rule) for rule in phase_rules]


def _fits(plan: Plan, ok: Callable[[PlanLimits], bool]) -> str:
    """The plans, from this one up, that satisfy `ok(limits)`; for the message's "expected"."""
    better = [p for p in PLANS[PLANS.index(plan):] if ok(LIMITS[p])]
    return f"a plan that allows it ({', '.join(better)})" if better else "no Cloudflare plan allows it"


def check_edge(model: StackModel) -> list[str]:
    plan = model.zone.plan
    limits = LIMITS[plan]
    args = edge_args(model)
    rules = {phase: _rules(phase_rules) for phase, phase_rules in
             edge_rules(args.settings, args.zone_name, args.rate_limit_overrides, args.waf_log_only_hosts,
                        args.api_origin_ssl, args.origin_auth_secret, args.storefront_key, args.origin_gate,
                        args.storefront_hosts, args.storefront_auth).items()}
    problems = _rate_limits(plan, limits, rules["http_ratelimit"])
    problems += _cache(plan, limits, rules["http_request_cache_settings"])
    problems += _counts(plan, limits, rules)
    problems += _waf(plan, limits, rules["http_request_firewall_managed"])
    problems += _expressions(rules)
    custom = sum(len(t.custom_domains) for t in model.tenants)
    if limits.custom_hostnames_max is not None and custom > limits.custom_hostnames_max:
        problems.append(f"platform:tenants: {custom} custom domains, but a {plan!r} zone holds at most "
                        f"{limits.custom_hostnames_max:,} custom hostnames; expected at most that many "
                        f"(Cloudflare for SaaS: {SOURCES['saas']})")
    return problems


def _rate_limits(plan: Plan, limits: PlanLimits, rules: Sequence[Rule]) -> list[str]:
    problems: list[str] = []
    if len(rules) > limits.rate_limit_rules:
        per_tenant = len(rules) - 2
        problems.append(
            f"{PLAN_KEY}: {plan!r} allows {limits.rate_limit_rules} rate-limiting rules per zone, but this stack's "
            f"edge needs {len(rules)} (the API, the storefronts, and {per_tenant} for the distinct values of "
            f"platform:tenants[*].rateLimitPerMinute); expected "
            f"{_fits(plan, lambda lim: lim.rate_limit_rules >= len(rules))}, or fewer distinct per-tenant limits "
            f"({SOURCES['rate_limit']})")
    for rule in rules:
        ratelimit = rule["ratelimit"]
        what = f"rate-limiting rule {rule['description']!r}"
        if ratelimit["period"] not in limits.rate_limit_periods_s:
            problems.append(f"{PLAN_KEY}: {plan!r} counts over {_list(limits.rate_limit_periods_s)} seconds, but the "
                            f"{what} counts over {ratelimit['period']}; expected "
                            f"{_fits(plan, lambda lim, p=ratelimit['period']: p in lim.rate_limit_periods_s)} "
                            f"({SOURCES['rate_limit']})")
        timeout = ratelimit["mitigation_timeout"]
        if timeout not in limits.rate_limit_mitigation_timeouts_s:
            problems.append(f"{PLAN_KEY}: {plan!r} blocks for {_list(limits.rate_limit_mitigation_timeouts_s)} "
                            f"seconds, but the {what} blocks for {timeout}; expected "
                            f"{_fits(plan, lambda lim, t=timeout: t in lim.rate_limit_mitigation_timeouts_s)} "
                            f"({SOURCES['rate_limit']})")
        extra = set(ratelimit["characteristics"]) - limits.rate_limit_characteristics
        if extra:
            problems.append(f"{PLAN_KEY}: {plan!r} cannot count requests by {_list(sorted(extra))} (the {what}); "
                            f"expected {_fits(plan, lambda lim, e=extra: e <= lim.rate_limit_characteristics)} "
                            f"({SOURCES['rate_limit']})")
        fields = set(_FIELD.findall(rule["expression"]))
        allowed = limits.rate_limit_fields or frozenset[str]()
        if not _fields_ok(limits, fields):
            problems.append(f"{PLAN_KEY}: {plan!r} rate-limiting rules cannot match on "
                            f"{_list(sorted(fields - allowed))} (the {what}); expected "
                            f"{_fits(plan, lambda lim, f=fields: _fields_ok(lim, f))} "
                            f"({SOURCES['rate_limit']})")
    return problems


def _fields_ok(limits: PlanLimits, fields: set[str]) -> bool:
    return limits.rate_limit_fields is None or fields <= limits.rate_limit_fields


def _cache(plan: Plan, limits: PlanLimits, rules: Sequence[Rule]) -> list[str]:
    problems: list[str] = []
    for rule in rules:
        parameters = _part(rule, "action_parameters")
        if _part(parameters, "cache_key").get("custom_key") and not limits.custom_cache_key:
            problems.append(f"{PLAN_KEY}: {plan!r} has no custom cache keys, but the cache rule "
                            f"{rule['description']!r} sets one; expected "
                            f"{_fits(plan, lambda lim: lim.custom_cache_key)} ({SOURCES['cache']})")
        ttl: int | None = _part(parameters, "edge_ttl").get("default")
        if ttl is not None and ttl < limits.edge_ttl_min_s:
            seconds = ttl
            problems.append(f"{PLAN_KEY}: {plan!r} caches at the edge for at least {limits.edge_ttl_min_s} s, but "
                            f"the cache rule {rule['description']!r} sets {ttl} s; expected "
                            f"{_fits(plan, lambda lim, s=seconds: s >= lim.edge_ttl_min_s)} ({SOURCES['cache']})")
    return problems


def _counts(plan: Plan, limits: PlanLimits, rules: Mapping[str, Sequence[Rule]]) -> list[str]:
    problems: list[str] = []
    for phase, allowed, source in (("http_request_cache_settings", limits.cache_rules, "cache"),
                                   ("http_request_dynamic_redirect", limits.redirect_rules, "redirect"),
                                   ("http_config_settings", limits.config_rules, "config"),
                                   ("http_request_late_transform", limits.config_rules, "transform"),
                                   ("http_request_firewall_custom", limits.custom_rules, "custom"),
                                   ("http_request_origin", limits.origin_rules, "origin")):
        count = len(rules.get(phase, ()))
        if count > allowed:
            problems.append(f"{PLAN_KEY}: {plan!r} allows {allowed} rules in {phase}, but this stack's edge "
                            f"declares {count}; expected a larger plan ({SOURCES[source]})")
    for rule in rules.get("http_request_origin", ()):
        if _part(rule, "action_parameters").get("host_header") and not limits.origin_host_header:
            problems.append(f"{PLAN_KEY}: {plan!r} cannot override the Host header (origin rule "
                            f"{rule['description']!r}); expected {_fits(plan, lambda lim: lim.origin_host_header)} "
                            f"({SOURCES['origin']})")
    return problems


def _waf(plan: Plan, limits: PlanLimits, rules: Sequence[Rule]) -> list[str]:
    paid = {MANAGED_RULESET_ID: "Cloudflare Managed Ruleset", OWASP_RULESET_ID: "Cloudflare OWASP Core Ruleset"}
    used = sorted({paid[r["action_parameters"]["id"]] for r in rules
                   if _part(r, "action_parameters").get("id") in paid})
    if used and not limits.waf_managed_rulesets:
        return [f"{PLAN_KEY}: {plan!r} cannot run the {' and the '.join(used)}, which the WAF needs (S2); "
                f"expected {_fits(plan, lambda lim: lim.waf_managed_rulesets)} ({SOURCES['waf']})"]
    return []


def _expressions(rules: Mapping[str, Sequence[Rule]]) -> list[str]:
    problems: list[str] = []
    for phase, phase_rules in rules.items():
        for rule in phase_rules:
            length = len(rule["expression"])
            if length > EXPRESSION_MAX_CHARS:
                problems.append(
                    f"platform:tenants: the {phase} rule {rule['description']!r} lists too many hosts: its "
                    f"expression is {length:,} characters, Cloudflare's limit is {EXPRESSION_MAX_CHARS:,}; expected "
                    f"fewer tenants with their own rateLimitPerMinute or wafMode log ({SOURCES['expression']})")
    return problems


def _part(rule: Rule, key: str) -> Rule:
    return cast(Rule, rule.get(key) or {})


def _list(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values)
