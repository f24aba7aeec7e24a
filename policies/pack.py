"""The pack table: every rule with its id, what it checks, why, the requirement it enforces, its
severity and enforcement level. `policies/__main__.py` serves it; `POLICIES.md` is generated from it.

Waivers: a stack may waive one rule for one resource, with a reason (`platform:waivers`). They reach
the pack as policy config (`{"waivers": {"<resource name>": "<reason>"}}`); a waived resource is
reported as not applicable, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.rule import NotApplicable, Resource, Rule
from policies.rules import (
    data_no_plaintext_secret_env,
    data_pocketbase_backups,
    data_pocketbase_private,
    data_pocketbase_single_volume,
    data_redis_private,
    dns_web_records_proxied,
    iam_cloudflare_token_scope,
    iam_cloudrun_public_invoker,
    iam_cloudrun_service_account,
    iam_gcp_project_roles,
    iam_vercel_sensitive_env,
    image_immutable,
    logs_retention,
    scale_engine_replicas,
    size_within_document,
    tls_https_redirect,
    tls_zone_settings,
    waf_covers_proxied_hosts,
    waf_owasp_blocks_in_prod,
    waf_rate_limits,
)

PACK_NAME = "platform-policies"

RULES: tuple[Rule, ...] = (
    Rule("PLAT-IAM-001", "Cloudflare API tokens cover one zone, allowed permissions only, and expire",
         "A leaked token must not reach other zones or the account, nor live forever.", "S3", "critical",
         "mandatory", resource_check=iam_cloudflare_token_scope.check,
         config_defaults={"allowed_permission_groups": ["e17beae8b8cb423a99b1730f21238bed",
                                                        "c8fed203ed3043cba015a93ad1616f1f"],
                          "max_lifetime_days": 400}),
    Rule("PLAT-IAM-002", "No primitive or admin role granted on a GCP project",
         "Project-wide roles give every service power over every other.", "S3", "critical", "mandatory",
         resource_check=iam_gcp_project_roles.check),
    Rule("PLAT-IAM-003", "Every Cloud Run service runs as a dedicated service account",
         "The default compute account holds Editor on the project.", "S3", "high", "mandatory",
         resource_check=iam_cloudrun_service_account.check),
    Rule("PLAT-IAM-004", "Only services labelled public may be invoked by allUsers",
         "Internal services must not be callable from the internet.", "S3", "high", "mandatory",
         stack_check=iam_cloudrun_public_invoker.check),
    Rule("PLAT-IAM-005", "Vercel variables that hold credentials are sensitive",
         "Sensitive variables cannot be read back from the dashboard or API.", "S3", "medium", "mandatory",
         resource_check=iam_vercel_sensitive_env.check),
    Rule("PLAT-TLS-001", "Zones use Full (strict) TLS, TLS 1.2 or newer, TLS 1.3 on",
         "TLS is mandatory in transit, to the origin too, with a certificate that is checked.", "S1", "critical",
         "mandatory", resource_check=tls_zone_settings.check),
    Rule("PLAT-TLS-002", "Plain HTTP is redirected to HTTPS",
         "No page or API answer may travel unencrypted.", "S1", "high", "mandatory",
         stack_check=tls_https_redirect.check),
    Rule("PLAT-WAF-001", "Every proxied hostname is behind the Managed and OWASP rulesets",
         "The WAF protects against the OWASP Top 10 only where it runs.", "S2", "critical", "mandatory",
         stack_check=waf_covers_proxied_hosts.check),
    Rule("PLAT-WAF-002", "Production blocks OWASP matches",
         "Log-only mode detects attacks without stopping them; in prod it needs a reason.", "S2", "high",
         "mandatory", resource_check=waf_owasp_blocks_in_prod.check,
         config_defaults={"production_stacks": ["prod"]}),
    Rule("PLAT-WAF-003", "Rate limits count per client IP, with a bounded budget",
         "An unbounded limit is no limit against scraping and credential stuffing.", "S2", "medium",
         "mandatory", resource_check=waf_rate_limits.check, config_defaults={"max_requests_per_minute": 6000}),
    Rule("PLAT-DNS-001", "Web hosts' DNS records are proxied",
         "An unproxied record exposes the origin and bypasses the WAF.", "S2", "high", "mandatory",
         resource_check=dns_web_records_proxied.check),
    Rule("PLAT-DATA-001", "PocketBase runs one replica on a persistent volume",
         "SQLite takes one writer; without a volume every restart loses the data.", "C2, L3", "critical",
         "mandatory", resource_check=data_pocketbase_single_volume.check),
    Rule("PLAT-DATA-002", "PocketBase backs up daily, off the host outside integration",
         "Daily snapshots bound the data lost in a disaster; a backup on the same volume dies with it.",
         "C7, S4", "high", "mandatory", resource_check=data_pocketbase_backups.check),
    Rule("PLAT-DATA-003", "Redis is private and password-protected",
         "Sessions and commission results must not be readable from the internet.", "L4, S3", "critical",
         "mandatory", resource_check=data_redis_private.check),
    Rule("PLAT-DATA-005", "Cloud Run credentials come from Secret Manager, never literal values",
         "A literal environment value is readable by anyone who may view the service.", "S3", "high",
         "mandatory", resource_check=data_no_plaintext_secret_env.check),
    Rule("PLAT-DATA-004", "PocketBase is public only when the engine must reach it so",
         "Its admin UI is an attack surface; expose it only when no private path exists.", "S3", "high",
         "mandatory", stack_check=data_pocketbase_private.check),
    Rule("PLAT-SCALE-001", "The engine keeps at least one warm instance in staging and prod",
         "Cold starts break the latency SLO (M1) for the first requests.", "C1", "high", "mandatory",
         resource_check=scale_engine_replicas.check_warm, config_defaults={"warm_stacks": ["staging", "prod"]}),
    Rule("PLAT-SCALE-002", "The engine scales to at most the reviewed bound",
         "Past 3 to 5 instances PocketBase, not the engine, is the bottleneck, and cost grows.", "C1, A6",
         "medium", "mandatory", resource_check=scale_engine_replicas.check_ceiling,
         config_defaults={"max_instances": 5}),
    Rule("PLAT-SIZE-001", "PocketBase stays within 2 vCPU and 4 GiB",
         "Past that the document plans a move to Postgres, not a bigger SQLite.", "C2, A7", "medium",
         "mandatory", resource_check=size_within_document.check_pocketbase,
         config_defaults={"max_vcpus": 2, "max_memory_gib": 4}),
    Rule("PLAT-SIZE-002", "Redis stays within 2 vCPU and 4 GiB",
         "A cache of 5-minute results needs little; growth is a miss-rate review.", "C3", "medium",
         "mandatory", resource_check=size_within_document.check_redis,
         config_defaults={"max_vcpus": 2, "max_memory_gib": 4}),
    Rule("PLAT-LOG-001", "Cloud Logging keeps logs at least 90 days",
         "Audit logs must be kept 90 days; Cloud Logging keeps 30 unless told.", "S5", "high", "mandatory",
         stack_check=logs_retention.check_cloud_logging, config_defaults={"min_days": 90}),
    Rule("PLAT-LOG-002", "Railway services ship their logs to a 90-day sink",
         "Railway keeps logs 21 days at most.", "S5", "medium", "advisory",
         stack_check=logs_retention.check_railway_sink,
         config_defaults={"min_days": 90, "sink_types": ["gcp:logging/projectSink:ProjectSink"]}),
    Rule("PLAT-IMG-001", "Services run pinned images, never latest",
         "A moving tag makes a deploy unrepeatable and a rollback impossible.", "D2, D8", "high", "mandatory",
         resource_check=image_immutable.check),
)

_SEVERITY = {"low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH, "critical": Severity.CRITICAL}
_LEVEL = {"advisory": EnforcementLevel.ADVISORY, "mandatory": EnforcementLevel.MANDATORY}


def _config(rule: Rule, given: Mapping[str, Any]) -> dict[str, Any]:
    return {**(rule.config_defaults or {}), "waivers": {}, **given}


def _schema(rule: Rule) -> PolicyConfigSchema:
    properties: dict[str, dict[str, Any]] = {
        "waivers": {"type": "object", "additionalProperties": {"type": "string", "minLength": 20},
                    "description": "resource name -> why this rule is waived for it"}}
    for key, default in (rule.config_defaults or {}).items():
        kind = "array" if isinstance(default, list) else "integer" if isinstance(default, int) else "string"
        properties[key] = {"type": kind, "default": default}
    return PolicyConfigSchema(properties=properties)


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    check = rule.resource_check
    assert check is not None

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        config = _config(rule, args.get_config())
        if args.name in config["waivers"]:
            args.not_applicable(f"waived for {args.name}: {config['waivers'][args.name]}")
        verdict = check(Resource(args.resource_type, args.name, args.urn, args.props), config)
        if isinstance(verdict, NotApplicable):
            args.not_applicable(verdict.reason)
            return
        for message in verdict:
            report(message, None)

    return ResourceValidationPolicy(name=rule.id, description=rule.title, validate=validate,
                                    enforcement_level=_LEVEL[rule.level], severity=_SEVERITY[rule.severity],
                                    config_schema=_schema(rule))


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    check = rule.stack_check
    assert check is not None

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        config = _config(rule, args.get_config())
        resources = [Resource(r.resource_type, r.name, r.urn, r.props) for r in args.resources]
        for urn, message in check(resources, config):
            if urn.rsplit("::", 1)[-1] not in config["waivers"]:
                report(message, urn)

    return StackValidationPolicy(name=rule.id, description=rule.title, validate=validate,
                                 enforcement_level=_LEVEL[rule.level], severity=_SEVERITY[rule.severity],
                                 config_schema=_schema(rule))


def build_pack() -> PolicyPack:
    policies: list[Policy] = [_resource_policy(r) if r.resource_check is not None else _stack_policy(r)
                              for r in RULES]
    return PolicyPack(name=PACK_NAME, policies=policies, enforcement_level=EnforcementLevel.MANDATORY,
                      description="Least-privilege IAM and the architecture document's security rules")
