"""The mutation table of `python3 tools/dev.py mutate` (tools/mutate.py, issue #21.7).

Each mutation is one small change a hurried commit could make: a file, an exact `old` text that must occur
exactly once in it, the `new` text, what it breaks (the requirement id where there is one), and the pytest
selection that should fail on it (fast: seconds to a minute). `regenerate` names generated files
(tools/dev.py GENERATED) the committer would regenerate, because the selection reads them. `harmless` says
why a mutation that survives does not matter, when that is so.

Keep `old` to stable lines: tests/test_mutate.py fails when one no longer occurs exactly once.
"""
# ruff: noqa: E501 (a mutation reads best with its old and new text on one line each)

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str
    old: str
    new: str
    breaks: str
    tests: tuple[str, ...]
    regenerate: tuple[str, ...] = ()
    harmless: str = ""


OBS = "components/observability/generated/"
RULES = tuple(f"{OBS}prometheus-rules{s}.yml" for s in ("", ".staging", ".prod"))
RULE_TESTS = tuple(f"{OBS}prometheus-rules{s}.test.yml" for s in ("", ".staging", ".prod"))
DASHBOARDS = tuple(f"{OBS}dashboards/{n}.json" for n in ("overview", "routes", "tenants"))
OBSERVABILITY = RULES + RULE_TESTS + DASHBOARDS
COMPOSE = ("docker-compose.yml",)

DOC = "tests/test_document_numbers.py"
PROMTOOL = "tests/test_document_promtool.py"
OBJECTIVES = "tests/test_slo_objectives.py"
SIGNALS = "tests/test_slo_signals.py"
PACK = "tests/test_policy_pack.py"
VM = "tests/test_policy_vm.py"
DRILL = "tests/test_drill_checks.py"
WORKFLOWS = "tests/test_workflow_content.py"
DOC_PROFILE = (DOC, "-k", "not plan and not five_minutes and not fires and not burn and not slo and not reads_p95")
"""The document's numbers read from the profiles, without prod's plan (12 s) or the rules. `-k` filters the
whole run, module names included: put no other module whose name says "plan" beside it."""
DOC_RULES = (DOC, "-k", "alert or burn or slo")
"""The document's numbers read from the rules generated now and as committed."""
POLICY_STACKS = "tests/test_policy_stacks.py::test_every_committed_stack_passes_the_pack_with_no_mandatory_violation"
POLICY_PROD = POLICY_STACKS + "[prod]"
CHAOS = ("tests/test_chaos.py", "-k", "fed_to_it or fails_and_shows or lies")
FAILOVER = ("tests/test_failover.py", "-k", "sets_the_config or up_failed or failing_back or without_yes or first_200")
DOMAIN = "tests/engine/test_domain.py"
PLANS = "tests/test_document_plans.py"
BOUNDARIES = "tests/test_policy_boundaries.py"


def M(id: str, file: str, old: str, new: str, breaks: str, *tests: str, regenerate: tuple[str, ...] = (),
      harmless: str = "") -> Mutation:
    return Mutation(id, file, old, new, breaks, tests, regenerate, harmless)


PROD, STAGING, INTEGRATION = "stacks/prod.py", "stacks/staging.py", "stacks/integration.py"
SLOS = "components/observability/slos.yaml"
ENGINE = "components/engine/src/engine/"
DEPLOY, PULL = ".github/workflows/deploy.yml", ".github/workflows/pull-request.yml"

MUTATIONS: tuple[Mutation, ...] = (
    # ---- stacks: the profiles ----
    M("prod-pocketbase-peak-4x8", PROD, 'ServiceProfile("gce", 1000, 2048, 2000, 4096, 1, 1)',
      'ServiceProfile("gce", 1000, 2048, 4000, 8192, 1, 1)', "C2: PocketBase's peak 2 vCPU + 4 GB", *DOC_PROFILE),
    M("prod-pocketbase-steady-1gb", PROD, 'ServiceProfile("gce", 1000, 2048,', 'ServiceProfile("gce", 1000, 1024,',
      "C2: PocketBase's steady 1 vCPU + 2 GB", *DOC_PROFILE),
    M("prod-redis-4gb", PROD, '"redis": ServiceProfile("cloudrun", 1000, 1024, 1000, 1024, 1, 1)',
      '"redis": ServiceProfile("cloudrun", 1000, 4096, 1000, 4096, 1, 1)', "C3: Redis 1 vCPU + 1 GB", *DOC_PROFILE),
    M("prod-engine-max-10", PROD, "1000, 1024, 1, 5, public=True)", "1000, 1024, 1, 10, public=True)",
      "C1: the engine autoscales to 3-5 replicas", *DOC_PROFILE),
    M("prod-engine-min-0", PROD, "1000, 1024, 1, 5, public=True)", "1000, 1024, 0, 5, public=True)",
      "C1: minimum 1 warm instance", *DOC_PROFILE),
    M("prod-backup-weekly", PROD, 'backup_cron="0 3 * * *", backup_retention_days=30',
      'backup_cron="0 3 * * 0", backup_retention_days=30', "C7: daily snapshots", *DOC_PROFILE),
    M("prod-backup-keep-1", PROD, "backup_retention_days=30,", "backup_retention_days=1,",
      "C7/C8: one backup kept instead of 30 days of them", POLICY_PROD, VM, *DOC_PROFILE),
    M("prod-logs-30-days", PROD, "rto_minutes=60, log_retention_days=90,", "rto_minutes=60, log_retention_days=30,",
      "S5: audit logs kept 90 days", *DOC_PROFILE),
    M("prod-rto-2h", PROD, "rto_minutes=60, log_retention_days=90,", "rto_minutes=120, log_retention_days=90,",
      "C8: RTO < 1 h", *DOC_PROFILE),
    M("prod-no-failover-region", PROD, "failover_region_enabled=True,", "failover_region_enabled=False,",
      "C8: failover replica in a secondary region", *DOC_PROFILE),
    M("prod-canary-5xx-5pc", PROD, "rollback_error_rate_percent=0.5,", "rollback_error_rate_percent=5.0,",
      "D8: roll back at the M2 alert's 0.5 % 5xx", *DOC_PROFILE),
    M("prod-canary-p95-1500", PROD, "rollback_p95_latency_ms=700,", "rollback_p95_latency_ms=1500,",
      "D8: roll back at the M1 alert's P95 700 ms", *DOC_PROFILE),
    M("prod-canary-one-step", PROD, "traffic_steps_percent=(10, 50, 100)", "traffic_steps_percent=(100,)",
      "D7: progressive delivery in steps", PLANS, "tests/test_rollout_program.py"),
    M("prod-catalog-ttl-1h", PROD, "catalog_edge_ttl_seconds=86400,", "catalog_edge_ttl_seconds=3600,",
      "C5: catalog JSON cached 24 h at the edge", *DOC_PROFILE),
    M("prod-hsts-1-day", PROD, "hsts_max_age_seconds=63072000,", "hsts_max_age_seconds=86400,",
      "S1: prod's HSTS of at least a year with preload", PACK, POLICY_PROD),
    M("prod-waf-log", PROD, 'waf_action="block",', 'waf_action="log",', "S2: WAF blocks in prod",
      POLICY_PROD),
    M("staging-pocketbase-peak-4x8", STAGING, '"pocketbase": ServiceProfile("railway", 1000, 2048, 2000, 4096, 1, 1)',
      '"pocketbase": ServiceProfile("railway", 1000, 2048, 4000, 8192, 1, 1)', "C2: PocketBase's peak in staging",
      *DOC_PROFILE),
    M("staging-logs-21-days", STAGING, "log_retention_days=90", "log_retention_days=21",
      "S5: audit logs kept 90 days", *DOC_PROFILE),
    M("integration-backup-weekly", INTEGRATION, 'backup_cron="0 3 * * *"', 'backup_cron="0 3 * * 0"',
      "C7: daily snapshots in every stack", *DOC_PROFILE),
    M("integration-catalog-ttl-60s", INTEGRATION, "catalog_edge_ttl_seconds=86400,", "catalog_edge_ttl_seconds=60,",
      "C5: catalog JSON 24 h at the edge", *DOC_PROFILE),
    M("profile-rpo-60s", "stacks/profile.py", "rpo_seconds: int = 5", "rpo_seconds: int = 60",
      "#13: RPO of 5 s", *DOC_PROFILE),
    M("profile-restore-test-weekly", "stacks/profile.py", "restore_test_interval_hours: int = 24",
      "restore_test_interval_hours: int = 168", "A5: the replica restored and verified daily",
      "tests/test_obs_restore_schedule.py", "tests/test_dr.py", PLANS),
    # ---- stacks: the stack files ----
    # Prod's stack file names no backups endpoint any more: prod declares its own bucket on GCS (#25.2).
    M("prod-backups-plain-http", "components/database.py", 'GCS_ENDPOINT = "https://storage.googleapis.com"',
      'GCS_ENDPOINT = "http://storage.googleapis.com"', "S4: backups encrypted in transit",
      "tests/test_policy_vm.py::test_the_prod_plan_passes_the_vm_rules_over_the_analyzer",
      "tests/test_restore.py::test_prod_replicates_to_its_own_bucket_in_the_failover_region_and_backs_up_in_its_region"),
    M("prod-tokens-expire-2035", "Pulumi.prod.yaml", 'tokensExpireOn: "2027-06-30"', 'tokensExpireOn: "2035-06-30"',
      "S3: API tokens expire within 400 days", POLICY_PROD),
    M("prod-environment-staging", "Pulumi.prod.yaml", "platform:environment: prod", "platform:environment: staging",
      "the prod stack judged and sized as staging", POLICY_PROD),
    # ---- components ----
    M("redis-maxmemory-full", "components/cache.py", "return memory_mib * 3 // 4", "return memory_mib",
      "C3: maxmemory at 75 % of Redis's memory (room for the process)", "tests/test_services.py", PLANS),
    M("redis-noeviction", "components/cache.py", 'EVICTION_POLICY = "allkeys-lru"', 'EVICTION_POLICY = "noeviction"',
      "C3/C6: a full cache evicts instead of refusing writes", "tests/test_services.py", DOC),
    M("memorystore-4gb", "components/cache.py", "memory_size_gb=args.size.memory_mib // 1024,", "memory_size_gb=4,",
      "C3: Redis 1 GB", DOC),
    M("memorystore-no-tls", "components/cache.py", 'transit_encryption_mode="SERVER_AUTHENTICATION",',
      'transit_encryption_mode="DISABLED",', "S4: Redis traffic encrypted in transit", POLICY_PROD,
      "tests/test_private_database.py"),
    M("memorystore-no-auth", "components/cache.py", "auth_enabled=True,", "auth_enabled=False,",
      "S4: Redis requires a password", POLICY_PROD, "tests/test_private_database.py"),
    M("pocketbase-keep-1-backup", "components/database.py", '"PB_BACKUP_MAX_KEEP": str(args.backup_retention_days),',
      '"PB_BACKUP_MAX_KEEP": "1",', "C7: backups kept for the profile's retention", DOC, VM, PLANS),
    M("pocketbase-weekly-cron", "components/database.py", '"PB_BACKUP_CRON": args.backup_cron,',
      '"PB_BACKUP_CRON": "0 3 * * 0",', "C7: daily snapshots", POLICY_PROD, VM, PLANS),
    M("pocketbase-restore-test-minutes", "components/database.py",
      'str(args.restore_test_interval_hours * 3600)', 'str(args.restore_test_interval_hours * 60)',
      "A5: the restore test runs every 24 h (hours read as minutes)", "tests/test_obs_restore_schedule.py",
      "tests/test_dr.py", PLANS),
    M("dr-bucket-noncurrent-1-day", "components/database.py",
      '"condition": {"days_since_noncurrent_time": args.retention_days,', '"condition": {"days_since_noncurrent_time": 1,',
      "C8: the DR bucket keeps old versions for the retention", "tests/test_dr.py", POLICY_PROD),
    M("litestream-60s", "components/pocketbase/drtool.py", 'SYNC_INTERVAL = "1s"', 'SYNC_INTERVAL = "60s"',
      "#13: RPO 5 s (Litestream ships every second)", DRILL),
    M("edge-tls-1.0", "components/edge.py", '"min_tls_version": "1.2",', '"min_tls_version": "1.0",',
      "S1: TLS >= 1.2 at the edge", "tests/test_edge.py", POLICY_PROD),
    M("edge-ssl-flexible", "components/edge.py", '"ssl": "strict",', '"ssl": "flexible",',
      "S1: Full (strict) to the origin", "tests/test_edge.py", POLICY_PROD),
    M("edge-tls13-off", "components/edge.py", '"tls_1_3": "on",', '"tls_1_3": "off",', "S1: TLS 1.3 on",
      "tests/test_edge.py", POLICY_PROD),
    M("custom-hostname-tls-1.0", "components/tenant.py", '"settings": {"min_tls_version": "1.2"}',
      '"settings": {"min_tls_version": "1.0"}', "S1: TLS >= 1.2 on tenants' custom hostnames", "tests/test_edge.py",
      POLICY_PROD),
    M("docker-publish-all-interfaces", "components/backends/docker.py", 'LOOPBACK = "127.0.0.1"',
      'LOOPBACK = "0.0.0.0"', "D4: nothing published but on loopback", "tests/test_compose.py", PLANS,
      regenerate=COMPOSE),
    M("docker-publish-private-services", "components/backends/docker.py",
      "published_ports=[spec.port] if spec.size.public else [],", "published_ports=[spec.port],",
      "S4: Redis and PocketBase reachable on the network alone", "tests/test_compose.py", regenerate=COMPOSE),
    M("cloudrun-ingress-all", "components/backends/cloudrun.py",
      'ingress="INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" if spec.size.public else "INGRESS_TRAFFIC_INTERNAL_ONLY",',
      'ingress="INGRESS_TRAFFIC_ALL",', "S2: the engine reachable only through the load balancer (WAF)",
      POLICY_PROD),
    M("cloudrun-scale-to-zero", "components/backends/cloudrun.py",
      '"scaling": {"min_instance_count": spec.size.min_instances,', '"scaling": {"min_instance_count": 0,',
      "C1: minimum 1 warm instance", DOC),
    M("gce-firewall-open", "components/backends/gce.py", "source_ranges=list(target.client_ranges)",
      'source_ranges=["0.0.0.0/0"]', "S4: prod's PocketBase admits only the engine's subnet", VM),
    M("gce-bigger-vm", "components/backends/gce.py",
      "machine_type=machine_type(spec.size.peak_cpu_millis, spec.size.peak_memory_mib),",
      "machine_type=machine_type(4000, 8192),", "C2: PocketBase at most 2 vCPU + 4 GB", DOC, VM),
    M("vercel-previews-public", "components/frontend.py", 'vercel_authentication={"deployment_type": "standard_protection"},',
      'vercel_authentication={"deployment_type": "none"},', "S3: preview deployments not public",
      "tests/test_frontend.py", POLICY_PROD, PLANS),
    M("vercel-secrets-to-previews", "components/frontend.py",
      'targets=["production"] if sensitive else ["production", "preview"],', 'targets=["production", "preview"],',
      "S3: secrets reach production only", "tests/test_frontend.py", "tests/test_secret_flow.py"),
    M("alerts-pages-skip-email", "components/observability/grafana.py",
      '{"matchers": [{"label": "severity", "match": "=~", "value": "page|ticket"}],',
      '{"matchers": [{"label": "severity", "match": "=", "value": "ticket"}],',
      "pages no longer reach e-mail", "tests/test_observability_grafana.py", PLANS),
    M("alerts-pages-stop-at-slack", "components/observability/grafana.py",
      '"contact_point": slack.name, "continue_": True,', '"contact_point": slack.name, "continue_": False,',
      "pages stop at Slack and never reach e-mail", "tests/test_observability_grafana.py", PLANS),
    M("burn-rate-144x", "components/observability/rules.py", '("page", "1h", "5m", 14.4)', '("page", "1h", "5m", 144)',
      "the SRE workbook's fast burn 14.4x", *DOC_RULES, PROMTOOL, regenerate=RULES),
    M("burn-short-window-5m", "components/observability/rules.py", '("page", "6h", "30m", 6.0)',
      '("page", "6h", "5m", 6.0)', "the SRE workbook's 6 h / 30 m window pair", *DOC_RULES, regenerate=RULES),
    # ---- the SLO spec ----
    M("slo-m2-objective-99", SLOS, "objective_percent: 99.9", "objective_percent: 99",
      "M2: 5xx < 0.1 % (objective 99.9 %)", *DOC_RULES, OBJECTIVES, regenerate=OBSERVABILITY),
    M("slo-m1-objective-90", SLOS, "objective_percent: 95", "objective_percent: 90",
      "M1: P95 <= 500 ms", *DOC_RULES, regenerate=RULES),
    M("slo-m1-good-under-1s", SLOS, 'sum(rate(http_request_duration_seconds_bucket{le="0.5"}[{window}]))',
      'sum(rate(http_request_duration_seconds_bucket{le="1.0"}[{window}]))', "M1: good means within 500 ms", *DOC_RULES,
      regenerate=RULES),
    M("alert-m1-above-1s", SLOS, "    above: 0.7\n    for: 5m", "    above: 1.0\n    for: 5m",
      "M1: P95 > 700 ms", *DOC_RULES, PROMTOOL, regenerate=RULES),
    M("alert-m1-for-15m", SLOS, "    above: 0.7\n    for: 5m", "    above: 0.7\n    for: 15m",
      "M1: for 5 min", *DOC_RULES, PROMTOOL, regenerate=RULES),
    M("alert-m2-above-5pc", SLOS, "    above: 0.005\n    for: 1m", "    above: 0.05\n    for: 1m",
      "M2: > 0.5 % in 1 min", *DOC_RULES, PROMTOOL, regenerate=RULES),
    M("alert-m2-window-5m", SLOS,
      'expr: (sum(rate(http_requests_total{status=~"5.."}[1m])) or vector(0)) / sum(rate(http_requests_total[1m]))',
      'expr: (sum(rate(http_requests_total{status=~"5.."}[5m])) or vector(0)) / sum(rate(http_requests_total[5m]))',
      "M2: in 1 min", *DOC_RULES, PROMTOOL, regenerate=RULES),
    M("alert-m3-cpu-95pc", SLOS,
      "    above: 0.85\n    for: 3m\n    severity: ticket\n    labels: {service: containers}\n"
      "    runbook: A container uses more than 85 % of its CPU",
      "    above: 0.95\n    for: 3m\n    severity: ticket\n    labels: {service: containers}\n"
      "    runbook: A container uses more than 85 % of its CPU", "M3: CPU > 85 % for 3 min", *DOC_RULES, PROMTOOL,
      regenerate=RULES),
    M("alert-m4-memory-10m", SLOS,
      "    above: 0.85\n    for: 3m\n    severity: ticket\n    labels: {service: containers}\n"
      "    runbook: A container uses more than 85 % of its memory",
      "    above: 0.85\n    for: 10m\n    severity: ticket\n    labels: {service: containers}\n"
      "    runbook: A container uses more than 85 % of its memory", "M4: memory > 85 % for 3 min", *DOC_RULES, PROMTOOL,
      regenerate=RULES),
    M("alert-m5-500-rps", SLOS, "    above: 50\n", "    above: 500\n", "M5: RPS > 50 for 5 min", *DOC_RULES,
      regenerate=RULES),
    M("alert-u1-window-1h", SLOS,
      'increase(web_vitals_lcp_seconds_bucket{le="3.0"}[1d])) / sum by (tenant) (increase(web_vitals_lcp_seconds_count[1d]))',
      'increase(web_vitals_lcp_seconds_bucket{le="3.0"}[1h])) / sum by (tenant) (increase(web_vitals_lcp_seconds_count[1h]))',
      "U1: in 1 day", *DOC_RULES, PROMTOOL, regenerate=RULES),
    M("alert-u1-lcp-4s", SLOS, 'web_vitals_lcp_seconds_bucket{le="3.0"}', 'web_vitals_lcp_seconds_bucket{le="4.0"}',
      "U1: LCP > 3 s", *DOC_RULES, PROMTOOL, regenerate=RULES),
    M("alert-u2-50pc", SLOS, "increase(web_vitals_inp_seconds_count[1h]))\n    above: 0.05",
      "increase(web_vitals_inp_seconds_count[1h]))\n    above: 0.5", "U2: > 200 ms for 5 % of users", *DOC_RULES,
      PROMTOOL, regenerate=RULES),
    M("alert-u3-cls-0.5", SLOS, 'web_vitals_cls_bucket{le="0.25"}', 'web_vitals_cls_bucket{le="0.5"}',
      "U3: CLS > 0.25", *DOC_RULES, PROMTOOL, regenerate=RULES),
    M("alert-u4-ttfb-1s", SLOS, "rate(web_vitals_ttfb_seconds_bucket[15m])))\n    above: 0.5",
      "rate(web_vitals_ttfb_seconds_bucket[15m])))\n    above: 1.0", "U4: P95 TTFB > 500 ms", *DOC_RULES, PROMTOOL,
      regenerate=RULES),
    M("alert-u5-50pc", SLOS, "/ 0.001\n    above: 0.2", "/ 0.001\n    above: 0.5", "U5: > 20 % in a week", *DOC_RULES,
      PROMTOOL, regenerate=RULES),
    M("alert-u5-one-day", SLOS, '[7d])) or vector(0)) / sum(rate(http_requests_total[7d]))',
      '[1d])) or vector(0)) / sum(rate(http_requests_total[1d]))', "U5: in a week", *DOC_RULES, PROMTOOL,
      regenerate=RULES),
    M("alert-b1-50-locks", SLOS, "* 60\n    above: 5\n", "* 60\n    above: 50\n", "B1: > 5 locks/min", *DOC_RULES,
      regenerate=RULES),
    M("alert-b2-800", SLOS, "expr: sum(pocketbase_requests_in_flight)\n    above: 80",
      "expr: sum(pocketbase_requests_in_flight)\n    above: 800", "B2: > 80 connections", *DOC_RULES,
      regenerate=RULES),
    M("alert-b4-2s", SLOS, "rate(pocketbase_request_duration_seconds_bucket[5m])))\n    above: 0.2",
      "rate(pocketbase_request_duration_seconds_bucket[5m])))\n    above: 2", "B4: DB P95 > 200 ms", *DOC_RULES,
      regenerate=RULES),
    M("alert-replica-lag-60s", SLOS, "max(last_over_time(pocketbase_replica_lag_seconds[30h]))\n    above: 5",
      "max(last_over_time(pocketbase_replica_lag_seconds[30h]))\n    above: 60", "#13: replica lag over the 5 s RPO",
      *DOC_RULES, regenerate=RULES),
    M("alert-restore-stale-30d", SLOS, "above: 691200", "above: 2592000",
      "A5: a restore verified at least every 8 days", "tests/test_obs_restore_schedule.py",
      "tests/test_obs_dr_alerts.py", PLANS, regenerate=RULES),
    M("alert-m1-ticket", SLOS, "    severity: page\n    labels: {service: commission-engine}\n    runbook: P95 latency",
      "    severity: ticket\n    labels: {service: commission-engine}\n    runbook: P95 latency",
      "M1: a latency breach pages", *DOC_RULES, "tests/test_observability.py", regenerate=RULES),
    M("objective-m3-85pc", SLOS, '    name: container_cpu_ratio\n    operator: "<"\n    objective: 0.70',
      '    name: container_cpu_ratio\n    operator: "<"\n    objective: 0.85', "M3: CPU < 70 %", OBJECTIVES,
      regenerate=OBSERVABILITY),
    M("objective-u1-4s", SLOS, "    objective: 2.5\n", "    objective: 4\n", "U1: LCP <= 2.5 s", OBJECTIVES,
      regenerate=OBSERVABILITY),
    M("objective-u4-500ms", SLOS, "    objective: 0.3\n", "    objective: 0.5\n", "U4: TTFB <= 300 ms",
      OBJECTIVES, regenerate=OBSERVABILITY),
    M("objective-u5-20pc", SLOS, '    operator: "<"\n    objective: 0.05\n', '    operator: "<"\n    objective: 0.2\n',
      "U5: < 5 % of the budget a week", OBJECTIVES, regenerate=OBSERVABILITY),
    # ---- the policy pack ----
    M("pack-size-cpu-doubled", "policies/rules/size_within_document.py",
      'cpu > float(config["max_vcpus"]):', 'cpu > 2 * float(config["max_vcpus"]):',
      "C2/C3: containers within 2 vCPU", PACK, BOUNDARIES),
    M("pack-size-memory-ge", "policies/rules/size_within_document.py",
      'if memory_gib > float(config["max_memory_gib"]):', 'if memory_gib > float(config["max_memory_gib"]) + 4:',
      "C2/C3: containers within 4 GiB", PACK, BOUNDARIES),
    M("pack-pocketbase-size-8gib", "policies/pack.py",
      'resource_check=size_within_document.check_pocketbase,\n         config_defaults={"max_vcpus": 2, "max_memory_gib": 4}),',
      'resource_check=size_within_document.check_pocketbase,\n         config_defaults={"max_vcpus": 4, "max_memory_gib": 8}),',
      "C2: PocketBase within 2 vCPU + 4 GB", PACK, BOUNDARIES),
    M("pack-vm-size-8gib", "policies/pack.py",
      'config_defaults={"min_vcpus": 1, "max_vcpus": 2, "min_memory_gib": 2, "max_memory_gib": 4}),',
      'config_defaults={"min_vcpus": 1, "max_vcpus": 4, "min_memory_gib": 2, "max_memory_gib": 8}),',
      "C2: prod's PocketBase VM within 2 vCPU + 4 GB", VM, BOUNDARIES),
    M("pack-backups-any-cron", "policies/rules/data_pocketbase_backups.py",
      'return len(fields) == 5 and fields[2:] == ["*", "*", "*"]', "return len(fields) == 5",
      "C7: daily backups (containers)", PACK, BOUNDARIES),
    M("pack-vm-backups-any-cron", "policies/rules/data_vm_backups.py",
      'return len(fields) == 5 and fields[2:] == ["*", "*", "*"]', "return len(fields) == 5",
      "C7: daily backups (the VM, BOUNDARIES)", VM),
    M("pack-vm-backups-http", "policies/rules/data_vm_backups.py",
      'elif not env.get("PB_BACKUP_S3_ENDPOINT", "").startswith("https://"):',
      'elif not env.get("PB_BACKUP_S3_ENDPOINT", "").startswith("http"):', "S4: backups over HTTPS", VM, BOUNDARIES),
    M("pack-zone-tls-1.0", "policies/rules/tls_zone_settings.py", '"min_tls_version": {"1.2", "1.3"}',
      '"min_tls_version": {"1.0", "1.1", "1.2", "1.3"}', "S1: TLS >= 1.2 on the zone", PACK, BOUNDARIES),
    M("pack-hostname-tls-1.1", "policies/rules/tls_zone_settings.py", 'if minimum not in ("1.2", "1.3"):',
      'if minimum not in ("1.1", "1.2", "1.3"):', "S1: TLS >= 1.2 on custom hostnames", PACK, BOUNDARIES),
    M("pack-logs-89-days", "policies/rules/logs_retention.py", "for urn, d in kept.items() if d < days]",
      "for urn, d in kept.items() if d < days - 1]", "S5: 90 days of logs (89 accepted)", PACK, BOUNDARIES),
    M("pack-railway-logs-30", "policies/rules/logs_retention.py", "if not isinstance(kept, int | float) or kept < days:",
      "if not isinstance(kept, int | float) or kept < 30:", "S5: 90 days of logs (Railway's sink)", PACK, BOUNDARIES),
    M("pack-logs-min-30", "policies/pack.py", 'stack_check=logs_retention.check_cloud_logging, config_defaults={"min_days": 90}),',
      'stack_check=logs_retention.check_cloud_logging, config_defaults={"min_days": 30}),', "S5: 90 days of logs",
      PACK, BOUNDARIES),
    M("pack-redis-password-4", "policies/rules/data_redis_private.py", "MIN_PASSWORD = 16", "MIN_PASSWORD = 4",
      "S4: a Redis password of at least 16 characters", PACK, BOUNDARIES),
    M("pack-hsts-prod-1-day", "policies/rules/tls_hsts.py", '"prod": 31536000}', '"prod": 86400}',
      "S1: prod's HSTS of at least a year", PACK, BOUNDARIES),
    M("pack-hsts-no-subdomains", "policies/rules/tls_hsts.py",
      'if kind == "prod" and (hsts.get("include_subdomains") is not True or hsts.get("preload") is not True):',
      'if kind == "prod" and hsts.get("preload") is not True:', "S1: prod's HSTS covers subdomains", PACK, BOUNDARIES),
    M("pack-engine-cold", "policies/rules/scale_engine_replicas.py", "or bounds[0] < 1:", "or bounds[0] < 0:",
      "C1: minimum 1 warm instance", PACK, BOUNDARIES),
    M("pack-engine-max-10", "policies/pack.py", 'config_defaults={"max_instances": 5}),',
      'config_defaults={"max_instances": 10}),', "C1: at most 5 replicas", PACK, BOUNDARIES),
    M("pack-cname-unproxied", "policies/rules/dns_web_records_proxied.py", 'if kind not in ("A", "AAAA", "CNAME"):',
      'if kind not in ("A", "AAAA"):', "S2: every web record behind the WAF", PACK, BOUNDARIES),
    M("pack-dr-backup-7-days", "policies/pack.py", 'config_defaults={"min_backup_days": 30}),',
      'config_defaults={"min_backup_days": 7}),', "C8: the DR bucket keeps 30 days", PACK, BOUNDARIES),
    M("pack-token-lifetime-4000", "policies/pack.py", '"max_lifetime_days": 400}),', '"max_lifetime_days": 4000}),',
      "S3: tokens expire", PACK, BOUNDARIES),
    # ---- the engine ----
    M("engine-round-half-up", ENGINE + "domain/model.py",
      "if twice > denominator or (twice == denominator and quotient % 2 == 1):", "if twice >= denominator:",
      "money rounding half to even", DOMAIN),
    M("engine-commission-truncates", ENGINE + "domain/model.py",
      "return round_half_even_div(line_net_cents * rate_bps, MAX_BPS)", "return line_net_cents * rate_bps // MAX_BPS",
      "money rounding: commissions truncated", DOMAIN),
    M("engine-refund-created", ENGINE + "domain/model.py", '"refund": (OrderStatus.PAID, OrderStatus.REFUNDED),',
      '"refund": (OrderStatus.CREATED, OrderStatus.REFUNDED),', "status transitions: refund only a paid order",
      DOMAIN),
    M("engine-cancel-paid", ENGINE + "domain/model.py", '"cancel": (OrderStatus.CREATED, OrderStatus.CANCELLED),',
      '"cancel": (OrderStatus.PAID, OrderStatus.CANCELLED),', "status transitions: cancel only a created order",
      DOMAIN),
    M("engine-refund-keeps-commission", ENGINE + "domain/model.py",
      "OrderStatus.REFUNDED: CommissionStatus.REVERSED,", "OrderStatus.REFUNDED: CommissionStatus.APPROVED,",
      "a refunded order's commission is reversed", DOMAIN, "tests/engine/test_commission_lifecycle.py"),
    M("engine-cap-max", ENGINE + "domain/model.py", "commission = min(commission, rules.order_cap_cents)",
      "commission = max(commission, rules.order_cap_cents)", "the order cap caps the commission", DOMAIN),
    M("engine-discount-unbounded", ENGINE + "domain/model.py",
      "if line.discount_cents < 0 or line.discount_cents > gross:", "if line.discount_cents < 0:",
      "a discount above the line's gross (negative net)", DOMAIN),
    M("engine-idempotency-no-conflict", ENGINE + "services.py",
      'raise IdempotencyConflict("this Idempotency-Key was used for a different request")', "pass",
      "idempotency: a reused key with another request is refused 409", "tests/engine/test_api.py"),
    M("engine-idempotency-any-tenant", ENGINE + "storage/pocketbase.py",
      'f"tenant={quote(tenant)} && idempotency_key={quote(idempotency_key)}")',
      'f"idempotency_key={quote(idempotency_key)}")',
      "tenant isolation: one tenant's key answers another's order", "tests/engine/test_hostile.py",
      "tests/engine/test_api.py"),
    M("engine-order-any-tenant", ENGINE + "storage/pocketbase.py", 'if record is None or record["tenant"] != tenant:',
      "if record is None:", "tenant isolation: reading another tenant's order", "tests/engine/test_hostile.py",
      "tests/engine/test_api.py"),
    M("engine-buckets-no-0.5-0.7", ENGINE + "metrics.py",
      "LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.5, 5.0)",
      "LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 5.0)",
      "M1: the SLO and alert read the 0.5 s and 0.7 s buckets", SIGNALS),
    # Not `http_requests` (prometheus_client adds `_total` to a counter's name: /metrics would not change) but a
    # name the OpenTelemetry conventions suggest, which /metrics then serves instead of the series the SLOs read.
    M("engine-requests-renamed", ENGINE + "metrics.py", 'Counter("http_requests_total", "HTTP requests served",',
      'Counter("http_server_requests_total", "HTTP requests served",', "M2/M5: the series the SLOs read", SIGNALS),
    M("engine-status-label-code", ENGINE + "metrics.py",
      'HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served", ["route", "method", "status", "tenant"])',
      'HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served", ["route", "method", "code", "tenant"])',
      "M2: the 5xx matcher reads the status label", SIGNALS),
    M("engine-summary-cache-1h", ENGINE + "settings.py", "summary_cache_seconds: int = 300",
      "summary_cache_seconds: int = 3600", "C6: commission results cached 5 minutes", DOC),
    M("engine-catalog-browser-day", ENGINE + "api.py",
      'f"s-maxage={max(settings.edge_seconds, 0)}"', 'f"s-maxage={settings.catalog_browser_seconds}"',
      "C5: catalog JSON 24 h at the edge", "tests/engine/test_api.py", "tests/engine/test_catalog_purge.py"),
    M("engine-ready-without-redis", ENGINE + "api.py",
      'for name, why in ((store.name, stored), ("redis", redis)) if why is not None}',
      'for name, why in ((store.name, stored),) if why is not None}',
      "readiness: not ready while Redis does not answer", "tests/engine/test_readiness.py",
      "tests/engine/test_api.py::test_with_redis_killed_the_engine_keeps_serving_from_pocketbase"),
    # ---- the ops commands ----
    M("drill-rto-minutes", "infra/ops/drill.py", "0 < result.rto_s < settings.rto_target_s,",
      "0 < result.rto_s < settings.rto_target_s * 60,", "C8: the drill's RTO check", DRILL),
    M("drill-rpo-ms", "infra/ops/drill.py", "result.rpo_s <= settings.rpo_target_s,",
      "result.rpo_s <= settings.rpo_target_s * 1000,", "#13: the drill's RPO check", DRILL),
    M("drill-replication-unbounded", "infra/ops/drill.py", "0 < seconds <= rpo_target_s,", "0 < seconds,",
      "#13: Litestream's interval against the RPO", DRILL),
    # Not the dataclass default (3600.0): the drill command never uses it. The profile it reads is what holds
    # the drill to an hour, and staging's allows two.
    M("drill-rto-target-2h", "infra/ops/drill.py", "    from stacks.prod import PROFILE\n",
      "    from stacks.staging import PROFILE\n", "C8: RTO < 1 h", DRILL),
    M("chaos-no-duplicates", "infra/ops/chaos.py", "return lost, sum(1 for ids in stored.values() if len(ids) > 1)",
      "return lost, 0", "A4: the chaos run's duplicate-order check", *CHAOS),
    M("chaos-lost-by-key", "infra/ops/chaos.py",
      "lost = sum(1 for key, (order, _) in acks.items() if order not in stored.get(key, []))",
      "lost = sum(1 for key in acks if key not in stored)", "A4: an acknowledged order stored under another id",
      *CHAOS),
    M("chaos-check-ignores-duplicates", "infra/ops/chaos.py", "result.lost == 0 and result.duplicated == 0,",
      "result.lost == 0,", "A4: duplicated orders fail the run", *CHAOS),
    M("rollout-5xx-10x", "infra/ops/rollout.py", "if reading.error_ratio > policy.max_error_ratio:\n",
      "if reading.error_ratio > policy.max_error_ratio * 10:\n", "D8: roll back above 0.5 % 5xx",
      "tests/test_rollout.py"),
    M("rollout-p95-ms", "infra/ops/rollout.py", "if reading.p95_s is not None and reading.p95_s > policy.max_p95_s:",
      "if reading.p95_s is not None and reading.p95_s > policy.max_p95_s * 1000:", "D8: roll back above P95 700 ms",
      "tests/test_rollout.py"),
    M("rollout-first-step-all", "infra/ops/rollout.py", "    if percent >= 100:\n", "    if percent >= 10:\n",
      "D7: the canary's first step takes all traffic", "tests/test_rollout.py"),
    M("rollout-split-wrong", "infra/ops/rollout.py", '"percent": 100 - percent, "tag": STABLE_TAG},',
      '"percent": percent, "tag": STABLE_TAG},', "D7: the stable revision keeps the rest of the traffic",
      "tests/test_rollout.py"),
    M("rollout-percent-as-ratio", "infra/ops/rollout.py", "canary.rollback_error_rate_percent / 100,",
      "canary.rollback_error_rate_percent,", "D8: 0.5 % read as 50 %", "tests/test_rollout.py"),
    M("rollout-quiet-promoted", "infra/ops/rollout.py",
      "if last is None or last.requests < self.policy.min_requests:", "if last is None:",
      "D7: a canary too quiet to judge is promoted", "tests/test_rollout.py"),
    # Not `response.status < 500`: urllib raises HTTPError for every answer outside 2xx, so that differs only on a
    # 201 to 299 /readyz never sends. Taking a 4xx the API answered as "up" is the change that matters.
    M("failover-any-answer", "infra/ops/failover.py",
      "                    return True\n        except (urllib.error.URLError, OSError):",
      "                    return True\n        except urllib.error.HTTPError as error:  # the API answered\n"
      "            if error.code < 500:\n                return True\n        except (urllib.error.URLError, OSError):",
      "C8: failover done only when /readyz answers 200", *FAILOVER),
    M("failover-same-region", "infra/ops/failover.py",
      'target_region = region if args.to == "failover" else model.gcp.region', "target_region = region",
      "C8: failing back targets the primary region", *FAILOVER),
    # ---- the workflows ----
    M("deploy-test-echo", DEPLOY, "      - run: sudo --preserve-env=PATH python3 tools/dev.py test",
      "      - run: echo tests run on the pull request", "the deploy runs the README's test command", WORKFLOWS),
    M("deploy-cancel-in-progress", DEPLOY, "  group: deploy\n  cancel-in-progress: false",
      "  group: deploy\n  cancel-in-progress: true", "a new push cancels a prod deploy mid-canary", WORKFLOWS),
    M("deploy-no-concurrency", DEPLOY, "concurrency:\n  group: deploy\n  cancel-in-progress: false\n", "",
      "two deploys overlap", WORKFLOWS),
    M("pr-test-setup-only", PULL, "        run: sudo --preserve-env=PATH python3 tools/dev.py test",
      "        run: python3 tools/dev.py setup", "pull requests run the README's test command", WORKFLOWS),
    M("deploy-integration-needs-nothing", DEPLOY, "    needs: test\n", "",
      "D2: integration deploys only after the tests", WORKFLOWS, "tests/test_workflows.py"),
    M("deploy-prod-needs-nothing", DEPLOY, "    needs: staging\n", "", "D2: prod deploys only after staging",
      WORKFLOWS, "tests/test_workflows.py"),
    M("deploy-smoke-continue", DEPLOY, "      - name: Smoke test through the edge\n",
      "      - name: Smoke test through the edge\n        continue-on-error: true\n",
      "prod's smoke test is a gate", WORKFLOWS),
    M("deploy-rollout-or-true", DEPLOY, "run: .venv/bin/python -m infra rollout --stack prod",
      "run: .venv/bin/python -m infra rollout --stack prod || true", "D8: a rolled-back canary fails the deploy",
      WORKFLOWS),
    # The judge runs in the base branch's checkout; the pull request's own pack would arrive with its plan.
    M("pr-plan-own-pack", PULL, "--policy-pack policies \\", "--policy-pack ../pr-plan/policies \\",
      "a pull request is judged by the base branch's pack, not its own", WORKFLOWS, "tests/test_workflows.py"),
)
