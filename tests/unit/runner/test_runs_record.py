"""runner.runs: the record of a running `stockade run` sandbox is written whole and
removed whole (no directory left behind for the audit to trip over)."""

from __future__ import annotations

import os
from pathlib import Path

from stockade.runner import runs


class _Policy:
    name = "default"
    digest = "d1"


class _Plan:
    """The fields record() reads, for this process standing in for a sandbox's init."""

    policy = _Policy()
    jail = True
    host_root = False
    rootfs = "/"
    argv = ("/bin/true",)


def test_record_then_remove_leaves_nothing(tmp_path: Path) -> None:
    path = runs.record("r1", os.getpid(), _Plan(), str(tmp_path))  # type: ignore[arg-type]
    assert path is not None
    live = runs.live(str(tmp_path))
    assert [(s["id"], s["pid"], s["view"]) for s in live] == [("r1", os.getpid(), "jail")]
    runs.remove(path)
    assert os.listdir(tmp_path) == []


def test_remove_takes_a_record_directory_holding_more_than_it_wrote(tmp_path: Path) -> None:
    path = runs.record("r2", os.getpid(), _Plan(), str(tmp_path))  # type: ignore[arg-type]
    assert path is not None
    Path(path, "stray").write_text("x")
    runs.remove(path)
    assert os.listdir(tmp_path) == []
