"""Deploys, canary steps, rollbacks and failovers become Grafana annotations (#25.8), posted to Grafana's HTTP
API (`POST /api/annotations` with `time` in epoch ms, `tags` and `text`: grafana.com/docs/grafana/latest/
developers/http_api/annotations/), which the dashboards draw by tag. An annotation that cannot be posted never
fails what it annotates."""

from __future__ import annotations

import json
import threading
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.observability.dashboards import ANNOTATIONS
from infra.ops import annotate


@pytest.fixture
def grafana() -> Generator[tuple[str, list[tuple[dict[str, str], dict[str, Any]]]], None, None]:
    received: list[tuple[dict[str, str], dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            assert self.path == "/api/annotations"
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"id": 1, "message": "Annotation added"}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_rollout_lines_become_tagged_annotations(grafana: tuple[str, list[Any]]) -> None:
    url, received = grafana
    printed: list[str] = []
    write = annotate.rollout_writer(annotate.Annotator(url, "token-1", "prod"), printed.append)
    write("+00:00  rollout of commission-engine (prod): serving engine-001 100 %")
    write("+00:05  step 1/3: 10 % to engine-002 (serving engine-001 90 %, engine-002 10 %)")
    write("+05:05  ROLLED BACK: 5xx ratio 2.1 % over 0.5 %; all traffic to engine-001")
    write("+00:30  PROMOTED: engine-002 serves 100 %")
    assert len(printed) == 4, "every line is still printed"
    tags = [body["tags"] for _, body in received]
    assert tags == [["canary", "prod"], ["rollback", "prod"], ["canary", "prod"]]
    assert all(headers["Authorization"] == "Bearer token-1" for headers, _ in received)
    assert all(isinstance(body["time"], int) and body["time"] > 1_600_000_000_000 for _, body in received)
    assert "ROLLED BACK" in received[1][1]["text"]
    assert {t for tag in tags for t in tag} - {"prod"} <= set(ANNOTATIONS), "only tags the dashboards draw"


def test_an_unreachable_grafana_warns_and_never_fails_the_rollout(capsys: pytest.CaptureFixture[str]) -> None:
    annotator = annotate.Annotator("http://127.0.0.1:9", "token", "prod", timeout_s=0.5)
    assert annotator.post("deploy", "deployed abc") is False
    assert annotator.post("deploy", "deployed def") is False
    err = capsys.readouterr().err
    assert err.count("warning") == 1, "one warning, not one per line"
    assert "token" not in err


def test_without_a_grafana_nothing_is_posted_and_it_says_so_once(capsys: pytest.CaptureFixture[str]) -> None:
    annotator = annotate.Annotator.from_env({}, "prod", grafana_url="")
    assert annotator.post("failover", "serving from us-east1") is False
    assert "GRAFANA" in capsys.readouterr().err


def test_the_annotate_command_posts_a_deploy(grafana: tuple[str, list[Any]]) -> None:
    url, received = grafana
    code = annotate.main_args(["--grafana-url", url, "--environment", "staging", "--tag", "deploy",
                               "--text", "deployed 1a2b3c"], {"GRAFANA_TOKEN": "t"})
    assert code == 0 and received[0][1]["tags"] == ["deploy", "staging"] and received[0][1]["text"] == "deployed 1a2b3c"
    assert annotate.main_args(["--grafana-url", url, "--environment", "staging", "--tag", "reboot", "--text", "x"],
                              {"GRAFANA_TOKEN": "t"}) == 2, "a tag no dashboard draws is refused"


def test_the_deploys_grafana_token_is_preferred_to_the_read_only_query_token() -> None:
    env = {"GRAFANA_AUTH": "glsa_editor", "GRAFANA_TOKEN": "glsa_viewer"}
    assert annotate.Annotator.from_env(env, "prod", "https://g.example").token == "glsa_editor"
    basic = {"GRAFANA_AUTH": "admin:password", "GRAFANA_TOKEN": "glsa_viewer"}
    assert annotate.Annotator.from_env(basic, "prod", "https://g.example").token == "glsa_viewer"


def test_each_gated_deploy_marks_itself_on_the_dashboards_after_its_up() -> None:
    from pathlib import Path

    import yaml

    deploy = yaml.safe_load((Path(__file__).resolve().parent.parent / ".github/workflows/deploy.yml").read_text())
    for job in ("staging", "prod"):
        steps = deploy["jobs"][job]["steps"]
        up = [i for i, s in enumerate(steps) if (s.get("with") or {}).get("command") == "up"]
        mark = [i for i, s in enumerate(steps) if "infra.ops.annotate" in str(s.get("run", ""))
                and "--tag deploy" in str(s.get("run", ""))]
        assert up and mark and up[0] < mark[0], (job, up, mark)
        assert "GRAFANA_AUTH" in steps[mark[0]]["env"], "the deploy's Grafana token may write annotations"
