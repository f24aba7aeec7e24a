"""The SLO spec and what is generated from it for each stack: Prometheus rules that promtool accepts, a
promtool test for every alert (fires exactly at threshold and duration, silent just under), every SLI
computed from raw metrics (and every listed mutation of an expression caught), no drift."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from components.observability.__main__ import rules_file, stack_plan
from components.observability.rules import BURN_RATES, dump, rule_groups, rule_tests
from components.observability.spec import SPEC_FILE, load
from tests.conftest import PROJECT_DIR, STACKS

OBSERVABILITY = PROJECT_DIR / "components" / "observability"
GENERATED = OBSERVABILITY / "generated"
SLI_TESTS = {"integration": "sli.test.yml", "staging": "sli.staging.test.yml", "prod": "sli.prod.test.yml"}
DR_SLI_TESTS = "sli.dr.test.yml"
"""The restore test's SLIs (A5, C7), from prod's rules, evaluated at a coarser interval."""


def _promtool(*args: str, cwd: Path = GENERATED) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (python3 tools/dev.py test does it as root)"
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def _test_file(stack: str) -> str:
    return rules_file(stack).replace(".yml", ".test.yml")


@pytest.mark.parametrize("stack", STACKS)
def test_promtool_accepts_the_generated_rules(stack: str) -> None:
    result = _promtool("check", "rules", rules_file(stack))

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_fires_at_its_threshold_and_duration_and_stays_silent_below(stack: str) -> None:
    result = _promtool("test", "rules", _test_file(stack))

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_the_sli_recording_rules_compute_what_they_claim_from_raw_metrics(stack: str) -> None:
    result = _promtool("test", "rules", SLI_TESTS[stack], cwd=OBSERVABILITY)

    assert result.returncode == 0, result.stdout + result.stderr


RESTORE_TEST_METRICS = ("backup_restore_", "pocketbase_replica_lag_seconds")


def _restore_test_rules(rules: dict[str, Any]) -> dict[str, Any]:
    """Prod's rules that read what the restore test pushes, and the alerts on them, verbatim: the DR tests run
    for days of evaluations, and the other rules (none reads these series) only make promtool slower."""
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"]
                if "record" in r and any(m in r["expr"] for m in RESTORE_TEST_METRICS)}
    groups = [{**g, "rules": [r for r in g["rules"] if r.get("record") in recorded
                              or ("alert" in r and any(name in r["expr"] for name in (*recorded, *RESTORE_TEST_METRICS)))]}
              for g in rules["groups"]]
    return {"groups": [g for g in groups if g["rules"]]}


def test_the_restore_test_slis_and_their_pages_come_from_the_gauges_it_pushes(tmp_path: Path) -> None:
    document = yaml.safe_load((OBSERVABILITY / DR_SLI_TESTS).read_text())
    [rules_path] = document["rule_files"]
    rules = _restore_test_rules(yaml.safe_load((OBSERVABILITY / rules_path).read_text()))
    assert {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r} == {
        "RestoreTestNotReporting", "BackupRestoreTestStale", "ReplicaLagAboveRpo"}
    (tmp_path / rules_path).parent.mkdir(parents=True)
    (tmp_path / rules_path).write_text(yaml.safe_dump(rules, sort_keys=False))  # pyright: ignore[reportUnknownMemberType]
    (tmp_path / DR_SLI_TESTS).write_text((OBSERVABILITY / DR_SLI_TESTS).read_text())

    result = _promtool("test", "rules", DR_SLI_TESTS, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_sli_is_computed_from_raw_metrics_in_a_hand_written_test() -> None:
    """Each `sli:*` an alert compares is evaluated by an SLI test fed only raw series, in some stack."""
    evaluated: set[str] = set()
    for name in [*SLI_TESTS.values(), DR_SLI_TESTS]:
        document = yaml.safe_load((OBSERVABILITY / name).read_text())
        for case in document["tests"]:
            assert all(not s["series"].startswith("sli:") for s in case["input_series"]), case["name"]
            evaluated |= {e["expr"] for e in case.get("promql_expr_test", [])}
    wanted = {a.sli for stack in STACKS for a in stack_plan(stack).spec.alerts}
    missing = sorted(s for s in wanted if not any(f"sli:{s}" in e for e in evaluated))
    assert missing == []


@pytest.mark.parametrize("stack", STACKS)
def test_each_alert_has_a_firing_and_a_silent_test(stack: str) -> None:
    spec = stack_plan(stack).spec
    tests = yaml.safe_load((GENERATED / _test_file(stack)).read_text())["tests"]
    alerts = [a.name for a in spec.alerts] + [
        f"{slo.name.title()}ErrorBudgetBurn{long}" for slo in spec.slos for _, long, _, _ in BURN_RATES]

    for alert in alerts:
        cases = [t for t in tests if any(c["alertname"] == alert for c in t["alert_rule_test"])]
        assert any(c["exp_alerts"] for t in cases for c in t["alert_rule_test"]), f"{alert} never fires"
        assert any(all(not c["exp_alerts"] for c in t["alert_rule_test"]) for t in cases), f"{alert} never silent"


def test_the_spec_holds_every_threshold_of_the_document() -> None:
    alerts = {a.requirement: (a.above, a.for_) for a in load().alerts}

    assert alerts["M1"] == (0.7, "5m") and alerts["M2"] == (0.005, "1m")
    assert alerts["M3"] == (0.85, "3m") and alerts["M4"] == (0.85, "3m") and alerts["M5"] == (50, "5m")
    assert alerts["M6"][0] == 0.8 and alerts["U1"][0] == 0.10 and alerts["U2"][0] == 0.05
    assert alerts["U3"][0] == 0.05 and alerts["U4"][0] == 0.5 and alerts["U5"][0] == 0.2
    assert alerts["B1"][0] == 5 and alerts["B2"][0] == 80 and alerts["B3"][0] == 0.005 and alerts["B4"][0] == 0.2


@pytest.mark.parametrize("stack", STACKS)
def test_the_generated_files_are_what_each_stack_deploys(stack: str) -> None:
    spec = stack_plan(stack).spec

    assert (GENERATED / rules_file(stack)).read_text() == dump(rule_groups(spec)), "python3 tools/dev.py generate"
    assert (GENERATED / _test_file(stack)).read_text() == dump(rule_tests(spec, rules_file(stack))), \
        "python3 tools/dev.py generate"


def test_a_mistake_in_the_spec_is_refused(tmp_path: Path) -> None:
    document = yaml.safe_load(SPEC_FILE.read_text())
    document["alerts"][0]["fro"] = "5m"
    path = tmp_path / "slos.yaml"
    path.write_text(yaml.safe_dump(document))

    with pytest.raises(ValidationError, match="fro"):
        load(path)


@pytest.mark.parametrize("name", ["overview", "routes", "tenants"])
def test_the_dashboards_are_generated_and_every_query_parses(name: str, tmp_path: Path) -> None:
    import json

    from components.observability.dashboards import DASHBOARDS, exprs, render

    assert (GENERATED / "dashboards" / f"{name}.json").read_text() == render(name), "python3 tools/dev.py generate"
    queries = exprs(DASHBOARDS[name]())
    assert queries
    # promtool parses PromQL when it checks rules: every panel query as a recording rule.
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"panel:q{i}", "expr": q}
                                                          for i, q in enumerate(queries)]}]}
    (tmp_path / "dashboard.yml").write_text(json.dumps(rules))
    result = _promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_overview_covers_red_saturation_cache_database_and_web_vitals() -> None:
    from components.observability.dashboards import exprs, overview

    text = " ".join(exprs(overview()))

    for metric in ("http_requests_total", "http_request_duration_seconds_bucket", "container_cpu_usage_seconds_total",
                   "container_memory_working_set_bytes", "cache_requests_total", "pocketbase_request_duration_seconds",
                   "pocketbase_lock_errors_total", "web_vitals_lcp_seconds_bucket", "sli:availability_error_ratio"):
        assert metric in text


def test_the_self_hosted_prometheus_config_is_valid_with_the_generated_rules(tmp_path: Path) -> None:
    from components.observability.selfhosted import prometheus_config

    plan = stack_plan("integration")
    (tmp_path / "prometheus.yml").write_text(prometheus_config(list(plan.layout.jobs)))
    (tmp_path / "rules.yml").write_text((GENERATED / "prometheus-rules.yml").read_text())

    result = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    rules = sum(len(g["rules"]) for g in rule_groups(plan.spec)["groups"])
    assert f"SUCCESS: {rules} rules found" in result.stdout


def test_the_docker_backend_runs_collector_tempo_exporters_prometheus_and_grafana_wired_together(
    committed_plans: dict[str, object],
) -> None:
    import json

    from infra.plan import Plan

    plan = committed_plans["integration"]
    assert isinstance(plan, Plan)
    containers = {r.inputs["name"]: r.wire_inputs for r in plan.resources if r.type == "docker:index/container:Container"}
    assert {"otel-collector", "tempo", "prometheus", "grafana", "cadvisor", "redis-exporter"} <= set(containers)

    def files(name: str) -> dict[str, str]:
        return {u["file"]: u["content"] for u in containers[name].get("uploads", [])}

    labels = {lab["label"]: lab["value"] for lab in containers["commission-engine"]["labels"]}
    assert json.loads(labels["platform.env"])["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    collector = yaml.safe_load(files("otel-collector")["/etc/otelcol-contrib/config.yaml"])
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlp/tempo"]
    assert collector["exporters"]["otlp/tempo"]["endpoint"] == "tempo:4317"
    assert "debug" not in collector["exporters"], "traces are kept, not printed"
    tempo = yaml.safe_load(files("tempo")["/etc/tempo.yaml"])
    assert tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert files("prometheus")["/etc/prometheus/rules.yml"] == (GENERATED / "prometheus-rules.yml").read_text()
    scrape = {c["job_name"]: c for c in yaml.safe_load(files("prometheus")["/etc/prometheus/prometheus.yml"])["scrape_configs"]}
    # The engine's internal listener: /metrics is never served on the port the tunnel reaches (#22 item 2).
    assert scrape["commission-engine"]["static_configs"] == [{"targets": ["commission-engine:9000"]}]
    assert scrape["redis"]["static_configs"] == [{"targets": ["redis-exporter:9121"]}]
    assert scrape["cadvisor"]["static_configs"] == [{"targets": ["cadvisor:8080"]}]
    # The exporter reads Redis with its password: a secret variable, named in the labels, never its value.
    assert "REDIS_ADDR" in {lab["label"]: lab["value"] for lab in containers["redis-exporter"]["labels"]}["platform.secret-env"]
    grafana = files("grafana")
    datasources = yaml.safe_load(grafana["/etc/grafana/provisioning/datasources/prometheus.yml"])["datasources"]
    assert {(d["type"], d["uid"], d["url"]) for d in datasources} == {("prometheus", "prometheus", "http://prometheus:9090"),
                                                                      ("tempo", "tempo", "http://tempo:3200")}
    # The dashboards go through Grafana's API, as on the cloud stacks (tests/test_obs_grafana_paths.py): none is a file.
    assert not [name for name in grafana if name.endswith(".json")]
    dashboards = {json.loads(str(r.inputs["configJson"]))["uid"] for r in plan.resources
                  if r.type == "grafana:oss/dashboard:Dashboard"}
    assert dashboards == {f"platform-integration-{n}" for n in ("overview", "routes", "tenants")}


def test_cloud_stacks_use_the_grafana_named_in_config_and_run_no_self_hosted_stack(
    committed_plans: dict[str, object],
) -> None:
    from infra.plan import Plan

    for stack in ("staging", "prod"):
        plan = committed_plans[stack]
        assert isinstance(plan, Plan)
        assert not [r for r in plan.resources if r.type == "platform:observability:SelfHosted"]
        [group] = [r for r in plan.resources if r.type.endswith("ruleGroup:RuleGroup")]
        assert '"uid": "grafanacloud-prom"' in group.inputs["rules"][0]["datas"][0]["model"]


# Each mutation the issue lists (#12), as (what, file, old, new): applied to slos.yaml, the rules are
# generated again for every stack and the hand-written SLI tests must fail on at least one of them.
MUTATIONS = [
    ("M2's window 1m -> 5m",
     "(sum(rate(http_requests_total{status=~\"5..\"}[1m])) or vector(0)) / sum(rate(http_requests_total[1m]))",
     "(sum(rate(http_requests_total{status=~\"5..\"}[5m])) or vector(0)) / sum(rate(http_requests_total[5m]))"),
    ("the CLS bucket 0.25 -> 0.5", 'web_vitals_cls_bucket{le="0.25"}', 'web_vitals_cls_bucket{le="0.5"}'),
    ("the INP bucket 0.2 -> 0.3", 'web_vitals_inp_seconds_bucket{le="0.2"}', 'web_vitals_inp_seconds_bucket{le="0.3"}'),
    ("the INP bucket 0.2 -> 0.15", 'web_vitals_inp_seconds_bucket{le="0.2"}', 'web_vitals_inp_seconds_bucket{le="0.15"}'),
    ("the TTFB quantile 0.95 -> 0.9", "histogram_quantile(0.95, sum by (le, tenant) (rate(web_vitals_ttfb",
     "histogram_quantile(0.9, sum by (le, tenant) (rate(web_vitals_ttfb"),
    ("the TTFB quantile 0.95 -> 0.99", "histogram_quantile(0.95, sum by (le, tenant) (rate(web_vitals_ttfb",
     "histogram_quantile(0.99, sum by (le, tenant) (rate(web_vitals_ttfb"),
    ("the container CPU ratio without the quota",
     'rate(container_cpu_usage_seconds_total{name!=""}[1m]) / (container_spec_cpu_quota{name!=""} / container_spec_cpu_period{name!=""})',
     'rate(container_cpu_usage_seconds_total{name!=""}[1m])'),
    ("B2 as the largest process instead of the sum", "expr: sum(pocketbase_requests_in_flight)",
     "expr: max(pocketbase_requests_in_flight)"),
    ("B3 counting lock errors", "sum(rate(pocketbase_errors_total[5m]))", "sum(rate(pocketbase_lock_errors_total[5m]))"),
    ("B3 over a longer window",
     "(sum(rate(pocketbase_errors_total[5m])) or vector(0)) / sum(rate(pocketbase_request_duration_seconds_count[5m]))",
     "(sum(rate(pocketbase_errors_total[1h])) or vector(0)) / sum(rate(pocketbase_request_duration_seconds_count[1h]))"),
    ("B4 as the median", "histogram_quantile(0.95, sum by (le) (rate(pocketbase_request_duration_seconds_bucket",
     "histogram_quantile(0.5, sum by (le) (rate(pocketbase_request_duration_seconds_bucket"),
    ("C3 counting the in-process catalog copy",
     'cache_requests_total{cache!="catalog_memory",result="miss"}[5m])) or vector(0))\n'
     '      / sum(rate(cache_requests_total{cache!="catalog_memory",result=~"hit|miss"}',
     'cache_requests_total{result="miss"}[5m])) or vector(0))\n      / sum(rate(cache_requests_total{result=~"hit|miss"}'),
]


def _sli_tests_pass(tmp_path: Path, spec_text: str) -> bool:
    """Integration's rules generated from `spec_text` as the stack generates them, under its SLI tests (the
    SLIs mutated here are the same in every stack)."""
    spec_file = tmp_path / "slos.yaml"
    spec_file.write_text(spec_text)
    (tmp_path / "generated").mkdir(exist_ok=True)
    spec = stack_plan("integration", load(spec_file)).spec
    (tmp_path / "generated" / rules_file("integration")).write_text(dump(rule_groups(spec)))
    (tmp_path / SLI_TESTS["integration"]).write_text((OBSERVABILITY / SLI_TESTS["integration"]).read_text())
    return _promtool("test", "rules", SLI_TESTS["integration"], cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(("what", "old", "new"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_each_listed_mutation_of_an_sli_fails_the_sli_tests(what: str, old: str, new: str, tmp_path: Path) -> None:
    text = SPEC_FILE.read_text()
    assert text.count(old) == 1, f"{what}: the expression is not in slos.yaml as expected"

    assert not _sli_tests_pass(tmp_path, text.replace(old, new)), f"{what} passes the SLI tests"


def test_the_unmutated_spec_passes_the_mutation_harness(tmp_path: Path) -> None:
    assert _sli_tests_pass(tmp_path, SPEC_FILE.read_text())
