"""Cloudflare rulesets (`cloudflare:index/ruleset:Ruleset`): entry points, managed rulesets and rate limits.
The per-plan numbers are stacks/cloudflare.py's (LIMITS, SOURCES); these rules apply them to the planned
rulesets, whatever code built them."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from stacks.cloudflare import LIMITS, SOURCES
from stacks.contracts.rule import Context, Planned, Problem, Rule, get, items

RULESET = "cloudflare:index/ruleset:Ruleset"
_RULESETS_DOC = "https://developers.cloudflare.com/ruleset-engine/about/rulesets/"
_DEPLOY_DOC = "https://developers.cloudflare.com/ruleset-engine/managed-rulesets/deploy-managed-ruleset/"


def _zone_entry_points(plan: Sequence[Planned]) -> dict[tuple[str, str], list[Planned]]:
    by_phase: dict[tuple[str, str], list[Planned]] = defaultdict(list)
    for ruleset in (r for r in plan if r.type == RULESET and get(r.inputs, "kind") == "zone"):
        zone, phase = get(ruleset.inputs, "zoneId"), get(ruleset.inputs, "phase")
        if isinstance(zone, str) and isinstance(phase, str):
            by_phase[(zone, phase)].append(ruleset)
    return by_phase


def _one_entry_point(plan: Sequence[Planned], _: Context) -> Sequence[tuple[Planned, Problem]]:
    return [(rulesets[1], f"{len(rulesets)} zone rulesets for phase {phase}: "
                          f"{', '.join(r.name for r in rulesets)}")
            for (_zone, phase), rulesets in sorted(_zone_entry_points(plan).items()) if len(rulesets) > 1]


def _managed_once(plan: Sequence[Planned], _: Context) -> Sequence[tuple[Planned, Problem]]:
    found: list[tuple[Planned, Problem]] = []
    for (_zone, phase), rulesets in sorted(_zone_entry_points(plan).items()):
        executed: Counter[str] = Counter()
        for ruleset in rulesets:
            for rule in items(get(ruleset.inputs, "rules")):
                target = get(rule, "actionParameters", "id")
                if get(rule, "action") == "execute" and isinstance(target, str):
                    executed[target] += 1
        twice = sorted(f"{ruleset_id} x{n}" for ruleset_id, n in executed.items() if n > 1)
        if twice:
            found.append((rulesets[0], f"phase {phase} executes {', '.join(twice)}"))
    return found


def _rate_limits(resource: Planned, context: Context) -> Sequence[Problem]:
    if context.zone_plan is None or get(resource.inputs, "phase") != "http_ratelimit":
        return []
    limits = LIMITS[context.zone_plan]
    problems: list[Problem] = []
    rules = items(get(resource.inputs, "rules"))
    if len(rules) > limits.rate_limit_rules:
        problems.append(f"{len(rules)} rate limiting rules on {context.zone_plan} (at most {limits.rate_limit_rules})")
    for rule in rules:
        period, timeout = get(rule, "ratelimit", "period"), get(rule, "ratelimit", "mitigationTimeout")
        if isinstance(period, int) and period not in limits.rate_limit_periods_s:
            problems.append(f"period {period} s on {context.zone_plan} (allowed {limits.rate_limit_periods_s})")
        if isinstance(timeout, int) and timeout not in limits.rate_limit_mitigation_timeouts_s:
            problems.append(f"mitigationTimeout {timeout} s on {context.zone_plan} "
                            f"(allowed {limits.rate_limit_mitigation_timeouts_s})")
    return problems


RULES: tuple[Rule, ...] = (
    Rule("CF-ENTRY-001", "Cloudflare", "a zone has at most one entry point ruleset per phase (one `kind: zone` "
         "ruleset per zone and phase)", _RULESETS_DOC + " (\"Each phase has at most one entry point ruleset at "
         "the account level and at the zone level\")", check_plan=_one_entry_point),
    Rule("CF-MANAGED-001", "Cloudflare", "each managed ruleset is executed at most once in a zone's phase entry "
         "point (express per-host differences as overrides or skip rules of one execution)", _DEPLOY_DOC +
         " (\"At the zone level, you can only deploy each managed ruleset once\")", check_plan=_managed_once),
    Rule("CF-RL-001", "Cloudflare", "rate limiting rules: count, counting period and mitigation timeout allowed "
         "by the zone's plan", SOURCES["rate_limit"] + " (table in stacks/cloudflare.py LIMITS: \"Number of "
         "rules | 1 | 2 | 5\", \"Counting periods ... 10 s | up to 1 min | up to 10 min\", \"Mitigation timeout "
         "... 10 s | up to 1 h | up to 1 day\")", frozenset({RULESET}), _rate_limits),
)
