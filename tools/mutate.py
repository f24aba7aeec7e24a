"""The mutation campaign (issue #21.7): small, realistic changes of the kind a hurried commit makes, each
applied alone to a copy of the tree, with the tests that should catch it run against the copy.

    python3 tools/dev.py mutate [--jobs N] [--only PATTERN ...] [--list] [--markdown] [--timeout S]

The table is `tools/mutations.py`. Each mutation names a file, an exact `old` text that must occur exactly
once in it (else the mutation is an *error*: it went stale, and the run says so rather than count it), the
`new` text, what it breaks, and the pytest selection that should catch it.

Nothing here writes to the working tree: the tree (tracked and untracked files git does not ignore) is
copied once into a temporary directory, every mutation runs in its own copy of that copy, with `.venv`
linked to the real one and `PYTHONPATH` pointing at the copy so that the editable installs resolve to it;
the temporary directory is removed at the end, on Ctrl-C too. A mutation of a generator's source whose
selection reads the generated files names them in `regenerate`, and they are regenerated in the copy first
(as the committer would, since the drift tests demand it).

Results: *killed* (the selection failed), *survived* (it passed), *error* (the old text is not there exactly
once, the selection fails on the unmutated tree, pytest could not collect or run, or the run timed out).
The kill rate is killed / (killed + survived); the command exits 1 when it is below 95 % or any mutation
is an error.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutations import MUTATIONS, Mutation

ROOT = Path(__file__).resolve().parent.parent
TARGET_KILL_RATE = 0.95
"""The issue's acceptance: at least 95 % of the mutations killed."""

PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider")


@dataclass(frozen=True)
class Result:
    mutation: Mutation
    outcome: str  # killed | survived | error
    seconds: float
    detail: str = ""


class Runner:
    """Runs mutations against copies of `root`, with `python` (a venv's interpreter) running pytest."""

    def __init__(self, root: Path, python: Path, *, timeout: float = 600, generated: dict[str, list[str]] | None
                 = None) -> None:
        self.root = root
        self.python = python
        self.timeout = timeout
        self.generated = generated or {}
        self.verbose = False
        self._tmp = Path(tempfile.mkdtemp(prefix="mutate-"))
        self._base = self._tmp / "base"
        self._procs: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._baseline: dict[tuple[str, ...], str] = {}
        self._copy_tree()

    # ---- the copies ----
    def _copy_tree(self) -> None:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=self.root, capture_output=True, text=True, check=False)
        if listed.returncode == 0:
            files = [f for f in listed.stdout.split("\0") if f]
        else:  # not a git checkout (the runner's own test): everything but caches
            files = [str(p.relative_to(self.root)) for p in self.root.rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts and ".venv" not in p.parts]
        for name in files:
            source = self.root / name
            if not source.is_file():  # deleted in the working tree but still in the index
                continue
            target = self._base / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)

    def _workdir(self, name: str) -> Path:
        work = self._tmp / name
        shutil.copytree(self._base, work, symlinks=True)
        venv = self.root / ".venv"
        if venv.exists():
            (work / ".venv").symlink_to(venv)
        return work

    def _env(self, work: Path) -> dict[str, str]:
        paths = [str(work), str(work / "components" / "engine" / "src")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTEST_ADDOPTS", None)
        return env

    def _run(self, cmd: Sequence[str], work: Path, *, merge_stderr: bool = True) -> tuple[int, str]:
        if self._stopping:
            return -1, "stopped"
        proc = subprocess.Popen(list(cmd), cwd=work, env=self._env(work), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merge_stderr else subprocess.DEVNULL, text=True,
                                start_new_session=True)
        with self._lock:
            self._procs.add(proc)
        try:
            out, _ = proc.communicate(timeout=self.timeout)
            return proc.returncode, out
        except subprocess.TimeoutExpired:
            _kill(proc)
            proc.communicate()
            return -2, f"timed out after {self.timeout:.0f} s"
        finally:
            with self._lock:
                self._procs.discard(proc)

    def stop(self) -> None:
        """Ctrl-C: kill the pytest processes this runner started (each in its own session) and clean up."""
        self._stopping = True
        with self._lock:
            for proc in list(self._procs):
                _kill(proc)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    # ---- one mutation ----
    def _pytest(self, tests: Sequence[str], work: Path) -> tuple[int, str]:
        return self._run([str(self.python), "-m", "pytest", *PYTEST_ARGS, *tests], work)

    def baseline(self, mutations: Iterable[Mutation], pool: ThreadPoolExecutor) -> None:
        """Each distinct selection must pass on the unmutated tree, or its mutations prove nothing."""
        selections = sorted({m.tests for m in mutations})

        def one(tests: tuple[str, ...]) -> None:
            work = self._workdir(f"baseline-{abs(hash(tests))}")
            start = time.monotonic()
            try:
                code, out = self._pytest(tests, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if self.verbose:
                print(f"baseline {'ok' if code == 0 else 'FAILS'} {time.monotonic() - start:6.1f}s  {' '.join(tests)}",
                      flush=True)
            if code != 0:
                self._baseline[tests] = f"selection fails unmutated (exit {code}): {_tail(out)}"

        list(pool.map(one, selections))

    def run(self, mutation: Mutation) -> Result:
        start = time.monotonic()
        if mutation.tests in self._baseline:
            return Result(mutation, "error", 0.0, self._baseline[mutation.tests])
        work = self._workdir(mutation.id)
        try:
            problem = apply(work, mutation)
            if problem:
                return Result(mutation, "error", time.monotonic() - start, problem)
            for target in mutation.regenerate:
                args = self.generated.get(target)
                if args is None:
                    return Result(mutation, "error", time.monotonic() - start,
                                  f"{target} is not a generated file (tools/dev.py GENERATED)")
                code, out = self._run([str(self.python), *args], work, merge_stderr=False)
                if code != 0:
                    # The drift test runs the same generator: the suite fails on this mutation.
                    return Result(mutation, "killed", time.monotonic() - start, f"generating {target} fails")
                (work / target).write_text(out)
            code, out = self._pytest(mutation.tests, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        seconds = time.monotonic() - start
        if code == 0:
            return Result(mutation, "survived", seconds)
        if code == 1:
            return Result(mutation, "killed", seconds, _first_failure(out))
        return Result(mutation, "error", seconds, f"pytest exit {code}: {_tail(out)}")


def apply(work: Path, mutation: Mutation) -> str:
    """Applies the mutation to the copy; returns why it cannot be applied, or ''."""
    path = work / mutation.file
    if not path.is_file():
        return f"{mutation.file} does not exist"
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        return f"old text occurs {count} times in {mutation.file} (must be exactly once)"
    path.write_text(text.replace(mutation.old, mutation.new))
    return ""


def stale(root: Path, mutations: Iterable[Mutation] = MUTATIONS) -> list[str]:
    """Every mutation whose old text does not occur exactly once in `root` (the table went stale)."""
    problems: list[str] = []
    for m in mutations:
        path = root / m.file
        count = path.read_text().count(m.old) if path.is_file() else -1
        if count != 1:
            problems.append(f"{m.id}: {m.file}: old text occurs {count} times" if count >= 0
                            else f"{m.id}: {m.file} does not exist")
    return problems


def _kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the session this runner started for it


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _tail(out: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in out.strip().splitlines()[-lines:])


def _first_failure(out: str) -> str:
    for line in out.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line[:200]
    return _tail(out, 1)


def select(patterns: Sequence[str]) -> list[Mutation]:
    if not patterns:
        return list(MUTATIONS)
    return [m for m in MUTATIONS if any(fnmatch.fnmatch(m.id, p) or p in m.id for p in patterns)]


def table(results: Sequence[Result], markdown: bool) -> str:
    rows: list[str] = []
    if markdown:
        rows += ["| id | breaks | result | selection |", "|----|--------|--------|-----------|"]
        for r in results:
            note = f" ({r.mutation.harmless})" if r.outcome == "survived" and r.mutation.harmless else ""
            note += f" ({r.detail})" if r.outcome == "error" else ""
            rows.append(f"| {r.mutation.id} | {r.mutation.breaks} | {r.outcome}{note} | "
                        f"{' '.join(f'`{t}`' for t in r.mutation.tests)} |")
        return "\n".join(rows)
    for r in results:
        rows.append(f"{r.mutation.id:<34} {r.outcome:<9} {r.seconds:6.1f}s  {r.mutation.breaks}")
        if r.outcome != "killed":
            rows.append(f"{'':<34} {r.detail or r.mutation.harmless or 'selection: ' + ' '.join(r.mutation.tests)}")
    return "\n".join(rows)


def summary(results: Sequence[Result]) -> tuple[float, str]:
    killed = sum(r.outcome == "killed" for r in results)
    survived = sum(r.outcome == "survived" for r in results)
    errors = sum(r.outcome == "error" for r in results)
    rate = killed / (killed + survived) if killed + survived else 0.0
    line = (f"{len(results)} mutations: {killed} killed, {survived} survived, {errors} errors; "
            f"kill rate {rate:.1%} (killed / (killed + survived); target {TARGET_KILL_RATE:.0%})")
    return rate, line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/dev.py mutate", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="mutations run at once (default 2)")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="only the mutations whose id matches (glob or substring); repeatable")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown (bench/README.md)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip running each selection on the unmutated tree first (a re-run of known-good ones)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per pytest run (default 600)")
    args = parser.parse_args(argv)
    chosen = select(args.only)
    if not chosen:
        print(f"no mutation matches {args.only}", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.id:<34} {m.file}\n{'':<34} breaks: {m.breaks}\n{'':<34} tests: {' '.join(m.tests)}")
        print(f"{len(chosen)} mutations")
        return 0
    from dev import GENERATED  # tools/dev.py: the generated files and their generators

    # Ctrl-C, and a plain `kill` too (a background job ignores SIGINT): stop the runs and remove the copies.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)

    runner = Runner(ROOT, ROOT / ".venv" / "bin" / "python", timeout=args.timeout, generated=GENERATED)
    runner.verbose = True
    results: list[Result] = []
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        if not args.no_baseline:
            print(f"baseline: {len({m.tests for m in chosen})} selections on the unmutated tree", flush=True)
            runner.baseline(chosen, pool)
        for result in pool.map(runner.run, chosen):
            results.append(result)
            print(table([result], markdown=False), flush=True)
    except KeyboardInterrupt:
        runner.stop()
        pool.shutdown(wait=True, cancel_futures=True)  # the running ones end now: their processes were killed
        print("interrupted; the working tree was never touched", file=sys.stderr)
        return 130
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        runner.close()
    print()
    print(table(results, markdown=args.markdown))
    rate, line = summary(results)
    print(line)
    survivors = [r.mutation.id for r in results if r.outcome == "survived"]
    if survivors:
        print(f"survivors: {', '.join(survivors)}")
    return 0 if rate >= TARGET_KILL_RATE and not any(r.outcome == "error" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
