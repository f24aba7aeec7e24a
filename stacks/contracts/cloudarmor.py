"""Cloud Armor security policies (`gcp:compute/securityPolicy:SecurityPolicy`): rule priorities, the default
rule, and basic match conditions."""

from __future__ import annotations

from collections.abc import Sequence

from stacks.contracts.rule import Context, Planned, Problem, Rule, get, items

POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
DEFAULT_PRIORITY = 2147483647
MAX_SRC_IP_RANGES = 10


def _priorities(resource: Planned, _: Context) -> Sequence[Problem]:
    rules = items(get(resource.inputs, "rules"))
    if not rules:
        return []
    priorities = [r.get("priority") for r in rules]
    problems: list[Problem] = []
    out = [p for p in priorities if not isinstance(p, int) or not 0 <= p <= DEFAULT_PRIORITY]
    if out:
        problems.append(f"priorities out of 0..{DEFAULT_PRIORITY}: {out}")
    duplicates = sorted({p for p in priorities if isinstance(p, int) and priorities.count(p) > 1})
    if duplicates:
        problems.append(f"duplicate priorities {duplicates}")
    default = [r for r in rules if r.get("priority") == DEFAULT_PRIORITY]
    if not default or get(default[0], "match", "config", "srcIpRanges") != ["*"]:
        problems.append(f"no default rule (priority {DEFAULT_PRIORITY} matching srcIpRanges ['*'])")
    return problems


def _ranges_per_rule(resource: Planned, _: Context) -> Sequence[Problem]:
    return [f"rule {r.get('priority')}: {len(ranges)} srcIpRanges"
            for r in items(get(resource.inputs, "rules"))
            if len(ranges := items(get(r, "match", "config", "srcIpRanges"))) > MAX_SRC_IP_RANGES]


_TYPES = frozenset({POLICY})
RULES: tuple[Rule, ...] = (
    Rule("CA-PRIO-001", "Cloud Armor", "rule priorities are unique integers 0..2147483647 and the policy has its "
         "default rule at 2147483647 matching '*'",
         "pulumi-gcp 10.2.0 compute/security_policy.py rules: \"There must always be a default rule (rule with "
         "priority 2147483647 and match '*')\"; compute/_inputs.py priority: \"The priority must be a value "
         "between 0 and 2147483647\"", _TYPES, _priorities),
    Rule("CA-IPS-001", "Cloud Armor", "a basic match condition lists at most 10 IP addresses or ranges",
         "https://cloud.google.com/armor/quotas (limits: \"Number of IP addresses or IP address ranges per "
         "rule: 10\"); "
         "https://cloud.google.com/armor/docs/create-security-policy-rules (\"A basic match condition contains "
         "lists of IP addresses or lists of IP address ranges\")", _TYPES, _ranges_per_rule),
)
