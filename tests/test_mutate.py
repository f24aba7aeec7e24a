"""The mutation campaign's runner and table (tools/mutate.py, tools/mutations.py; issue #21.7).

The campaign itself is not part of the suite (it takes long). These check that its table cannot go stale
silently (every `old` text occurs exactly once, every selection exists) and that the runner tells a killed
mutation from a surviving one and from one that cannot be judged, without touching the tree it mutates.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tools import mutate
from tools.dev import GENERATED

ROOT = Path(__file__).resolve().parent.parent
MUTATIONS = mutate.MUTATIONS
Mutation = mutate.Mutation


def test_the_table_holds_at_least_90_mutations_with_unique_ids() -> None:
    ids = [m.id for m in MUTATIONS]
    assert len(ids) >= 90
    assert len(set(ids)) == len(ids), sorted({i for i in ids if ids.count(i) > 1})


def test_every_old_text_occurs_exactly_once_in_the_tree() -> None:
    assert mutate.stale(ROOT) == []


def test_every_mutation_changes_something_and_names_what_it_breaks() -> None:
    for m in MUTATIONS:
        assert m.old != m.new, m.id
        assert m.breaks.strip() and m.tests, m.id


def test_every_selection_and_regenerated_file_exists() -> None:
    for m in MUTATIONS:
        for before, test in zip(("", *m.tests), m.tests, strict=False):
            if not test.startswith("-") and before != "-k":
                assert (ROOT / test.split("::")[0]).is_file(), f"{m.id}: {test}"
        for target in m.regenerate:
            assert target in GENERATED, f"{m.id}: {target} is not generated"


def test_the_stale_check_sees_a_text_gone_or_doubled(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("X = 1\nX = 1\nY = 2\n")
    table = [Mutation("gone", "a.py", "Z = 3", "Z = 4", "-", ("t",)),
             Mutation("twice", "a.py", "X = 1", "X = 2", "-", ("t",)),
             Mutation("once", "a.py", "Y = 2", "Y = 3", "-", ("t",)),
             Mutation("nofile", "b.py", "Y = 2", "Y = 3", "-", ("t",))]
    problems = mutate.stale(tmp_path, table)
    assert [p.split(":")[0] for p in problems] == ["gone", "twice", "nofile"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "tests").mkdir(parents=True)
    (root / "limits.py").write_text("# the limit the document gives\nLIMIT = 5\nDOUBLED = 1\nDOUBLED = 1\n")
    (root / "tests" / "test_limits.py").write_text(
        "from limits import LIMIT\n\n\ndef test_limit() -> None:\n    assert LIMIT == 5\n")
    (root / "tests" / "test_broken.py").write_text("def test_broken() -> None:\n    assert False\n")
    return root


def test_the_runner_classifies_killed_survived_and_error_and_leaves_the_tree_alone(tree: Path) -> None:
    before = {p: p.read_text() for p in tree.rglob("*.py")}
    table = [
        Mutation("killed", "limits.py", "LIMIT = 5", "LIMIT = 50", "the limit", ("tests/test_limits.py",)),
        Mutation("survived", "limits.py", "# the limit the document gives", "# the limit", "nothing",
                 ("tests/test_limits.py",)),
        Mutation("stale", "limits.py", "LIMIT = 7", "LIMIT = 8", "gone", ("tests/test_limits.py",)),
        Mutation("ambiguous", "limits.py", "DOUBLED = 1", "DOUBLED = 2", "twice", ("tests/test_limits.py",)),
        Mutation("baseline-fails", "limits.py", "LIMIT = 5", "LIMIT = 6", "a red selection proves nothing",
                 ("tests/test_broken.py",)),
        Mutation("no-tests", "limits.py", "LIMIT = 5", "LIMIT = 6", "nothing collected",
                 ("tests/test_limits.py::test_absent",)),
    ]
    runner = mutate.Runner(tree, Path(sys.executable), timeout=120)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            runner.baseline(table, pool)
            results = {r.mutation.id: r for r in pool.map(runner.run, table)}
    finally:
        runner.close()
    assert {i: r.outcome for i, r in results.items()} == {
        "killed": "killed", "survived": "survived", "stale": "error", "ambiguous": "error",
        "baseline-fails": "error", "no-tests": "error"}
    assert "occurs 0 times" in results["stale"].detail
    assert "occurs 2 times" in results["ambiguous"].detail
    assert "fails unmutated" in results["baseline-fails"].detail
    assert {p: p.read_text() for p in tree.rglob("*.py")} == before


def test_the_kill_rate_leaves_errors_out_and_the_target_is_the_issues() -> None:
    m = MUTATIONS[0]
    results = [mutate.Result(m, "killed", 0), mutate.Result(m, "killed", 0), mutate.Result(m, "survived", 0),
               mutate.Result(m, "error", 0)]
    rate, line = mutate.summary(results)
    assert rate == pytest.approx(2 / 3)
    assert "1 errors" in line
    assert mutate.TARGET_KILL_RATE == 0.95
