"""The SLO spec and what is generated from it: Prometheus rules that promtool accepts, a promtool
test for every alert (fires exactly at threshold and duration, silent just under), no drift."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from components.observability.rules import BURN_RATES, dump, rule_groups, rule_tests
from components.observability.spec import SPEC_FILE, load
from tests.conftest import PROJECT_DIR

OBSERVABILITY = PROJECT_DIR / "components" / "observability"
GENERATED = OBSERVABILITY / "generated"


def _promtool(*args: str, cwd: Path = GENERATED) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (python3 tools/dev.py test does it as root)"
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_promtool_accepts_the_generated_rules() -> None:
    result = _promtool("check", "rules", "prometheus-rules.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_at_its_threshold_and_duration_and_stays_silent_below() -> None:
    result = _promtool("test", "rules", "prometheus-rules.test.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sli_recording_rules_compute_what_they_claim() -> None:
    result = _promtool("test", "rules", "sli.test.yml", cwd=OBSERVABILITY)

    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_has_a_firing_and_a_silent_test() -> None:
    spec = load()
    tests = yaml.safe_load((GENERATED / "prometheus-rules.test.yml").read_text())["tests"]
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


@pytest.mark.parametrize(("file", "generate"), [("prometheus-rules.yml", rule_groups),
                                                ("prometheus-rules.test.yml", rule_tests)])
def test_the_generated_files_are_what_the_spec_gives(file: str, generate: object) -> None:
    assert callable(generate)
    assert (GENERATED / file).read_text() == dump(generate(load())), "regenerate with: python3 tools/dev.py generate"


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

    (tmp_path / "prometheus.yml").write_text(prometheus_config("commission-engine:8000"))
    (tmp_path / "rules.yml").write_text((GENERATED / "prometheus-rules.yml").read_text())

    result = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 52 rules found" in result.stdout


def test_the_docker_backend_runs_collector_prometheus_and_grafana_wired_together(committed_plans: dict[str, object]) -> None:
    import json

    from infra.plan import Plan

    plan = committed_plans["integration"]
    assert isinstance(plan, Plan)
    containers = {r.inputs["name"]: r.wire_inputs for r in plan.resources if r.type == "docker:index/container:Container"}
    assert {"otel-collector", "prometheus", "grafana", "cadvisor"} <= set(containers)

    def files(name: str) -> dict[str, str]:
        return {u["file"]: u["content"] for u in containers[name].get("uploads", [])}

    labels = {lab["label"]: lab["value"] for lab in containers["commission-engine"]["labels"]}
    assert json.loads(labels["platform.env"])["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    collector = yaml.safe_load(files("otel-collector")["/etc/otelcol-contrib/config.yaml"])
    assert set(collector["service"]["pipelines"]) == {"metrics", "traces"}
    assert files("prometheus")["/etc/prometheus/rules.yml"] == (GENERATED / "prometheus-rules.yml").read_text()
    scrape = yaml.safe_load(files("prometheus")["/etc/prometheus/prometheus.yml"])["scrape_configs"]
    assert {"targets": ["commission-engine:8000"]} in scrape[0]["static_configs"]
    assert {"job_name": "cadvisor", "static_configs": [{"targets": ["cadvisor:8080"]}]} in scrape
    grafana = files("grafana")
    assert "uid: prometheus" in grafana["/etc/grafana/provisioning/datasources/prometheus.yml"]
    assert {f"/var/lib/grafana/dashboards/{n}.json" for n in ("overview", "routes", "tenants")} <= set(grafana)


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
