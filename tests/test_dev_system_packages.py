"""tools/dev.py installs the Debian packages the tests run (#26: PostgreSQL too). Debian's `postgresql-15` puts
initdb, pg_ctl and postgres in /usr/lib/postgresql/15/bin, off PATH (`dpkg -L postgresql-15` on Debian 12), so it is
looked for there, not with `which`."""

from __future__ import annotations

import pytest

from tools import dev


def _on_path(command: str) -> str:
    return f"/usr/bin/{command}"


def _none(pattern: str) -> list[str]:
    return []


def _version_15(pattern: str) -> list[str]:
    return [pattern.replace("*", "15")]


def _not_root() -> int:
    return 1000


def _no_install(*args: object, **kwargs: object) -> None:
    pytest.fail(f"nothing to install: {args}")


def test_a_machine_without_postgresql_is_told_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev.shutil, "which", _on_path)  # everything else on PATH
    monkeypatch.setattr(dev.glob, "glob", _none)
    monkeypatch.setattr(dev.os, "geteuid", _not_root)
    with pytest.raises(SystemExit) as told:
        dev.system_packages()
    assert "apt-get install -y postgresql" in str(told.value)


def test_postgresql_off_path_counts_as_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev.shutil, "which", _on_path)
    monkeypatch.setattr(dev.glob, "glob", _version_15)
    monkeypatch.setattr(dev, "_run", _no_install)
    dev.system_packages()
