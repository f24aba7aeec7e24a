"""Run the policy pack offline, the way the Pulumi engine does.

The engine starts a Python pack as `python -u -m pulumi.policy <engine> <pack dir>`, reads the port
the pack prints, and speaks Pulumi's Analyzer gRPC protocol (`proto/pulumi/analyzer.proto`) to it:
`GetAnalyzerInfo`, `Configure` (every policy's config, defaults applied), `Analyze` for each
resource's inputs and `AnalyzeStack` for all of them. This module does the same with the stubs that
ship in the `pulumi` package, so the pack is exercised exactly as `pulumi preview` would.
"""

from __future__ import annotations

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


class PolicyPackProcess:
    """The pack as a child process, spoken to over gRPC. Use as a context manager."""

    def __init__(self, pack_dir: Path = PACK_DIR, python: str = sys.executable, start_timeout_s: float = 60.0) -> None:
        self._pack_dir = pack_dir
        self._python = python
        self._timeout = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        # Held as Any: the stub's .pyi names its messages by a module path that does not resolve.
        self.stub: Any = None

    def __enter__(self) -> PolicyPackProcess:
        # The engine address is only used for logging, which goes to stderr when there is no engine.
        self._process = subprocess.Popen([self._python, "-u", "-m", "pulumi.policy", "127.0.0.1:0",
                                          str(self._pack_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        call = self._stub.GetAnalyzerInfo
        return cast(analyzer_pb2.AnalyzerInfo, call(empty_pb2.Empty()))

    def configure(self, config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Send every policy's config: its schema's defaults, overridden by `config[policy]`."""
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for policy in self.info().policies:
            schema = json_format.MessageToDict(policy.configSchema.properties)
            properties = {key: spec["default"] for key, spec in schema.items() if "default" in spec}
            properties |= dict((config or {}).get(policy.name, {}))
            request.policyConfig[policy.name].CopyFrom(
                analyzer_pb2.PolicyConfig(enforcementLevel=policy.enforcementLevel, properties=_struct(properties)))
        call = self._stub.Configure
        call(request)

    def analyze(self, resource: AnalyzerInput) -> analyzer_pb2.AnalyzeResponse:
        call = self._stub.Analyze
        return cast(analyzer_pb2.AnalyzeResponse, call(analyzer_pb2.AnalyzeRequest(
            type=resource.type, name=resource.name, urn=resource.urn, properties=_struct(resource.properties))))

    def analyze_stack(self, resources: Sequence[AnalyzerInput]) -> analyzer_pb2.AnalyzeResponse:
        call = self._stub.AnalyzeStack
        return cast(analyzer_pb2.AnalyzeResponse, call(analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(type=r.type, name=r.name, urn=r.urn, properties=_struct(r.properties),
                                          parent=r.parent or "")
            for r in resources])))


def run_policies(resources: Iterable[AnalyzerInput], waivers: Mapping[str, Mapping[str, str]] | None = None,
                 pack_dir: Path = PACK_DIR) -> PolicyReport:
    """Every resource through `Analyze`, then the stack through `AnalyzeStack`, as the engine does.

    `waivers` is {rule id: {resource name: reason}}.
    """
    resources = list(resources)
    findings: list[Finding] = []
    not_applicable: list[tuple[str, str]] = []
    with PolicyPackProcess(pack_dir) as pack:
        info = pack.info()
        pack.configure({rule: {"waivers": dict(by_resource)} for rule, by_resource in (waivers or {}).items()})
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
