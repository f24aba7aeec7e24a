"""`infra/program.py` reads as the architecture (#25.10): `declare` is a short list of layer functions, each
taking the model and what it needs of the layers below and returning what the layers above use; every
component is constructed in exactly one of them, so any resource's origin is one hop from `declare`."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from infra import program

SOURCE = Path(program.__file__).read_text()
TREE = ast.parse(SOURCE)
FUNCTIONS = {node.name: node for node in TREE.body if isinstance(node, ast.FunctionDef)}
COMPONENTS = {"Storefront", "Cache", "Database", "Engine", "Edge", "TenantSite", "Alerting", "StandbyDatabase",
              "SelfHostedObservability", "OriginTunnel", "TelemetryImages", "CloudTelemetry", "OperatorAccess"}


def _calls(node: ast.AST) -> list[str]:
    names = []
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.append(func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else "")
    return names


def test_declare_is_a_short_list_of_layers_each_defined_here_with_its_purpose() -> None:
    declare = FUNCTIONS["declare"]
    assert len(declare.body) <= 15, "declare lists the layers; the wiring lives in each layer's function"
    layers = [name for name in _calls(declare) if name in FUNCTIONS]
    assert len(layers) >= 8, layers
    for name in layers:
        assert ast.get_docstring(FUNCTIONS[name]), f"{name} says what its layer declares"
        lines = FUNCTIONS[name].end_lineno - FUNCTIONS[name].lineno  # type: ignore[operator]
        assert lines <= 90, f"{name} is {lines} lines: split it"


def test_every_component_is_constructed_in_exactly_one_layer_function() -> None:
    where: dict[str, list[str]] = {}
    for name, function in FUNCTIONS.items():
        for called in _calls(function):
            if called in COMPONENTS:
                where.setdefault(called, []).append(name)
    assert set(where) == COMPONENTS, COMPONENTS - set(where)
    assert all(len(functions) == 1 for functions in where.values()), where
    assert not {f for fs in where.values() for f in fs} & {"declare"}, "declare only calls layers"


def test_a_layer_takes_the_model_first_and_returns_what_the_layers_above_use() -> None:
    for name in [n for n in _calls(FUNCTIONS["declare"]) if n in FUNCTIONS and n != "enable_gcp_apis"]:
        parameters = list(inspect.signature(getattr(program, name)).parameters)
        assert parameters[0] == "model", name
