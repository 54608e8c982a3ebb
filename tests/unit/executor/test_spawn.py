"""Finding the executor (executor/spawn.py): next to the interpreter, or where
$STOCKADE_EXECUTOR says; a missing one is named, with where it was looked for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stockade.executor import spawn


@pytest.fixture(autouse=True)
def _fresh_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spawn, "_found", [])


def _named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int) -> Path:
    """A file named by $STOCKADE_EXECUTOR, with this mode."""
    exe = tmp_path / "stockade-oci"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(mode)
    monkeypatch.setenv("STOCKADE_EXECUTOR", str(exe))
    return exe


def test_the_environment_names_the_executor(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    exe = _named(tmp_path, monkeypatch, 0o755)
    assert spawn.binary() == str(exe)


def test_a_missing_executor_says_where_it_looked(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere" / "stockade-oci"
    monkeypatch.setenv("STOCKADE_EXECUTOR", str(missing))
    with pytest.raises(spawn.ExecutorMissing) as exc:
        spawn.binary()
    assert str(missing) in str(exc.value) and "STOCKADE_EXECUTOR" in str(exc.value)


def test_a_file_that_cannot_run_is_not_the_executor(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _named(tmp_path, monkeypatch, 0o644)
    with pytest.raises(spawn.ExecutorMissing):
        spawn.binary()


def test_without_the_variable_it_is_next_to_the_interpreter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STOCKADE_EXECUTOR", raising=False)
    try:
        found = spawn.binary()
    except spawn.ExecutorMissing as exc:
        pytest.skip(f"this interpreter has no executor installed: {exc}")
    assert os.path.basename(found) == spawn.NAME and os.access(found, os.X_OK)
