"""Every check of the disaster-recovery drills is fed the fault it checks (issue #21, item 3): an RTO
over the target fails the drill, a Litestream that ships its WAL less often than the RPO fails it, and a
drill whose checks fail exits 1. The targets are the document's (C8: RTO < 1 h) and issue #13's RPO
(5 s), from tests/document_numbers.py, never the drill's own defaults."""

from __future__ import annotations

import pytest

from components.pocketbase import drtool
from infra.ops import drill, failover_drill
from infra.ops.drill import DrillResult, DrillSettings
from tests import document_numbers as doc

TARGETS = DrillSettings(rto_target_s=float(doc.RTO_S), rpo_target_s=float(doc.RPO_S))


def _check(checks: list[tuple[str, bool, str]], starts: str) -> tuple[str, bool, str]:
    found = [c for c in checks if c[0].startswith(starts)]
    assert len(found) == 1, checks
    return found[0]


@pytest.mark.parametrize("rto_s,ok", [(0.0, False), (12.5, True), (doc.RTO_S - 0.01, True), (doc.RTO_S, False), (doc.RTO_S + 1, False)])
def test_the_rto_check_fails_an_rto_over_the_target(rto_s: float, ok: bool) -> None:
    checks = drill.recovery_checks(DrillResult(rto_s=rto_s), TARGETS)

    assert _check(checks, "RTO under")[1] is ok, (rto_s, checks)


@pytest.mark.parametrize("rpo_s,ok", [(0.0, True), (doc.RPO_S, True), (doc.RPO_S + 0.5, False), (60.0, False)])
def test_the_rpo_check_fails_an_rpo_over_the_target(rpo_s: float, ok: bool) -> None:
    checks = drill.recovery_checks(DrillResult(rto_s=1.0, rpo_s=rpo_s), TARGETS)

    assert _check(checks, "RPO within")[1] is ok, (rpo_s, checks)


@pytest.mark.parametrize("interval,ok", [("1s", True), ("500ms", True), ("5s", True), ("6s", False),
                                         ("60s", False), ("1m", False), ("1m0s", False)])
def test_litestream_shipping_less_often_than_the_rpo_fails_the_replication_check(
        monkeypatch: pytest.MonkeyPatch, interval: str, ok: bool) -> None:
    """The config the image's drtool writes for Litestream, with its sync-interval changed."""
    monkeypatch.setattr(drtool, "SYNC_INTERVAL", interval)

    name, passed, detail = drill.replication_check(float(doc.RPO_S))

    assert passed is ok, (interval, name, detail)


def test_the_image_ships_within_the_documents_rpo() -> None:
    assert drill.replication_check(float(doc.RPO_S))[1]


def test_both_drills_judge_the_rto_and_the_replication() -> None:
    """The crash drill and the failover drill carry the same RTO and replication checks (a drill that
    dropped one would pass whatever it measured)."""
    result = DrillResult(rto_s=doc.RTO_S + 1)
    crash = drill.recovery_checks(result, TARGETS)
    failover = failover_drill.recovery_checks(result, TARGETS)

    for checks in (crash, failover):
        assert not _check(checks, "RTO under")[1]
        assert _check(checks, "Litestream ships")[1]


def test_a_drill_with_a_failed_check_exits_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) \
        -> None:
    def over_target(_workdir: object, settings: DrillSettings) -> DrillResult:
        result = DrillResult(rto_s=settings.rto_target_s + 1)
        result.checks += drill.recovery_checks(result, settings)
        return result

    code = drill.drill_command([], prog="drill", description=None, name="drill", run=over_target,
                               render=DrillResult.render)

    assert code == 1
    assert "FAIL RTO under 3600 s" in capsys.readouterr().out


def test_the_drill_command_holds_the_drill_to_prods_rto_and_rpo(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[DrillSettings] = []

    def record(_workdir: object, settings: DrillSettings) -> DrillResult:
        seen.append(settings)
        return DrillResult()

    drill.drill_command([], prog="drill", description=None, name="drill", run=record, render=DrillResult.render)

    assert (seen[0].rto_target_s, seen[0].rpo_target_s) == (doc.RTO_S, doc.RPO_S)
