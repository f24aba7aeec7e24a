"""Load a stack's config into the frozen model, or fail with every problem at once.

Config reaches a Pulumi program as strings (`PULUMI_CONFIG`; structured values JSON-encoded), with
the secret keys listed apart. `RawConfig` is that view; the real program builds it from the Pulumi
runtime, the offline `plan` from the stack file, so both go through the same validation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import pulumi.runtime.config as runtime_config
import yaml
from pydantic import BaseModel, ValidationError

from components.backends import docker as docker_backend
from components.observability import spec as observability_spec
from components.observability.stackconfig import telemetry_config_problems
from infra import model as m
from infra import tenants as tenants_check
from infra.edge_plan import check_edge
from infra.spec import DEPLOY_CREDENTIALS, PATTERN_MEANINGS, SECRET_FIELDS, SPEC_VERSIONS, StackSpecV1, raw_fields
from policies import waivers as waiver_rules
from policies.pack import RULES, WAIVER_RULE
from policies.rule import stack_kind
from stacks import identity as identity_rules
from stacks import providerconfig
from stacks.backends import LIMITS, NEEDS_VOLUME, cloudrun_min_cpu_for_memory
from stacks.contracts import cloudsql as cloudsql_contract
from stacks.profile import SERVICE_NAMES, ServiceName, ServiceProfile
from stacks.registry import PROFILES

NAMESPACE = "platform"
# What `plan` puts in place of a secret it cannot decrypt: format checks skip it.
UNDECRYPTED = "[secret]"


@dataclass(frozen=True)
class RawConfig:
    file: str
    values: Mapping[str, str]
    secret_keys: frozenset[str]
    stack: str | None = None
    """The stack this config is for, as the engine names it (`pulumi.get_stack()`, `plan --stack`);
    None when a caller does not say (then `platform:environment` is not compared with it)."""
    file_problems: tuple[str, ...] = ()
    """What is wrong with the stack file beside its config, found where the engine read it (an ESC import)."""

    @classmethod
    def from_pulumi_runtime(cls) -> RawConfig:
        """The config the Pulumi engine handed to this program run."""
        values: dict[str, str] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
        secret = frozenset(k for k in values if pulumi.runtime.is_config_secret(k))
        secret |= frozenset(runtime_config.get_config_secret_keys_env())
        stack = pulumi.get_stack()
        return cls(file=f"Pulumi.{stack}.yaml", values=values, secret_keys=secret, stack=stack,
                   file_problems=_stack_file_problems(identity_rules.PROJECT_DIR / f"Pulumi.{stack}.yaml"))


def _stack_file_problems(path: Path) -> tuple[str, ...]:
    """Under the CLI the engine has already merged an imported ESC environment into the config it hands over, so
    the import is found in the file itself (`plan` refuses it in infra/stackfile.py)."""
    from infra.stackfile import ESC_IMPORT

    try:
        document: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return ()  # no file (the CLI's --config-file elsewhere) or one the CLI already refused
    return (ESC_IMPORT,) if isinstance(document, dict) and "environment" in document else ()


class ConfigError(Exception):
    """One or more mistakes in a stack file. `str()` is the message a user sees: one per line."""

    def __init__(self, file: str, problems: Iterable[str]) -> None:
        self.file = file
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{file}: {p}" for p in self.problems))


def load_model(raw: RawConfig) -> m.StackModel:
    top = {k.split(":", 1)[1]: v for k, v in raw.values.items() if k.startswith(f"{NAMESPACE}:")}
    secret_names = {k.split(":", 1)[1] for k in raw.secret_keys if k.startswith(f"{NAMESPACE}:")}
    problems: list[str] = []

    version = _decode(top.get("version", ""), structured=True)
    if version not in SPEC_VERSIONS:
        shown = "is required but missing" if "version" not in top else f"{_show(version)} is not supported"
        raise ConfigError(raw.file, [f"{NAMESPACE}:version: {shown}; expected one of "
                                     f"{', '.join(map(str, SPEC_VERSIONS))}"])

    # Every namespace the program reads is checked (issue #22 item 13): a key outside `platform:` configures
    # a provider, so it is as much the stack as the platform's own keys.
    problems += providerconfig.key_problems(raw.values, raw.secret_keys, NAMESPACE)
    problems += providerconfig.project_config_problems(identity_rules.PROJECT_DIR / "Pulumi.yaml")
    problems += raw.file_problems
    fields = raw_fields(StackSpecV1)
    secret_aliases = {fields_alias(f) for f in SECRET_FIELDS}
    for alias in sorted(secret_aliases & top.keys() - secret_names):
        problems.append(f"{NAMESPACE}:{alias}: is in plain text but must be a secret; expected it set "
                        f"with `pulumi config set --secret {NAMESPACE}:{alias} <value>`")
    for alias in sorted(DEPLOY_CREDENTIALS.keys() & top.keys()):
        form = "a secret" if alias in secret_names else "in plain text"
        problems.append(f"{NAMESPACE}:{alias}: is a write credential, {form} in the stack file; write credentials "
                        "never go in a stack file, not even as a secret (a preview decrypts the stack's config for the "
                        f"pull request's code); expected it removed: {DEPLOY_CREDENTIALS[alias]}")
    decoded = {k: _decode(v, structured=_is_structured(fields.get(k))) for k, v in top.items()
               if k not in DEPLOY_CREDENTIALS}

    try:
        spec = StackSpecV1.model_validate(decoded)
    except ValidationError as exc:
        problems += [_describe(err, secret_aliases) for err in exc.errors()]
        raise ConfigError(raw.file, problems) from None

    services, service_problems = _merge_services(spec)
    problems += _check_stack_identity(spec, services, raw.stack)
    problems += _provider_consistency(spec, services, raw.values)
    # Environments do not share identities (issue #22 item 14), with the project's other committed stack files.
    problems += identity_rules.shared_problems(raw.stack or spec.environment, raw.values, UNDECRYPTED)
    problems += identity_rules.naming_problems(spec.environment, raw.values, UNDECRYPTED)
    problems += service_problems + _cross_check(spec, services, raw.stack or spec.environment)
    problems += telemetry_config_problems(spec, services, raw.file, raw.values, NAMESPACE)
    if any(svc.backend == "docker" for svc in services.values()):
        # How the deploy reaches the Docker host: never a plain TCP daemon (#20 item 10).
        problems += docker_backend.host_problems(raw.values, raw.secret_keys)
    if problems:
        raise ConfigError(raw.file, problems)
    model = _to_model(spec, services)
    problems = check_edge(model)
    if problems:
        raise ConfigError(raw.file, problems)
    return model


def fields_alias(field: str) -> str:
    info = StackSpecV1.model_fields[field]
    return info.alias or field


# ---------------------------------------------------------------------------------------------
# Decoding and describing


def _is_structured(info: Any) -> bool:
    """Whether the field holds anything but a plain string (so arrives JSON-encoded)."""
    if info is None:
        return True
    args = set(typing.get_args(info.annotation)) or {info.annotation}
    return not args <= {str, type(None)}


def _decode(value: str, *, structured: bool) -> Any:
    if not structured:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _path(loc: Iterable[int | str]) -> str:
    out = NAMESPACE
    for i, part in enumerate(loc):
        out += f"[{part}]" if isinstance(part, int) else (f":{part}" if i == 0 else f".{part}")
    return out


def _describe(err: Any, secret_aliases: set[str]) -> str:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    path = _path(loc)
    kind: str = err["type"]
    if kind == "missing":
        return f"{path}: is required but missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"{path}: is not a known key{did_you_mean}; expected one of: {', '.join(allowed)}"
    value = "[secret]" if loc and loc[0] in secret_aliases else _show(err["input"])
    message: str = err["msg"]
    if err.get("ctx", {}).get("expected") is not None and kind == "literal_error":
        return f"{path}: {value} is not allowed; expected {err['ctx']['expected']}"
    if message.startswith("Input should be "):
        return f"{path}: {value} is invalid; expected {message.removeprefix('Input should be ')}"
    meaning = PATTERN_MEANINGS.get(str(err.get("ctx", {}).get("pattern")))
    if kind == "string_pattern_mismatch" and meaning is not None:
        return f"{path}: {value} is invalid; expected {meaning}"
    if message.startswith("String should "):
        return f"{path}: {value} is invalid; expected a string that should {message.removeprefix('String should ')}"
    if message.startswith("List should "):
        return f"{path}: {value} is invalid; expected a list that should {message.removeprefix('List should ')}"
    return f"{path}: {value} {message}"


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    cls: type[BaseModel] | None = StackSpecV1
    for part in loc:
        if cls is None or isinstance(part, int):
            continue
        info = raw_fields(cls).get(part)
        if info is not None:  # otherwise `part` is a key of a mapping of `cls` values
            cls = _model_in(info.annotation)
    return sorted(raw_fields(cls)) if cls is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias) \
            and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------------------------
# Rules that span keys


def _cross_check(spec: StackSpecV1, services: Mapping[ServiceName, ServiceProfile], stack: str) -> list[str]:
    problems: list[str] = []
    problems += tenants_check.check_tenants(spec, NAMESPACE, _show)
    problems += _check_dates(spec)
    problems += _check_backups_endpoint(spec)
    problems += _check_frontend_repository(spec, stack)
    problems += _check_required_sections(spec, services)
    problems += _check_waivers(spec, stack)
    problems += _check_alert_overrides(spec)
    problems += _check_database(spec, services)
    return problems


def _check_database(spec: StackSpecV1, services: Mapping[ServiceName, ServiceProfile]) -> list[str]:
    """`platform:database`: PostgreSQL is Cloud SQL in the engine's VPC (components/postgres.py), so only an engine
    on Cloud Run with a `platform:gcp` project may have it; its machine type is one Cloud SQL takes."""
    if spec.database is None:
        return []
    where = f"{NAMESPACE}:database"
    serving = spec.database.engine == "postgres"
    if serving and spec.database.declare_postgres is False:
        return [f"{where}.declarePostgres: false contradicts engine \"postgres\" (the engine cannot serve from an "
                "undeclared database); expected true, or leave it out"]
    if not serving and not spec.database.declare_postgres:
        return []
    problems: list[str] = []
    engine = services["engine"].backend
    if engine != "cloudrun" or spec.gcp is None:
        shown = (f"the engine runs on {_show(engine)} ({NAMESPACE}:services.engine.backend)" if engine != "cloudrun"
                 else f"the stack has no {NAMESPACE}:gcp")
        key, what = ("engine", '"postgres"') if serving else ("declarePostgres", "true")
        problems.append(f"{where}.{key}: {what} is Cloud SQL for PostgreSQL, reached at a private address in "
                        f"the engine's VPC, which only an engine on Cloud Run has, but {shown}; expected "
                        "\"pocketbase\", or the engine on \"cloudrun\" with platform:gcp (supported: cloudrun)")
    problem = cloudsql_contract.tier_problem(spec.database.tier)
    if problem is not None:
        problems.append(f"{where}.tier: {_show(spec.database.tier)} is not a Cloud SQL for PostgreSQL machine type "
                        f"({problem}); expected db-custom-<vCPUs>-<MiB>: 1 or an even 2-96 vCPUs, 0.9 to 6.5 GB per "
                        f"vCPU, a multiple of 256 MB, at least 3840 MB, like db-custom-2-7680; source: "
                        f"{cloudsql_contract.RULES[0].source.split(' ')[0]}")
    return problems


def _check_stack_identity(spec: StackSpecV1, services: Mapping[ServiceName, ServiceProfile],
                          stack: str | None) -> list[str]:
    """The stack is what it says: its environment is its name, and docker runs in integration only."""
    problems: list[str] = []
    if stack is not None and spec.environment != stack:
        problems.append(f"{NAMESPACE}:environment: {_show(spec.environment)} is not this stack's environment; "
                        f"expected {_show(stack)} (the stack's name), or use the stack named {spec.environment!r}")
    kind = stack_kind(stack or spec.environment)
    for name in SERVICE_NAMES:
        if services[name].backend == "docker" and (kind != "integration" or spec.environment != "integration"):
            problems.append(f"{NAMESPACE}:services.{name}.backend: \"docker\" is refused in "
                            f"{stack or spec.environment}; the docker backend runs in integration only (one host: no "
                            "failover, no managed backups); expected \"cloudrun\" or \"railway\"")
    return problems


def _provider_consistency(spec: StackSpecV1, services: Mapping[ServiceName, ServiceProfile],
                          values: Mapping[str, str]) -> list[str]:
    """Provider keys say what the platform keys say, and only for providers this stack uses: a default provider
    configured for another project, region or team would put resources where the stack file does not say."""
    problems: list[str] = []
    backends = {svc.backend for svc in services.values()}
    if spec.gcp is None:
        problems += [f"{key}: {_show(values[key])} configures Google Cloud, but this stack declares no Google Cloud "
                     f"resources (no {NAMESPACE}:gcp); expected it removed"
                     for key in sorted(values) if key.startswith("gcp:")]
    else:
        for key, expected, where in (("gcp:project", spec.gcp.project, "gcp.project"),
                                     ("gcp:region", spec.gcp.region, "gcp.region")):
            given = values.get(key)
            if given is None:
                problems.append(f"{key}: is required because this stack declares Google Cloud resources; expected "
                                f"{_show(expected)} ({NAMESPACE}:{where})")
            elif given != expected and given != UNDECRYPTED:
                problems.append(f"{key}: {_show(given)} is not {NAMESPACE}:{where} {_show(expected)}; expected the "
                                "same value: the default provider would put resources elsewhere")
    team = values.get("vercel:team")
    if team is not None and team != spec.frontend.team_id:
        problems.append(f"vercel:team: {_show(team)} is not {NAMESPACE}:frontend.teamId "
                        f"{_show(spec.frontend.team_id)}; expected the same team")
    grafana_url = values.get("grafana:url")
    if services["engine"].backend == "docker":
        problems += [f"{key}: {_show(values[key])} is not read: this stack runs its own Grafana (https://grafana."
                     f"{spec.zone.name}), where its alerting goes; expected it removed"
                     for key in ("grafana:url", "grafana:orgId") if key in values]
    elif grafana_url is None:
        problems.append("grafana:url: is required because the alerting (folder, contact points, rules) goes to the "
                        "environment's Grafana; expected https://<stack>.grafana.net (without it the provider "
                        "takes GRAFANA_URL from wherever the deploy runs)")
    if "docker" not in backends:
        problems += [f"{key}: is not read: no service of this stack runs on the docker backend; expected it removed"
                     for key in sorted(values) if key.startswith("docker:")]
    return problems


ALERT_FACTOR = 2
"""An override may move a threshold or duration at most this many times the document's value."""
PAGE_MAX_MINUTES = 15
"""A page waits at most this long before it pages."""


def _check_alert_overrides(spec: StackSpecV1) -> list[str]:
    """Overrides have ceilings, so a stack cannot silence a page: a threshold at most ALERT_FACTOR times
    the document's (and below 1 for a ratio), a duration at most ALERT_FACTOR times it (or 5 minutes
    more), and a page at most PAGE_MAX_MINUTES late."""
    known = {alert.name: alert for alert in observability_spec.load().alerts}
    problems: list[str] = []
    for name, override in spec.alerts.overrides.items():
        where = f"{NAMESPACE}:alerts.overrides.{name}"
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(f"{where}: is not an alert of components/observability/slos.yaml{did_you_mean}; "
                            f"expected one of: {', '.join(sorted(known))}")
            continue
        alert = known[name]
        if override.above is not None:
            ceiling = alert.above * ALERT_FACTOR
            if override.above <= 0:
                problems.append(f"{where}.above: {_show(override.above)} is not a threshold; expected a positive "
                                "number")
            elif alert.sli.endswith("_ratio") and override.above >= 1:
                problems.append(f"{where}.above: {_show(override.above)} can never be exceeded by a ratio "
                                f"({alert.sli}); expected at most {ceiling:g} and below 1")
            elif override.above > ceiling:
                problems.append(f"{where}.above: {_show(override.above)} would silence the {alert.severity}; "
                                f"expected at most {ceiling:g} ({ALERT_FACTOR} x the documented {alert.above:g})")
        if override.for_ is not None:
            documented = observability_spec.minutes(alert.for_)
            ceiling_minutes = max(documented * ALERT_FACTOR, documented + 5)
            if alert.severity == "page":
                ceiling_minutes = min(ceiling_minutes, max(PAGE_MAX_MINUTES, documented))
            if observability_spec.minutes(override.for_) > ceiling_minutes:
                problems.append(f"{where}.for: {_show(override.for_)} delays the {alert.severity} too long; expected "
                                f"at most {ceiling_minutes}m (documented {alert.for_})")
    return problems


def _check_waivers(spec: StackSpecV1, stack: str) -> list[str]:
    """What can be known before the plan: the pack checks the rest (resource, use) itself."""
    known = {rule.id: rule for rule in RULES if rule.id != WAIVER_RULE}  # the rules a waiver may name
    zone = spec.zone.name
    tenant_hosts = {t.slug: {f"{t.slug}.{zone}", *t.domains} for t in spec.tenants}
    subjects = {*tenant_hosts, *(h for hosts in tenant_hosts.values() for h in hosts),
                *(f"{label}.{zone}" for label in ("api", "customers", "grafana"))}
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for i, waiver in enumerate(spec.waivers):
        where = f"{NAMESPACE}:waivers[{i}]"
        rule = known.get(waiver.rule)
        if rule is None:
            problems.append(f"{where}.rule: {_show(waiver.rule)} is not a rule of the policy pack a waiver may name; "
                            f"expected one of {', '.join(sorted(known))}")
        entry = {f: getattr(waiver, f) for f in ("resource", "subject", "expires", "ticket", "reason")}
        for field, problem in waiver_rules.field_problems(entry, waiver.rule, stack, waiver_rules_today(),
                                                          rule is not None and rule.iam):
            shown = f"{_show(entry[field])} " if field in ("expires", "reason") else ""
            problems.append(f"{where}.{field}: {shown}{problem}")
        if waiver.subject not in subjects and waiver.subject != waiver.resource:
            problems.append(f"{where}.subject: {_show(waiver.subject)} is not a tenant of this stack or one of its "
                            f"hosts (nor the resource itself); expected one of {', '.join(sorted(tenant_hosts))}, a "
                            "host of theirs, or the waived resource: a waiver never covers a whole zone")
        if (waiver.rule, waiver.resource, waiver.subject) in seen:
            problems.append(f"{where}: {waiver.rule} is already waived for {waiver.resource!r} and "
                            f"{waiver.subject!r}; expected one waiver per rule, resource and subject")
        seen.add((waiver.rule, waiver.resource, waiver.subject))
    return problems


WAIVERS_AS_OF_ENV = "PLATFORM_WAIVERS_AS_OF"
"""Only for tools/ci/deployed-plan.sh: the deployed commit, planned as the quota budget's baseline, has its waivers
judged as of its own date (YYYY-MM-DD), so a waiver that expired since does not fail every later deploy. Never a
date after today; anything but a date is ignored (today)."""


def waiver_rules_today() -> dt.date:
    today = dt.datetime.now(dt.UTC).date()
    given = os.environ.get(WAIVERS_AS_OF_ENV, "")
    try:
        as_of = dt.date.fromisoformat(given) if given else today
    except ValueError:
        return today
    return min(as_of, today)


TOKEN_LIFETIME_DAYS = 366
"""How far ahead the bootstrap's zone-scoped tokens may expire: a year (and a leap day). Cloudflare's tokens can
carry an expiry ("TTL", https://developers.cloudflare.com/fundamentals/api/get-started/create-token/); one that
lives for decades is a key for good once it leaks, so the date is renewed yearly with the tokens."""


def _check_dates(spec: StackSpecV1) -> list[str]:
    try:
        expires = dt.date.fromisoformat(spec.zone.tokens_expire_on)
    except ValueError:
        return [f"{NAMESPACE}:zone.tokensExpireOn: {_show(spec.zone.tokens_expire_on)} is not a calendar "
                "date; expected YYYY-MM-DD"]
    today = waiver_rules_today()
    if (expires - today).days > TOKEN_LIFETIME_DAYS:
        return [f"{NAMESPACE}:zone.tokensExpireOn: {_show(spec.zone.tokens_expire_on)} is "
                f"{(expires - today).days} days ahead; expected at most {TOKEN_LIFETIME_DAYS} days ahead (by "
                f"{(today + dt.timedelta(days=TOKEN_LIFETIME_DAYS)).isoformat()}): the deploy tokens are renewed "
                "yearly, never issued for good"]
    return []


BACKUP_ENDPOINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # https://docs.aws.amazon.com/general/latest/gr/s3.html: "s3.<Region>.amazonaws.com", one per region.
    ("https://s3.<region>.amazonaws.com (AWS)", re.compile(r"https://s3\.(?P<region>[a-z]{2}(-[a-z]+)+-[0-9])\.amazonaws\.com")),
    # https://cloud.google.com/storage/docs/interoperability: "https://storage.googleapis.com".
    ("https://storage.googleapis.com (Google Cloud Storage)", re.compile(r"https://storage\.googleapis\.com")),
    # https://developers.cloudflare.com/r2/api/s3/api/: "https://<ACCOUNT_ID>.r2.cloudflarestorage.com".
    ("https://<account id>.r2.cloudflarestorage.com (Cloudflare R2)",
     re.compile(r"https://[0-9a-f]{32}\.r2\.cloudflarestorage\.com")),
)
"""Where PocketBase may send its backups (S3-compatible), by the provider's documented endpoint. A prefix check let
`https://s3.us-east-1.amazonaws.com.attacker.example` through, with the bucket's key signing every request."""


def _check_backups_endpoint(spec: StackSpecV1) -> list[str]:
    backups = spec.backups
    if backups is None:
        return []
    for _, pattern in BACKUP_ENDPOINTS:
        match = pattern.fullmatch(backups.endpoint.rstrip("/"))
        if match is None:
            continue
        region = match.groupdict().get("region")
        if region is not None and region != backups.region:
            return [f"{NAMESPACE}:backups.endpoint: {_show(backups.endpoint)} is the endpoint of region {region}; "
                    f"expected the endpoint of {NAMESPACE}:backups.region {backups.region} "
                    f"(https://s3.{backups.region}.amazonaws.com): S3 refuses requests signed for another region"]
        return []
    return [f"{NAMESPACE}:backups.endpoint: {_show(backups.endpoint)} is not a storage provider's S3 endpoint; "
            f"expected the S3 endpoint of the bucket's provider: {', '.join(name for name, _ in BACKUP_ENDPOINTS)}"]


def _check_frontend_repository(spec: StackSpecV1, stack: str) -> list[str]:
    """Every environment builds the one storefront repository (a branch of it per environment): a stack naming
    another would have Vercel build and serve that owner's code on every tenant host."""
    problems: list[str] = []
    ours = spec.frontend.repository
    for _, file, values in identity_rules.committed_stacks(stack):
        try:
            theirs: Any = json.loads(values.get(f"{NAMESPACE}:frontend", "{}")).get("repository")
        except (ValueError, AttributeError):
            continue
        if isinstance(theirs, str) and theirs.lower() != ours.lower():
            problems.append(f"{NAMESPACE}:frontend.repository: {_show(ours)} is not the storefront repository "
                            f"the other environments build ({file}: {NAMESPACE}:frontend.repository "
                            f"{_show(theirs)}); expected the same repository in every stack file (move them "
                            "together)")
    return problems


_SERVICE_FIELDS = ("backend", "cpu_millis", "memory_mib", "peak_cpu_millis", "peak_memory_mib",
                   "min_instances", "max_instances", "public")


def _merge_services(spec: StackSpecV1) -> tuple[dict[ServiceName, ServiceProfile], list[str]]:
    profile = PROFILES[spec.environment]
    merged: dict[ServiceName, ServiceProfile] = {}
    problems: list[str] = []
    for name in SERVICE_NAMES:
        override = getattr(spec.services, name, None) if spec.services else None
        given = {f: getattr(override, f) for f in _SERVICE_FIELDS if override and getattr(override, f) is not None}
        svc = dataclasses.replace(profile.services[name], **given)
        merged[name] = svc

        def where(field: str, svc_name: str = name, overridden: Mapping[str, Any] = given) -> str:
            if field in overridden:
                return f"{NAMESPACE}:services.{svc_name}.{_camel(field)}"
            return f"{NAMESPACE}:services.{svc_name}.{_camel(field)} (from profile {spec.environment!r})"

        problems += _check_service(name, svc, where)
        engine_backend = merged["engine"].backend
        if name == "pocketbase" and svc.backend == "gce" and engine_backend != "cloudrun":
            problems.append(f"{where('backend')}: \"gce\" is a VM in the VPC that Cloud Run's Direct VPC egress "
                            f"enters, but the engine runs on {_show(engine_backend)}; expected the engine on "
                            "\"cloudrun\", or PocketBase on the engine's backend")
        elif name == "pocketbase" and svc.backend not in (engine_backend, "gce") and not svc.public:
            # The engine cannot reach another backend's private network: it uses PocketBase's HTTPS domain.
            merged[name] = dataclasses.replace(svc, public=True)
        if name == "redis" and svc.backend != merged["engine"].backend:
            problems.append(f"{where('backend')}: {_show(svc.backend)} is not the engine's backend "
                            f"{_show(merged['engine'].backend)}; Redis is reachable only on its backend's private "
                            "network, so expected the engine's backend")
    return merged, problems


def _check_service(name: ServiceName, svc: ServiceProfile, where: typing.Callable[[str], str]) -> list[str]:
    limits = LIMITS[svc.backend]
    problems: list[str] = []
    if name in NEEDS_VOLUME and not limits.volumes:
        problems.append(f"{where('backend')}: {_show(svc.backend)} cannot run {name}: it keeps its data "
                        f"on a volume and {limits.why_no_volumes}; expected \"docker\" or \"railway\"")
    if name == "redis" and svc.public:
        problems.append(f"{where('public')}: true, but Redis is never publicly reachable (L4); expected false")
    if name == "redis" and svc.backend == "cloudrun" and svc.memory_mib % 1024:
        problems.append(f"{where('memory_mib')}: {svc.memory_mib} is not whole GiB, and Redis on Cloud Run is "
                        "Memorystore, sized in GiB; expected a multiple of 1024")
    cite = f"; source: {limits.source}" if limits.source else ""
    for field in ("cpu_millis", "peak_cpu_millis"):
        value = getattr(svc, field)
        low, high = limits.cpu_millis_range
        if limits.cpu_millis_allowed is not None and value not in limits.cpu_millis_allowed:
            allowed = ", ".join(map(str, limits.cpu_millis_allowed))
            problems.append(f"{where(field)}: {value} is not a CPU size {svc.backend} accepts; "
                            f"expected one of {allowed}{cite}")
        elif not low <= value <= high:
            problems.append(f"{where(field)}: {value} is outside what {svc.backend} allows; "
                            f"expected {low} to {high}{cite}")
    for field in ("memory_mib", "peak_memory_mib"):
        value = getattr(svc, field)
        low, high = limits.memory_mib_range
        if not low <= value <= high:
            problems.append(f"{where(field)}: {value} is outside what {svc.backend} allows; "
                            f"expected {low} to {high}{cite}")
    if svc.backend == "cloudrun":
        for mem_field, cpu_field in (("memory_mib", "cpu_millis"), ("peak_memory_mib", "peak_cpu_millis")):
            needed = cloudrun_min_cpu_for_memory(getattr(svc, mem_field))
            if getattr(svc, cpu_field) < needed:
                problems.append(f"{where(mem_field)}: {getattr(svc, mem_field)} needs at least "
                                f"{needed} CPU millis on Cloud Run; expected {_camel(cpu_field)} >= {needed}")
    if svc.peak_cpu_millis < svc.cpu_millis or svc.peak_memory_mib < svc.memory_mib:
        problems.append(f"{where('peak_cpu_millis')}: the peak size {svc.peak_cpu_millis}m/"
                        f"{svc.peak_memory_mib}Mi is below the steady size {svc.cpu_millis}m/"
                        f"{svc.memory_mib}Mi; expected peak >= steady")
    if svc.min_instances > svc.max_instances:
        problems.append(f"{where('min_instances')}: {svc.min_instances} is above maxInstances "
                        f"{svc.max_instances}; expected minInstances <= maxInstances")
    elif not limits.autoscaling and svc.min_instances != svc.max_instances:
        problems.append(f"{where('max_instances')}: {svc.max_instances} differs from minInstances "
                        f"{svc.min_instances}, but {svc.backend} has no replica autoscaling; expected "
                        "a fixed count (minInstances equal to maxInstances)")
    if svc.max_instances > limits.max_instances_limit:
        problems.append(f"{where('max_instances')}: {svc.max_instances} is more than {svc.backend} "
                        f"runs; expected at most {limits.max_instances_limit}")
    elif name in NEEDS_VOLUME and svc.max_instances != 1:
        problems.append(f"{where('max_instances')}: {svc.max_instances} replicas of {name}, but a service "
                        "with a volume runs exactly one replica; expected 1")
    return problems


def _check_required_sections(spec: StackSpecV1, services: Mapping[ServiceName, ServiceProfile]) -> list[str]:
    backends = {svc.backend for svc in services.values()}
    needs: list[tuple[bool, str, str]] = [
        ("cloudrun" in backends and spec.gcp is None, "gcp", "a service runs on Cloud Run"),
        ("gce" in backends and spec.gcp is None, "gcp", "a service runs on Compute Engine"),
        ("railway" in backends and spec.railway is None, "railway", "a service runs on Railway"),
        (services["engine"].backend != "docker" and spec.registry is None, "registry",
         "the engine image is pushed to a registry"),
        # A stack with a GCP project declares its own backup and replica buckets (infra/ops/replica.py): only
        # one without names a bucket, and its key, here.
        (services["pocketbase"].backend != "docker" and spec.gcp is None and spec.backups is None, "backups",
         "PocketBase backs up daily to S3-compatible storage (C7) and the stack has no platform:gcp to declare it in"),
        (spec.slack_webhook_url is None, "slackWebhookUrl", "alerts go to Slack (L7)"),
        (spec.catalog_purge_token is None, "catalogPurgeToken",
         "the engine purges its tenants' catalogs at the edge (C5); the bootstrap creates it: "
         "`pulumi -C infra/bootstrap stack output catalogPurgeToken --show-secrets`"),
    ]
    problems = [f"{NAMESPACE}:{key}: is required because {why}" for missing, key, why in needs if missing]
    dr = PROFILES[spec.environment].disaster_recovery
    if dr.failover_region_enabled and services["engine"].backend == "cloudrun" and spec.gcp is not None:
        if spec.gcp.failover_region is None:
            problems.append(f"{NAMESPACE}:gcp.failoverRegion: is required because profile "
                            f"{spec.environment!r} runs a failover region (C8)")
        elif spec.gcp.failover_region == spec.gcp.region:
            problems.append(f"{NAMESPACE}:gcp.failoverRegion: {_show(spec.gcp.failover_region)} is the "
                            "primary region; expected a different region")
        elif spec.registry is not None and spec.registry.server == f"{spec.gcp.region}-docker.pkg.dev":
            # Cloud Run imports an image at each new revision and a VM pulls PocketBase's at boot: the standby's
            # images must outlive the primary region (docs/runbooks/failover.md).
            problems.append(f"{NAMESPACE}:registry.server: {_show(spec.registry.server)} is in the primary region "
                            f"{spec.gcp.region}, which a failover to {spec.gcp.failover_region} must outlive: the "
                            "standby could not pull its images; expected a multi-region Artifact Registry "
                            f"(us-docker.pkg.dev, europe-docker.pkg.dev, asia-docker.pkg.dev) or "
                            f"{spec.gcp.failover_region}-docker.pkg.dev")
    if spec.gcp is not None and spec.gcp.serving == "failover" and not (
            dr.failover_region_enabled and spec.gcp.failover_region and services["engine"].backend == "cloudrun"
            and services["pocketbase"].backend == "gce"):
        problems.append(f"{NAMESPACE}:gcp.serving: \"failover\" names a standby this stack does not have; expected "
                        "\"primary\", or a gcp.failoverRegion with the engine on cloudrun and PocketBase on gce in "
                        "a profile that runs a failover region")
    url = spec.slack_webhook_url
    if url is not None and url != UNDECRYPTED and not url.startswith("https://hooks.slack.com/"):
        problems.append(f"{NAMESPACE}:slackWebhookUrl: [secret] is not a Slack webhook URL; expected "
                        "https://hooks.slack.com/services/...")
    return problems


# Artifact Registry accepts the caller's OAuth access token as a password for the user
# `oauth2accesstoken` (https://cloud.google.com/artifact-registry/docs/docker/authentication#token):
# `pulumi up` pushes with the deployer's own credentials, valid an hour, and no key file exists. Cloud
# Run and the VMs pull with their service accounts. Any other registry is pushed to with the deploy job's own
# `docker login` (short-lived), and Railway, which keeps the credentials it is given for every later pull, pulls
# with a read-only token from the deploy job's environment (RAILWAY_REGISTRY_PASSWORD): none is in the stack file.
SHORT_LIVED_REGISTRY_USER = "oauth2accesstoken"


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


# ---------------------------------------------------------------------------------------------
# Mapping


def _secret(key: str, value: str | None) -> m.Secret:
    assert value is not None  # required keys were checked above
    return m.Secret(f"{NAMESPACE}:{key}", value)


def _to_model(spec: StackSpecV1, services: dict[ServiceName, ServiceProfile]) -> m.StackModel:
    zone = m.Zone(spec.zone.name, spec.zone.zone_id, spec.zone.account_id, spec.zone.tokens_expire_on,
                  spec.zone.plan)
    f = spec.frontend
    return m.StackModel(
        environment=spec.environment,
        profile=PROFILES[spec.environment],
        zone=zone,
        frontend=m.Frontend(f.project_name, f.repository, f.production_branch, f.root_directory,
                            f.team_id, f.function_region),
        tenants=tuple(
            m.Tenant(
                slug=t.slug,
                name=t.name,
                currency=t.currency,
                platform_hostname=f"{t.slug}.{zone.name}",
                custom_domains=tuple(t.domains),
                rate_limit_per_minute=t.rate_limit_per_minute,
                waf_log_only=t.waf_mode == "log",
            )
            for t in spec.tenants
        ),
        services=services,
        alerts=m.Alerts(tuple(spec.alerts.emails), _secret("slackWebhookUrl", spec.slack_webhook_url),
                        spec.alerts.prometheus_datasource_uid,
                        tuple((name, o.above, o.for_) for name, o in sorted(spec.alerts.overrides.items())),
                        float(spec.alerts.monthly_budget_usd) if spec.alerts.monthly_budget_usd else None),
        grafana_cloud=(m.GrafanaCloud(spec.grafana_cloud.prometheus_push_url, spec.grafana_cloud.prometheus_user,
                                      spec.grafana_cloud.otlp_endpoint, spec.grafana_cloud.otlp_user,
                                      spec.grafana_cloud.loki_url, spec.grafana_cloud.loki_user,
                                      _secret("grafanaCloudToken", spec.grafana_cloud_token))
                       if spec.grafana_cloud and spec.grafana_cloud_token is not None else None),
        railway_metrics_token=(_secret("railwayMetricsToken", spec.railway_metrics_token)
                               if spec.railway_metrics_token is not None else None),
        gcp=m.Gcp(spec.gcp.project, spec.gcp.region, spec.gcp.failover_region, spec.gcp.log_retention_days,
                  spec.gcp.serving)
        if spec.gcp else None,
        railway=(m.Railway(spec.railway.project_id, spec.railway.environment_id, spec.railway.region)
                 if spec.railway else None),
        registry=(m.Registry(spec.registry.server, spec.registry.repository, spec.registry.username)
                  if spec.registry else None),
        backups=(m.Backups(spec.backups.bucket, spec.backups.endpoint, spec.backups.region,
                           spec.backups.access_key_id)
                 if spec.backups else None),
        engine_image=spec.engine_image,
        database=(m.Database(spec.database.engine, spec.database.tier, spec.database.disk_gb,
                             spec.database.postgres_version, bool(spec.database.declare_postgres))
                  if spec.database is not None else m.Database()),
        catalog_purge_token=_secret("catalogPurgeToken", spec.catalog_purge_token or ""),
        waivers=tuple(m.Waiver(w.rule, w.resource, w.subject, w.expires, w.ticket, w.reason) for w in spec.waivers),
    )
