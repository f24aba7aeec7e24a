"""A service's environment as its backend will hand it to the container, read from a plan: plain
values as declared, secret ones resolved through Secret Manager (Cloud Run) and unwrapped, each with
whether it travelled as a secret."""

from __future__ import annotations

from typing import Any

from infra.plan import Plan

_SIG = "4dabf18193072939515e22adb298388d"


def _unwrap(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict) and _SIG in value:
        inner, _ = _unwrap(value["value"])
        return inner, True
    return value, False


def service_environment(plan: Plan, service: str, *, standby: bool = False) -> dict[str, tuple[Any, bool]]:
    """`service` is the container's name (`commission-engine`, `pocketbase`, `redis`); `standby`: the one in the
    failover region (a Cloud Run service labelled `platform-standby`) instead of the primary's."""
    for resource in plan.resources:
        inputs = resource.wire_inputs
        name, _ = _unwrap(inputs.get("name"))
        if name != service:
            continue
        labels = _unwrap(inputs.get("labels"))[0]
        if (isinstance(labels, dict) and _unwrap(labels.get("platform-standby"))[0] == "true") != standby:
            continue
        if resource.type == "docker:index/container:Container":
            envs, secret = _unwrap(inputs["envs"])
            out: dict[str, tuple[Any, bool]] = {}
            for entry in envs:
                text, entry_secret = _unwrap(entry)
                key, _, value = text.partition("=")
                out[key] = (value, secret or entry_secret)
            return out
        if resource.type == "pulumi-python:dynamic/railway:Service":
            variables, secret = _unwrap(inputs["variables"])
            return {k: (_unwrap(v)[0], secret or _unwrap(v)[1]) for k, v in variables.items()}
        if resource.type == "gcp:cloudrunv2/service:Service":
            return _cloud_run(plan, _unwrap(inputs["template"])[0])
    raise AssertionError(f"no service {service!r} in the plan")


def _cloud_run(plan: Plan, template: dict[str, Any]) -> dict[str, tuple[Any, bool]]:
    secrets = {r.inputs["secretId"]: r.urn for r in plan.resources if r.type == "gcp:secretmanager/secret:Secret"}
    versions = {urn: r for r in plan.resources if r.type == "gcp:secretmanager/secretVersion:SecretVersion"
                for urn in r.dependencies}
    out: dict[str, tuple[Any, bool]] = {}
    for env in template["containers"][0]["envs"]:
        if "valueSource" in env:
            version = versions[secrets[env["valueSource"]["secretKeyRef"]["secret"]]]
            out[env["name"]] = _unwrap(version.wire_inputs["secretData"])
        else:
            out[env["name"]] = _unwrap(env["value"])
    return out
