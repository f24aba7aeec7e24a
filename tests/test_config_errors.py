"""A mistake in a stack file fails `plan` with exit code 2, naming the file, the key path, the value
and what was expected; no traceback, and the mock engine registers nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_DIR, CliResult, stack_document, write_stack

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Set `config[key]...` by a dotted path whose first part is the full config key."""

    def mutate(doc: dict[str, Any]) -> None:
        key, *rest = path.split(".")
        target: Any = doc["config"]
        parts: list[Any] = [key, *[int(p) if p.isdigit() else p for p in rest]]
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = value

    return mutate


def _delete(key: str) -> Mutation:
    return lambda doc: doc["config"].pop(key) and None


def _dup_slug(doc: dict[str, Any]) -> None:
    doc["config"]["platform:tenants"][1]["slug"] = doc["config"]["platform:tenants"][0]["slug"]


def _dup_domain(doc: dict[str, Any]) -> None:
    doc["config"]["platform:tenants"][1]["domains"] = ["staging.lojabrasil.com.br"]


def _services(service: str, **values: Any) -> Mutation:
    return lambda doc: doc["config"].setdefault("platform:services", {}).setdefault(service, {}).update(values)


CASES: list[tuple[str, str, Mutation, str, str]] = [
    # (case id, stack, mutation, exact key path, what the message must say)
    ("missing required key", "staging", _delete("platform:zone"), "platform:zone", "is required but missing"),
    ("unknown top-level key (typo)", "staging", _set("platform:tenant", []), "platform:tenant",
     "did you mean 'tenants'?"),
    ("unknown nested key (typo)", "staging", _set("platform:tenants.0.domian", ["a.example.com"]),
     "platform:tenants[0].domian", "is not a known key"),
    ("wrong type", "prod", _set("platform:tenants.1.rateLimitPerMinute", "fast"),
     "platform:tenants[1].rateLimitPerMinute", '"fast" is invalid; expected a valid integer'),
    ("invalid hostname", "prod", _set("platform:tenants.2.domains.0", "shop..acme.com"),
     "platform:tenants[2].domains[0]", '"shop..acme.com" is not a valid hostname'),
    ("duplicate tenant slug", "staging", _dup_slug, "platform:tenants[1].slug",
     "is already used by platform:tenants[0]"),
    ("duplicate domain across tenants", "staging", _dup_domain, "platform:tenants[1].domains[0]",
     "which platform:tenants[0] also claims"),
    ("slug that is not a DNS label", "staging", _set("platform:tenants.0.slug", "Loja_Brasil"),
     "platform:tenants[0].slug", '"Loja_Brasil" is not a DNS label'),
    ("reserved slug", "integration", _set("platform:tenants.0.slug", "api"), "platform:tenants[0].slug",
     "is reserved"),
    ("domain inside the platform zone", "prod", _set("platform:tenants.0.domains.0", "shop.acme-commerce.com"),
     "platform:tenants[0].domains[0]", "is under the platform zone acme-commerce.com"),
    ("Cloud Run CPU it does not accept", "prod", _services("engine", cpuMillis=1500),
     "platform:services.engine.cpuMillis", "1500 is not a CPU size cloudrun accepts"),
    ("replicas on a backend without autoscaling", "staging", _services("engine", minInstances=1, maxInstances=3),
     "platform:services.engine.maxInstances", "has no replica autoscaling"),
    ("unknown backend", "staging", _services("redis", backend="heroku"), "platform:services.redis.backend",
     "\"heroku\" is not allowed; expected 'docker', 'cloudrun', 'railway' or 'gce'"),
    ("PocketBase on Cloud Run", "prod", _services("pocketbase", backend="cloudrun"),
     "platform:services.pocketbase.backend", "Cloud Run has no local disk"),
    ("Railway replicas with a volume", "staging", _services("pocketbase", minInstances=2, maxInstances=2),
     "platform:services.pocketbase.maxInstances", "a service with a volume runs exactly one replica"),
    ("Redis marked public", "staging", _services("redis", public=True), "platform:services.redis.public",
     "Redis is never publicly reachable"),
    ("Redis away from the engine's private network", "prod", _services("redis", backend="railway"),
     "platform:services.redis.backend", "Redis is reachable only on its backend's private network"),
    ("Memorystore size not in whole GiB", "prod", _services("redis", memoryMib=1536),
     "platform:services.redis.memoryMib", "Redis on Cloud Run is Memorystore, sized in GiB"),
    ("waiver without a reason", "prod", _set("platform:waivers.0.reason", ""), "platform:waivers[0].reason",
     "expected a string that should have at least 20 characters"),
    ("waiver naming no rule of the pack", "prod", _set("platform:waivers.0.rule", "PLAT-WAF-999"),
     "platform:waivers[0].rule", "is not a rule of the policy pack"),
    ("alert override naming no alert", "staging", _set("platform:alerts.overrides", {"ApiLatencyP95Hi": {"above": 1}}),
     "platform:alerts.overrides.ApiLatencyP95Hi", "did you mean 'ApiLatencyP95High'?"),
    ("memory above the backend's range", "staging", _services("redis", memoryMib=65536),
     "platform:services.redis.memoryMib", "65536 is outside what railway allows"),
    ("secret in plain text", "staging", _set("platform:railwayMetricsToken", "rw_live_0123456789abcdef"),
     "platform:railwayMetricsToken", "is in plain text but must be a secret"),
    ("required secret missing", "integration", _delete("platform:slackWebhookUrl"), "platform:slackWebhookUrl",
     "is required because alerts go to Slack"),
    ("section required by a backend", "prod", _delete("platform:gcp"), "platform:gcp",
     "is required because a service runs on Cloud Run"),
    ("unsupported spec version", "staging", _set("platform:version", 2), "platform:version",
     "2 is not supported; expected one of 1"),
    ("unknown environment", "staging", _set("platform:environment", "production"), "platform:environment",
     "\"production\" is not allowed"),
    ("malformed Cloudflare zone id", "staging", _set("platform:zone.zoneId", "not-an-id"),
     "platform:zone.zoneId", "is not a valid Cloudflare id"),
    ("invalid e-mail recipient", "staging", _set("platform:alerts.emails.0", "oncall-at-acme"),
     "platform:alerts.emails[0]", "is not a valid e-mail address"),
    ("impossible date", "staging", _set("platform:zone.tokensExpireOn", "2027-02-30"),
     "platform:zone.tokensExpireOn", "is not a calendar date"),
    # platform:database (issue #26): PostgreSQL is Cloud SQL in the engine's VPC, so Cloud Run only.
    ("postgres where the engine is not on Cloud Run", "staging", _set("platform:database", {"engine": "postgres"}),
     "platform:database.engine", 'the engine runs on "railway" (platform:services.engine.backend); expected '
     '"pocketbase", or the engine on "cloudrun" with platform:gcp (supported: cloudrun)'),
    ("unknown database engine", "prod", _set("platform:database", {"engine": "mysql"}), "platform:database.engine",
     "\"mysql\" is not allowed; expected 'pocketbase' or 'postgres'"),
    ("unknown key under platform:database", "prod", _set("platform:database", {"engine": "postgres", "haa": True}),
     "platform:database.haa", "is not a known key"),
    ("Cloud SQL tier with an odd vCPU count", "prod",
     _set("platform:database", {"engine": "postgres", "tier": "db-custom-3-7680"}), "platform:database.tier",
     '"db-custom-3-7680" is not a Cloud SQL for PostgreSQL machine type (db-custom-3-7680: 3 vCPUs'),
    ("Cloud SQL tier above 6.5 GB per vCPU", "prod",
     _set("platform:database", {"engine": "postgres", "tier": "db-custom-1-8192"}), "platform:database.tier",
     "outside 0.9 to 6.5 GB per vCPU"),
    # Cloud SQL declared while the engine still serves from PocketBase (docs/runbooks/migrate-db.md, before the day).
    ("postgres declared where the engine is not on Cloud Run", "staging",
     _set("platform:database", {"declarePostgres": True}), "platform:database.declarePostgres",
     'the engine runs on "railway" (platform:services.engine.backend)'),
    ("postgres serving but declared off", "prod",
     _set("platform:database", {"engine": "postgres", "declarePostgres": False}), "platform:database.declarePostgres",
     'false contradicts engine "postgres" (the engine cannot serve from an undeclared database); expected true, or '
     'leave it out'),
    ("vercel region that does not exist", "staging", _set("platform:frontend.functionRegion", "mars1"),
     "platform:frontend.functionRegion", "is not a Vercel function region"),
]


@pytest.mark.parametrize(("stack", "mutate", "key_path", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_broken_stack_file_fails_with_exit_2_naming_file_and_key_path_and_declares_nothing(
    tmp_path: Path, run_cli: Callable[..., CliResult], registrations: list[str],
    stack: str, mutate: Mutation, key_path: str, says: str,
) -> None:
    document = stack_document(stack)
    mutate(document)
    path = write_stack(tmp_path, document, name=f"Pulumi.{stack}-broken.yaml")

    result = run_cli("plan", "--stack", stack, "--config-file", str(path))

    assert result.code == 2
    line = next((ln for ln in result.err.splitlines() if f": {key_path}:" in ln), None)
    assert line is not None, f"no line names {key_path!r}:\n{result.err}"
    assert line.startswith(f"Pulumi.{stack}-broken.yaml: {key_path}: ")
    assert says in line
    assert "Traceback" not in result.err
    assert result.out == ""
    assert registrations == []


def test_several_mistakes_are_reported_together(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("prod")
    _set("platform:tenants.0.slug", "Bad_Slug")(document)
    _set("platform:alerts.emails.0", "nobody")(document)
    _set("platform:zone.colour", "blue")(document)

    result = run_cli("plan", "--stack", "prod", "--config-file", str(write_stack(tmp_path, document)))

    assert result.code == 2
    for key_path in ("platform:tenants[0].slug", "platform:alerts.emails[0]", "platform:zone.colour"):
        assert f"Pulumi.test.yaml: {key_path}: " in result.err


def test_a_secret_given_in_plain_text_is_never_echoed(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("staging")
    _set("platform:railwayMetricsToken", "hunter2-very-secret-value")(document)

    result = run_cli("plan", "--stack", "staging", "--config-file", str(write_stack(tmp_path, document)))

    assert result.code == 2
    assert "hunter2-very-secret-value" not in result.err + result.out


def test_a_stack_file_that_is_not_yaml_names_the_line(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config:\n  platform:version: 1\n  platform:zone: [unclosed\n")

    result = run_cli("plan", "--stack", "bad", "--config-file", str(path))

    assert result.code == 2
    assert "Pulumi.bad.yaml: line " in result.err
    assert "not valid YAML" in result.err


def test_a_missing_stack_file_is_a_usage_error(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("plan", "--stack", "nosuchstack")

    assert result.code == 2
    assert "Pulumi.nosuchstack.yaml: no such stack file" in result.err


def test_the_real_command_prints_no_traceback_for_a_broken_file(tmp_path: Path) -> None:
    document = stack_document("staging")
    _set("platform:tenants.0.domains.0", "shop..acme.com")(document)
    path = write_stack(tmp_path, document, name="Pulumi.staging.yaml")

    proc = subprocess.run([sys.executable, "-m", "infra", "plan", "--stack", "staging", "--config-file", str(path)],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=False)

    assert proc.returncode == 2
    assert ('Pulumi.staging.yaml: platform:tenants[0].domains[0]: "shop..acme.com" is not a valid hostname'
            in proc.stderr)
    assert "Traceback" not in proc.stderr
