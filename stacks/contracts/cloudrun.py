"""Cloud Run (v2 API, `gcp:cloudrunv2/service:Service`): what the service accepts for a revision.

The instance's CPU and memory are its containers' limits added up (sidecars share the instance). Defaults are
the API's: a container without limits has 1 vCPU and 512 MiB, concurrency is 80, and `cpuIdle` is false
(CPU always allocated) once `resources` is set (Magic Modules `cloudrunv2/Service.yaml`, `cpuIdle`: "True by
default if the parent `resources` field is not set. However, if `resources` is set, this field must be
explicitly set to true to preserve the default behavior")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stacks.backends import CLOUDRUN_MEMORY_NEEDS_CPU
from stacks.contracts.rule import Context, Planned, Problem, Rule, cpu_quantity, get, items, memory_mib

SERVICE = "gcp:cloudrunv2/service:Service"
_CPU_DOC = "https://cloud.google.com/run/docs/configuring/services/cpu"
_MEMORY_DOC = "https://cloud.google.com/run/docs/configuring/services/memory-limits"
_CONCURRENCY_DOC = "https://cloud.google.com/run/docs/about-concurrency"
_PROBE_DOC = ("https://cloud.google.com/run/docs/reference/rest/v2/Container#Probe (Magic Modules "
              "mmv1/products/cloudrunv2/Service.yaml)")
DEFAULT_CPU, DEFAULT_MEMORY_MIB, DEFAULT_CONCURRENCY = 1.0, 512.0, 80
WHOLE_CPUS = (1, 2, 4, 6, 8)
STARTUP_PROBE_MAX_S = 240
MEMORY_FLOOR_MIB = ((4, 2048), (6, 4096), (8, 4096))
"""(vCPU, least MiB): the docs' table, "4 vCPU: 2 to 16 GiB, 6 vCPU: 4 to 24 GiB, 8 vCPU: 4 to 32 GiB"."""


def _containers(inputs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return items(get(inputs, "template", "containers"))


def instance_cpu(inputs: Mapping[str, Any]) -> float | None:
    """vCPU of one instance: its containers' `limits.cpu` added up; None if one is not known here."""
    total = 0.0
    for container in _containers(inputs):
        raw = get(container, "resources", "limits", "cpu")
        cpu = DEFAULT_CPU if raw is None and get(container, "resources", "limits") is None else cpu_quantity(raw)
        if cpu is None:
            return None
        total += cpu
    return total


def instance_memory_mib(inputs: Mapping[str, Any]) -> float | None:
    total = 0.0
    for container in _containers(inputs):
        raw = get(container, "resources", "limits", "memory")
        mib = DEFAULT_MEMORY_MIB if raw is None and get(container, "resources", "limits") is None \
            else memory_mib(raw)
        if mib is None:
            return None
        total += mib
    return total


def _concurrency(inputs: Mapping[str, Any]) -> int:
    value = get(inputs, "template", "maxInstanceRequestConcurrency")
    return int(value) if isinstance(value, int | float) else DEFAULT_CONCURRENCY


def _cpu_always_allocated(container: Mapping[str, Any]) -> bool:
    if get(container, "resources") is None:
        return False
    return get(container, "resources", "cpuIdle") is not True


def _fraction(inputs: Mapping[str, Any]) -> float | None:
    """The instance's vCPU when below one; None otherwise or when unknown."""
    cpu = instance_cpu(inputs)
    return cpu if cpu is not None and cpu < 1 else None


def _fractional_concurrency(resource: Planned, _: Context) -> Sequence[Problem]:
    cpu = _fraction(resource.inputs)
    concurrency = _concurrency(resource.inputs)
    return [f"{cpu:g} vCPU with concurrency {concurrency}"] if cpu is not None and concurrency != 1 else []


def _fractional_cpu_idle(resource: Planned, _: Context) -> Sequence[Problem]:
    cpu = _fraction(resource.inputs)
    if cpu is None:
        return []
    always = [str(c.get("name", "?")) for c in _containers(resource.inputs) if _cpu_always_allocated(c)]
    return [f"{cpu:g} vCPU with CPU always allocated (cpuIdle not true) in {', '.join(always)}"] if always else []


def _fractional_gen1(resource: Planned, _: Context) -> Sequence[Problem]:
    cpu = _fraction(resource.inputs)
    environment = get(resource.inputs, "template", "executionEnvironment")
    if cpu is not None and environment == "EXECUTION_ENVIRONMENT_GEN2":
        return [f"{cpu:g} vCPU in {environment}"]
    return []


def _valid_cpu(cpu: float) -> bool:
    return 0.08 - 1e-9 <= cpu <= 1 or any(abs(cpu - whole) < 1e-9 for whole in WHOLE_CPUS)


def _cpu_values(resource: Planned, _: Context) -> Sequence[Problem]:
    """The instance (its containers added up, as "each instance is limited to" reads) and each container."""
    problems: list[Problem] = []
    cpu = instance_cpu(resource.inputs)
    if cpu is not None and not _valid_cpu(cpu):
        problems.append(f"{cpu:g} vCPU for the instance")
    for container in _containers(resource.inputs):
        own = cpu_quantity(get(container, "resources", "limits", "cpu"))
        if own is not None and not _valid_cpu(own):
            problems.append(f"{own:g} vCPU for container {container.get('name', '?')}")
    return problems


def _memory_per_cpu(resource: Planned, _: Context) -> Sequence[Problem]:
    cpu, memory = instance_cpu(resource.inputs), instance_memory_mib(resource.inputs)
    if cpu is None or memory is None:
        return []
    needed = 0.08
    for above_mib, cpu_millis in ((512, 500), (1024, 1000), *CLOUDRUN_MEMORY_NEEDS_CPU):
        if memory > above_mib:
            needed = cpu_millis / 1000
    least = max((mib for whole, mib in MEMORY_FLOOR_MIB if cpu >= whole), default=0)
    if cpu + 1e-9 < needed or memory > 32768 or memory < least:
        return [f"{memory:g} MiB with {cpu:g} vCPU (needs at least {needed:g} vCPU; at least {least} MiB for "
                f"that CPU; at most 32 GiB)"]
    return []


def _concurrency_range(resource: Planned, _: Context) -> Sequence[Problem]:
    concurrency = _concurrency(resource.inputs)
    return [f"concurrency {concurrency}"] if not 1 <= concurrency <= 1000 else []


def _min_max(resource: Planned, _: Context) -> Sequence[Problem]:
    low = get(resource.inputs, "template", "scaling", "minInstanceCount")
    high = get(resource.inputs, "template", "scaling", "maxInstanceCount")
    if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
        return [f"minInstanceCount {low:g} > maxInstanceCount {high:g}"]
    return []


def _probe(probe: Any) -> tuple[int, int, int, int] | None:
    """(initialDelay, timeout, period, failureThreshold) with the API's defaults (0, 1, 10, 3)."""
    if not isinstance(probe, Mapping):
        return None

    def value(key: str, default: int) -> int:
        raw = get(probe, key)  # pyright: ignore[reportUnknownArgumentType]
        return int(raw) if isinstance(raw, int | float) else default

    return value("initialDelaySeconds", 0), value("timeoutSeconds", 1), value("periodSeconds", 10), \
        value("failureThreshold", 3)


def _startup_budget(resource: Planned, _: Context) -> Sequence[Problem]:
    """Each field within the v2 Probe message's maxima for a startup probe; not their product: the services page
    states no limit on failureThreshold x periodSeconds (only the jobs and worker pools pages do)."""
    problems: list[Problem] = []
    for container in _containers(resource.inputs):
        probe = _probe(get(container, "startupProbe"))
        if probe is None:
            continue
        delay, _timeout, period, _failures = probe
        if delay > STARTUP_PROBE_MAX_S or period > STARTUP_PROBE_MAX_S:
            problems.append(f"{container.get('name', '?')}: initialDelaySeconds {delay}, periodSeconds {period}")
    return problems


def _probe_timeout(resource: Planned, _: Context) -> Sequence[Problem]:
    problems: list[Problem] = []
    for container in _containers(resource.inputs):
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = _probe(get(container, kind))
            if probe is not None and probe[1] > probe[2]:
                problems.append(f"{container.get('name', '?')} {kind}: timeoutSeconds {probe[1]} > "
                                f"periodSeconds {probe[2]}")
    return problems


def _one_ingress(resource: Planned, _: Context) -> Sequence[Problem]:
    containers = _containers(resource.inputs)
    if len(containers) < 2:
        return []
    with_ports = [str(c.get("name", "?")) for c in containers if items(get(c, "ports"))]
    if len(with_ports) != 1:
        return [f"{len(containers)} containers, {len(with_ports)} with ports ({', '.join(with_ports) or 'none'})"]
    return []


# Fields of the v2 schema that exist only in the google-beta provider, which pulumi-gcp is generated from
# (pulumi-gcp 10.2.0 has them; terraform-provider-google, the GA schema, does not): the API takes them on a
# service whose launch stage is a preview stage.
BETA_FIELDS: tuple[tuple[str, ...], ...] = (
    ("template", "scaling", "cpuUtilization"),
    ("template", "scaling", "concurrencyUtilization"),
)
PREVIEW_STAGES = frozenset({"BETA", "ALPHA"})


def _beta_fields(resource: Planned, _: Context) -> Sequence[Problem]:
    stage = get(resource.inputs, "launchStage")
    if stage in PREVIEW_STAGES:
        return []
    present = [".".join(path) for path in BETA_FIELDS if get(resource.inputs, *path) is not None]
    return [f"{', '.join(present)} with launchStage {stage or 'unset (GA)'}"] if present else []


_TYPES = frozenset({SERVICE})
RULES: tuple[Rule, ...] = (
    Rule("CR-CPU-001", "Cloud Run", "an instance below 1 vCPU must have maximum concurrency 1", _CPU_DOC +
         ' ("If you use less than 1 vCPU, the following requirements are enforced: ... Concurrency: Maximum '
         'concurrency must be set to 1")', _TYPES, _fractional_concurrency),
    Rule("CR-CPU-002", "Cloud Run", "an instance below 1 vCPU must have CPU allocated only during requests "
         "(cpuIdle true, request-based billing)", _CPU_DOC + ' ("Billing: The billing settings must be set to '
         'request-based billing"; earlier "CPU allocation must be set to CPU allocated only during request '
         'processing")', _TYPES, _fractional_cpu_idle),
    Rule("CR-CPU-003", "Cloud Run", "an instance below 1 vCPU must run in the first generation execution "
         "environment", _CPU_DOC + ' ("Execution environment: You must use the first generation execution '
         'environment")', _TYPES, _fractional_gen1),
    Rule("CR-CPU-004", "Cloud Run", "an instance has 0.08 to 1 vCPU, or 1, 2, 4, 6 or 8 vCPU", _CPU_DOC +
         ' ("The minimum vCPU setting is 0.08 vCPU", "Values greater than 1 must be integer values", table '
         '1, 2, 4, 6, 8 vCPU, "The maximum amount of vCPU you can configure is 8 vCPU")', _TYPES, _cpu_values),
    Rule("CR-MEM-001", "Cloud Run", "memory needs CPU: above 512 MiB 0.5 vCPU, above 1 GiB 1, above 4 GiB 2, "
         "above 8 GiB 4, above 16 GiB 6, above 24 GiB 8; 4 vCPU need 2 GiB, 6 and 8 vCPU 4 GiB; at most 32 GiB",
         _MEMORY_DOC + ' ("More than 4 GiB: 2 '
         '... More than 24 GiB: 8", "The maximum amount of memory you can configure is 32 GiB"); ' + _CPU_DOC +
         ' ("A minimum of 0.5 vCPU is needed to set a memory limit greater than 512MiB. A minimum of 1 vCPU is '
         'needed to set a memory limit greater than 1GiB"; table "4 vCPU: 2 to 16 GiB ... 8 vCPU: 4 to 32 GiB"); '
         'stacks/backends.py CLOUDRUN_MEMORY_NEEDS_CPU',
         _TYPES, _memory_per_cpu),
    Rule("CR-CONC-001", "Cloud Run", "maximum concurrent requests per instance is 1 to 1000", _CONCURRENCY_DOC +
         ' ("By default each Cloud Run instance can receive up to 80 requests at the same time; you can '
         'increase this to a maximum of 1000")', _TYPES, _concurrency_range),
    Rule("CR-SCALE-001", "Cloud Run", "minimum instances must not exceed maximum instances",
         "https://cloud.google.com/run/docs/configuring/min-instances (pulumi-gcp 10.2.0 cloudrunv2 "
         'ServiceTemplateScaling: "Minimum number of instances ... Combined maximum number of instances")',
         _TYPES, _min_max),
    # Not a budget on failureThreshold x periodSeconds: the services page (cloud.google.com/run/docs/configuring/
    # healthchecks) gives none, and its own default startup probe is "timeoutSeconds: 240 periodSeconds: 240
    # failureThreshold: 1". The jobs page's "can't exceed 240 seconds" is now "can't exceed 600 seconds (1800 for
    # GPU)" (docs.cloud.google.com/run/docs/configuring/jobs/healthchecks) and was never the services' rule.
    Rule("CR-PROBE-001", "Cloud Run", "a startup probe's periodSeconds and initialDelaySeconds are at most 240",
         _PROBE_DOC + ' (initialDelaySeconds: "Maximum value for liveness probe is 3600. Maximum value for startup '
         'probe is 240"; periodSeconds: "Maximum value for liveness probe is 3600. Maximum value for startup probe '
         'is 240"); https://cloud.google.com/run/docs/configuring/healthchecks states no limit on failureThreshold '
         'x periodSeconds for services (its default TCP startup probe: "timeoutSeconds: 240 periodSeconds: 240 '
         'failureThreshold: 1")', _TYPES, _startup_budget),
    Rule("CR-PROBE-002", "Cloud Run", "a probe's timeoutSeconds must not exceed its periodSeconds", _PROBE_DOC +
         ' (periodSeconds: "Must be greater or equal than timeoutSeconds")', _TYPES, _probe_timeout),
    Rule("CR-SIDECAR-001", "Cloud Run", "a multi-container instance has exactly one ingress container (the "
         "only one with ports)", "https://cloud.google.com/run/docs/container-contract (\"A Cloud Run instance "
         "always has a single ingress container ... and optionally one or more sidecar containers\"); "
         "https://cloud.google.com/run/docs/deploying#sidecars", _TYPES, _one_ingress),
    Rule("CR-LAUNCH-001", "Cloud Run", "fields of the google-beta schema need launchStage BETA",
         "provider schema: template.scaling cpuUtilization/concurrencyUtilization are \"(Optional, Beta)\" "
         "(Magic Modules' marker for google-beta-only fields) and registry.terraform.io documents them under "
         "hashicorp/google-beta/.../google_cloud_run_v2_service#cpu_utilization only; pulumi-gcp 10.2.0 "
         "cloudrunv2/service.py launch_stage: \"Set the launch stage to a preview stage on input to allow use of "
         "preview features in that stage\"; issue #20 finding 7",
         _TYPES, _beta_fields),
)
