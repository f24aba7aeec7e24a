"""Run the policy pack offline, the way the Pulumi engine does.

The engine starts a Python pack as `python -u -m pulumi.policy <engine> <pack dir>`, reads the port
the pack prints, and speaks Pulumi's Analyzer gRPC protocol (`proto/pulumi/analyzer.proto`) to it:
`GetAnalyzerInfo`, `Configure` (every policy's config, defaults applied), `Analyze` for each
resource's inputs and `AnalyzeStack` for all of them. This module does the same with the stubs that
ship in the `pulumi` package, so the pack is exercised exactly as `pulumi preview` would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import grpc
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

PACK_DIR = Path(__file__).resolve().parent.parent / "policies"
LEVELS = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory",
          analyzer_pb2.DISABLED: "disabled", analyzer_pb2.REMEDIATE: "remediate"}


class PolicyPackError(Exception):
    """The pack could not be started or answered with an error."""


@dataclass(frozen=True)
class AnalyzerInput:
    """One resource as the engine hands it to an analyzer: its inputs, secrets still marked."""

    urn: str
    type: str
    name: str
    properties: Mapping[str, Any]
    parent: str | None = None


@dataclass(frozen=True)
class Finding:
    rule: str
    level: str
    urn: str
    message: str

    @property
    def resource(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


@dataclass(frozen=True)
class PolicyReport:
    pack: str
    version: str
    rules: int
    findings: tuple[Finding, ...]
    not_applicable: tuple[tuple[str, str], ...]

    @property
    def mandatory(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "mandatory"]


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(dict(value), struct)
    return struct


def pack_python(pack_dir: Path) -> str:
    """The interpreter the CLI runs a Python pack with: `runtime.options.virtualenv` of its
    PulumiPolicy.yaml, relative to the pack, else the current one. A PR's CI runs the base branch's
    pack (`--policy-pack base/policies`) in the base branch's own virtual environment this way."""
    try:
        project: Any = yaml.safe_load((pack_dir / "PulumiPolicy.yaml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyPackError(f"{pack_dir / 'PulumiPolicy.yaml'} cannot be read: {exc}") from None
    runtime: Any = cast(dict[str, Any], project).get("runtime") if isinstance(project, dict) else None
    options: Any = cast(dict[str, Any], runtime).get("options") if isinstance(runtime, dict) else None
    venv: Any = cast(dict[str, Any], options).get("virtualenv") if isinstance(options, dict) else None
    if not isinstance(venv, str):
        return sys.executable
    python = (pack_dir / venv / "bin" / "python").absolute()
    if not python.exists():
        raise PolicyPackError(f"the policy pack in {pack_dir} runs in {pack_dir / venv}, which has no "
                              "bin/python; expected it set up (python3 tools/dev.py setup in that checkout)")
    return str(python)


def engine_env(stack: str | None, stack_config: Mapping[str, str] | None) -> dict[str, str]:
    """What the engine sets for a policy pack it starts (analyzer_plugin.go, constructEnv): the stack,
    the project and the stack's config, so a rule can compare the config with the stack's name."""
    env = dict(os.environ)
    for key in ("PULUMI_STACK", "PULUMI_PROJECT", "PULUMI_ORGANIZATION", "PULUMI_DRY_RUN", "PULUMI_CONFIG"):
        env.pop(key, None)
    if stack is not None:
        env |= {"PULUMI_STACK": stack, "PULUMI_PROJECT": "platform", "PULUMI_ORGANIZATION": "organization",
                "PULUMI_DRY_RUN": "true"}
    if stack_config is not None:
        env["PULUMI_CONFIG"] = json.dumps(dict(stack_config))
    return env


class PolicyPackProcess:
    """The pack as a child process, spoken to over gRPC. Use as a context manager."""

    def __init__(self, pack_dir: Path = PACK_DIR, python: str | None = None, start_timeout_s: float = 60.0,
                 env: Mapping[str, str] | None = None) -> None:
        self._pack_dir = pack_dir
        self._python = python
        self._timeout = start_timeout_s
        self._env = dict(env) if env is not None else engine_env(None, None)
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        # Held as Any: the stub's .pyi names its messages by a module path that does not resolve.
        self.stub: Any = None

    def __enter__(self) -> PolicyPackProcess:
        python = self._python or pack_python(self._pack_dir)
        # The engine address is only used for logging, which goes to stderr when there is no engine.
        self._process = subprocess.Popen([python, "-u", "-m", "pulumi.policy", "127.0.0.1:0",
                                          str(self._pack_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=self._env)
        port = self._read_port(self._process)
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self._channel).result(timeout=self._timeout)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        return self

    def _read_port(self, process: subprocess.Popen[bytes]) -> int:
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline() if process.stdout else b""),
                                  daemon=True)
        reader.start()
        reader.join(self._timeout)
        text = line[0].decode().strip() if line else ""
        if not text.isdigit():
            process.kill()
            _, err = process.communicate(timeout=10)
            detail = err.decode(errors="replace").strip()[-2000:]
            raise PolicyPackError(f"the policy pack in {self._pack_dir} did not start (it printed {text!r}, "
                                  f"exit code {process.returncode}):\n{detail}")
        return int(text)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._channel is not None:
            self._channel.close()
        if self._process is not None:
            self._process.terminate()
            self._process.communicate(timeout=10)

    @property
    def _stub(self) -> Any:
        if self.stub is None:
            raise PolicyPackError("the policy pack is not running")
        return self.stub

    def _call(self, method: str, request: Any, what: str) -> Any:
        """One RPC; a failure is a PolicyPackError with the pack's own message, never a traceback."""
        try:
            return getattr(self._stub, method)(request)
        except grpc.RpcError as exc:
            details: Any = exc.details() if callable(getattr(exc, "details", None)) else str(exc)  # pyright: ignore[reportUnknownMemberType, reportAttributeAccessIssue]
            raise PolicyPackError(f"the policy pack failed on {what}: {details}") from None

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return cast(analyzer_pb2.AnalyzerInfo, self._call("GetAnalyzerInfo", empty_pb2.Empty(), "GetAnalyzerInfo"))

    def configure(self, config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Send every policy's config: its schema's defaults, overridden by `config[policy]`."""
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for policy in self.info().policies:
            schema = json_format.MessageToDict(policy.configSchema.properties)
            properties = {key: spec["default"] for key, spec in schema.items() if "default" in spec}
            properties |= dict((config or {}).get(policy.name, {}))
            request.policyConfig[policy.name].CopyFrom(
                analyzer_pb2.PolicyConfig(enforcementLevel=policy.enforcementLevel, properties=_struct(properties)))
        self._call("Configure", request, "Configure")

    def analyze(self, resource: AnalyzerInput) -> analyzer_pb2.AnalyzeResponse:
        return cast(analyzer_pb2.AnalyzeResponse, self._call("Analyze", analyzer_pb2.AnalyzeRequest(
            type=resource.type, name=resource.name, urn=resource.urn, properties=_struct(resource.properties)),
            f"Analyze of {resource.name}"))

    def analyze_stack(self, resources: Sequence[AnalyzerInput]) -> analyzer_pb2.AnalyzeResponse:
        request = analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(type=r.type, name=r.name, urn=r.urn, properties=_struct(r.properties),
                                          parent=r.parent or "")
            for r in resources])
        return cast(analyzer_pb2.AnalyzeResponse, self._call("AnalyzeStack", request, "AnalyzeStack"))


def run_policies(resources: Iterable[AnalyzerInput], config: Mapping[str, Mapping[str, Any]] | None = None,
                 pack_dir: Path = PACK_DIR, stack: str | None = None,
                 stack_config: Mapping[str, str] | None = None) -> PolicyReport:
    """Every resource through `Analyze`, then the stack through `AnalyzeStack`, as the engine does.

    `config` is the pack's config by policy (infra.policy_report.policy_config: the waivers);
    `stack` and `stack_config` are what the engine tells a pack it starts (PULUMI_STACK, PULUMI_CONFIG).
    """
    resources = list(resources)
    findings: list[Finding] = []
    not_applicable: list[tuple[str, str]] = []
    with PolicyPackProcess(pack_dir, env=engine_env(stack, stack_config)) as pack:
        info = pack.info()
        pack.configure(config)
        responses = [(r.urn, pack.analyze(r)) for r in resources]
        responses.append(("", pack.analyze_stack(resources)))
    for urn, response in responses:
        # pulumi_policy sends "<policy description>\n<what is wrong>": keep what is wrong.
        findings += [Finding(d.policyName, LEVELS[d.enforcementLevel], d.urn or urn, d.message.split("\n", 1)[-1])
                     for d in response.diagnostics]
        not_applicable += [(n.policy_name, n.reason) for n in response.not_applicable]
    # As the CLI does, the version comes from PulumiPolicy.yaml (a Python pack always says 0.0.1).
    version = str(yaml.safe_load((pack_dir / "PulumiPolicy.yaml").read_text()).get("version", info.version))
    return PolicyReport(info.name, version, len(info.policies),
                        tuple(sorted(findings, key=lambda f: (f.rule, f.urn))), tuple(not_applicable))
