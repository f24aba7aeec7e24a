"""Every input the program sets is one its provider still honours.

The provider SDKs mark a deprecated input with `_utilities.deprecated` on the property of the
resource's `...Args` class; setting it through the resource's keyword arguments warns nowhere. So
each planned resource's type token is mapped back to its SDK class, and each input checked there.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest

from infra.plan import Plan
from tests.conftest import STACKS

PACKAGES = {"cloudflare": "pulumi_cloudflare", "vercel": "pulumiverse_vercel", "gcp": "pulumi_gcp",
            "docker": "pulumi_docker", "random": "pulumi_random", "grafana": "pulumiverse_grafana",
            "time": "pulumiverse_time"}


def _args_class(type_token: str) -> type[Any]:
    package, module, name = type_token.split(":")
    path = PACKAGES[package] + ("" if module.startswith("index") else "." + module.split("/")[0])
    return getattr(importlib.import_module(path), f"{name}Args")


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def deprecated_inputs(plan: Plan) -> list[str]:
    found: list[str] = []
    for resource in plan.resources:
        if not resource.custom or resource.type.split(":")[0] not in PACKAGES:
            continue
        args = _args_class(resource.type)
        for key in resource.inputs:
            prop = getattr(args, _snake(key), None)
            getter = getattr(prop, "fget", None)
            if getter is not None and "_pulumi_deprecated_callable" in getattr(getter, "__dict__", {}):
                found.append(f"{resource.type} {resource.name}: {key}")
    return found


def test_the_mapping_finds_a_known_deprecated_input() -> None:
    args = _args_class("vercel:index/project:Project")

    assert "_pulumi_deprecated_callable" in args.serverless_function_region.fget.__dict__


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_sets_no_deprecated_provider_input(stack: str, committed_plans: dict[str, Plan]) -> None:
    assert deprecated_inputs(committed_plans[stack]) == []
