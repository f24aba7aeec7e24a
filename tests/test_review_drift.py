"""The drift job's parsing of `pulumi refresh --preview-only --json` (issue #24, item 2).

tests/drift/refresh-preview-prod.json is a preview digest laid out as the CLI prints one (pulumi/pulumi
pkg/backend/display/json.go `ShowPreviewDigest`, json.MarshalIndent with four spaces; types in pkg/display/json.go
`PreviewDigest`/`PreviewStep` and sdk/go/common/apitype/core.go `ResourceV3`): every resource first appears as op
`refresh`; a drifted one is replaced by op `update` with its `detailedDiff` (paths as the engine writes them, the
refresh's diff inverted); a resource its provider no longer finds by op `delete`; secrets are `[secret]`; a drifted
resource whose provider gives no detailed diff stays `refresh` but is counted under `update` in `changeSummary`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.review import drift

RECORDED = Path(__file__).resolve().parent / "drift" / "refresh-preview-prod.json"


def _recorded() -> dict[str, Any]:
    return json.loads(RECORDED.read_text())


def test_the_drifted_resources_and_their_properties_are_named_with_state_and_live_values() -> None:
    report = drift.parse("prod", _recorded())

    by_name = {r.name: r for r in report.resources}
    assert sorted(by_name) == ["engine", "engine-origin-auth-v", "tenant-cafedoce-subdomain"]
    engine = by_name["engine"]
    assert [(p.path, p.state, p.live) for p in engine.properties] == [
        ("template.containers[commission-engine].envs[WEB_CONCURRENCY].value", "2", "4"),
        ("template.scaling.minInstanceCount", 1, 2),
    ]
    assert by_name["tenant-cafedoce-subdomain"].op == "delete"
    # The Railway service drifted (changeSummary counts 3 updates) but its step names no property.
    assert report.unnamed == 1 and report.drifted


def test_the_issue_names_every_drift_and_never_a_secret() -> None:
    body = drift.render(drift.parse("prod", _recorded()), "https://github.com/o/r/actions/runs/1")

    assert body.startswith("<!-- drift:prod -->\n")
    assert "found **4 resources**" in body
    assert "| `template.scaling.minInstanceCount` | `1` | `2` | changed outside Pulumi |" in body
    assert "| `secretData` | (secret) | (secret, differs) |" in body
    assert "tenant-cafedoce-subdomain: deleted outside Pulumi" in body
    assert "1 more resource drifted whose provider gave no property diff" in body
    assert "[secret]" not in body


def test_no_drift_says_so() -> None:
    digest = _recorded()
    digest["steps"] = [s for s in digest["steps"] if s["op"] == "refresh"]
    digest["changeSummary"] = {"same": 185}

    report = drift.parse("prod", digest)

    assert not report.drifted
    assert "No drift" in drift.render(report)


def test_the_command_writes_the_outputs_the_workflow_reads(tmp_path: Path) -> None:
    output = tmp_path / "github_output"

    code, body = drift.run("prod", RECORDED, output, None)

    assert code == 0 and body.startswith("<!-- drift:prod -->")
    assert output.read_text() == "drifted=true\nresources=4\n"


@pytest.mark.parametrize("text", [
    # What `--json` prints for a refresh that is not a dry run, or with PULUMI_ENABLE_STREAMING_JSON_PREVIEW:
    # engine events, one JSON object a line (pkg/backend/display/json.go ShowJSONEvents).
    '{"sequence":0,"timestamp":1,"preludeEvent":{"config":{}}}\n{"sequence":1,"timestamp":1,"summaryEvent":{}}\n',
    "error: could not read the stack\n",
    '["not", "a", "digest"]',
])
def test_anything_but_a_digest_fails_the_job(tmp_path: Path, text: str) -> None:
    path = tmp_path / "refresh.json"
    path.write_text(text)

    code, message = drift.run("prod", path, None, None)

    assert code == 2 and message.startswith(f"error: {path}")
