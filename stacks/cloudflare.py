"""What each Cloudflare plan allows the edge layer to declare. Config validation checks a stack's edge,
built by the same code that declares it (`components.edge.edge_rules`), against its zone's plan.

Sources, all in github.com/cloudflare/cloudflare-docs (the data file behind the docs' per-plan tables
is `src/content/plans/index.json` at 0188ca2f; the pages render it with `<FeatureTable>`):
- RATE_LIMITING: `src/content/partials/waf/rate-limiting-availability-by-plan.mdx` at 07acbb66, shown on
  https://developers.cloudflare.com/waf/rate-limiting-rules/#availability ("Number of rules | 1 | 2 | 5",
  "Counting periods ... 10 s | up to 1 min | up to 10 min", "Mitigation timeout ... 10 s | up to 1 h |
  up to 1 day", "Counting characteristics: IP | IP | IP, IP with NAT support", "Available fields in
  rule expression: Path, Verified Bot | Host, URI, Path, Full URI, Query, Verified Bot | ... Method,
  Source IP, User Agent"); the values the API takes, `waf/rate-limiting-rules/parameters.mdx` at
  12dd7ce4 ("`10`, `60` ..., `120`, `300`, `600`, or `3600`"). Enterprise has 100 rules only with
  application security or Advanced Rate Limiting on its contract (footnote 5), 5 otherwise.
- CACHE_RULES: https://developers.cloudflare.com/cache/how-to/cache-rules/ (plans `cache.cache_rules`:
  10 / 25 / 50 / 300 rules; `cache.cache_key`: custom key header, cookie, host, user and query string
  Enterprise only; `cache.edge_cache_ttl.minimum`: 2 h / 1 h / 1 s / 1 s).
- ORIGIN_RULES: https://developers.cloudflare.com/rules/origin-rules/ (plans `rules.origin_rules`:
  10 / 25 / 50 / 300 rules, "Override Host header" Enterprise only); REDIRECT_RULES: plans
  `rules.single_redirects.num_rules` 10 / 25 / 50 / 300.
- WAF_MANAGED: plans `security.waf_a_managed_rules` ("Cloudflare Managed Ruleset" and "Cloudflare OWASP
  Core Ruleset": "Available on paid plans").
- CUSTOM_RULES: https://developers.cloudflare.com/waf/custom-rules/ ("Number of rules | 5 | 20 | 100 | 1,000",
  "Supported actions | All except Log | All except Log | All except Log | All"): the storefront's skip rule.
- MANAGED_ONCE: https://developers.cloudflare.com/waf/managed-rules/#zone-level-deployment ("At the zone level, you
  can only deploy each managed ruleset once"; cloudflare-docs `src/content/docs/waf/managed-rules/index.mdx`).
- EXPRESSIONS: `src/content/partials/ruleset-engine/max-expression-length.mdx` at 2678ac4c: "The maximum
  length of a rule expression is 4,096 characters."
- CUSTOM_HOSTNAMES: https://developers.cloudflare.com/cloudflare-for-platforms/cloudflare-for-saas/plans/
  (100 included, 50,000 at most below Enterprise; "Custom metadata" a paid Enterprise add-on, refused
  otherwise with `403 | 1413 | No custom metadata access has been allocated for this zone.`).
- API: https://developers.cloudflare.com/fundamentals/api/reference/limits/ ("1200 requests per five
  minute period per user"; past it "all API calls for the next five minutes will be blocked").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Plan = Literal["free", "pro", "business", "enterprise"]
PLANS: tuple[Plan, ...] = ("free", "pro", "business", "enterprise")

EXPRESSION_MAX_CHARS = 4096
API_REQUESTS_PER_5_MINUTES = 1200
_API_PERIODS = (10, 60, 120, 300, 600, 3600)
_API_TIMEOUTS = (10, 60, 120, 300, 600, 3600, 86400)


@dataclass(frozen=True)
class PlanLimits:
    rate_limit_rules: int
    rate_limit_periods_s: tuple[int, ...]
    rate_limit_mitigation_timeouts_s: tuple[int, ...]
    rate_limit_characteristics: frozenset[str]
    """`cf.colo.id` is mandatory on every plan; the rest count requests per client."""
    rate_limit_fields: frozenset[str] | None
    """Fields a rate-limiting rule's expression may use; None: any request field (Enterprise)."""
    cache_rules: int
    custom_cache_key: bool
    """`cache_key.custom_key` by header, cookie, host, user or query string."""
    edge_ttl_min_s: int
    origin_rules: int
    origin_host_header: bool
    redirect_rules: int
    config_rules: int
    """Configuration rules (`http_config_settings`), and request header transform rules too: 10 is the
    smallest quota of the Rules products on any plan; the exact per-plan numbers were not found in the
    docs, so only that floor is claimed."""
    custom_rules: int
    """WAF custom rules (`http_request_firewall_custom`)."""
    waf_managed_rulesets: bool
    """The Cloudflare Managed and OWASP Core rulesets (the Free Managed Ruleset runs on every plan)."""
    custom_hostnames_max: int | None
    custom_metadata: bool
    """Only where Cloudflare's account team enabled it; no plan has it by default."""


_PAID_FIELDS = frozenset({"http.host", "http.request.uri", "http.request.uri.path", "http.request.full_uri",
                          "http.request.uri.query", "cf.bot_management.verified_bot"})

LIMITS: dict[Plan, PlanLimits] = {
    "free": PlanLimits(
        rate_limit_rules=1, rate_limit_periods_s=(10,), rate_limit_mitigation_timeouts_s=(10,),
        rate_limit_characteristics=frozenset({"cf.colo.id", "ip.src"}),
        rate_limit_fields=frozenset({"http.request.uri.path", "cf.bot_management.verified_bot"}),
        cache_rules=10, custom_cache_key=False, edge_ttl_min_s=7200, origin_rules=10, origin_host_header=False,
        redirect_rules=10, config_rules=10, custom_rules=5,
        waf_managed_rulesets=False, custom_hostnames_max=50_000, custom_metadata=False),
    "pro": PlanLimits(
        rate_limit_rules=2, rate_limit_periods_s=tuple(p for p in _API_PERIODS if p <= 60),
        rate_limit_mitigation_timeouts_s=tuple(t for t in _API_TIMEOUTS if t <= 3600),
        rate_limit_characteristics=frozenset({"cf.colo.id", "ip.src"}), rate_limit_fields=_PAID_FIELDS,
        cache_rules=25, custom_cache_key=False, edge_ttl_min_s=3600, origin_rules=25, origin_host_header=False,
        redirect_rules=25, config_rules=10, custom_rules=20,
        waf_managed_rulesets=True, custom_hostnames_max=50_000, custom_metadata=False),
    "business": PlanLimits(
        rate_limit_rules=5, rate_limit_periods_s=tuple(p for p in _API_PERIODS if p <= 600),
        rate_limit_mitigation_timeouts_s=_API_TIMEOUTS,
        rate_limit_characteristics=frozenset({"cf.colo.id", "ip.src", "cf.unique_visitor_id"}),
        rate_limit_fields=_PAID_FIELDS | {"http.request.method", "ip.src", "http.user_agent"},
        cache_rules=50, custom_cache_key=False, edge_ttl_min_s=1, origin_rules=50, origin_host_header=False,
        redirect_rules=50, config_rules=10, custom_rules=100,
        waf_managed_rulesets=True, custom_hostnames_max=50_000, custom_metadata=False),
    "enterprise": PlanLimits(
        rate_limit_rules=5, rate_limit_periods_s=_API_PERIODS, rate_limit_mitigation_timeouts_s=_API_TIMEOUTS,
        rate_limit_characteristics=frozenset({"cf.colo.id", "ip.src", "cf.unique_visitor_id"}),
        rate_limit_fields=None,
        cache_rules=300, custom_cache_key=True, edge_ttl_min_s=1, origin_rules=300, origin_host_header=True,
        redirect_rules=300, config_rules=10, custom_rules=1000,
        waf_managed_rulesets=True, custom_hostnames_max=None, custom_metadata=False),
}

SOURCES = {
    "rate_limit": "https://developers.cloudflare.com/waf/rate-limiting-rules/#availability",
    "cache": "https://developers.cloudflare.com/cache/how-to/cache-rules/",
    "origin": "https://developers.cloudflare.com/rules/origin-rules/",
    "redirect": "https://developers.cloudflare.com/rules/url-forwarding/single-redirects/",
    "config": "https://developers.cloudflare.com/rules/configuration-rules/",
    "transform": "https://developers.cloudflare.com/rules/transform/request-header-modification/",
    "waf": "https://developers.cloudflare.com/waf/managed-rules/",
    "custom": "https://developers.cloudflare.com/waf/custom-rules/",
    "managed_once": "https://developers.cloudflare.com/waf/managed-rules/#zone-level-deployment",
    "expression": "https://developers.cloudflare.com/ruleset-engine/rules-language/expressions/",
    "saas": "https://developers.cloudflare.com/cloudflare-for-platforms/cloudflare-for-saas/plans/",
    "api": "https://developers.cloudflare.com/fundamentals/api/reference/limits/",
}
