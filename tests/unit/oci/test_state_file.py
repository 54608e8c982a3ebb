"""oci/state.py's state.json: written whole (atomically), read back as written, and a
damaged or tampered file is an error naming the container and the field, never a
traceback or a guess."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from stockade.oci import state as st

DATA: dict[str, Any] = {
    "id": "c1", "pid": 123, "creator": 99, "creating": False, "bundle": "/b",
    "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00.000000000Z", "owner": "root",
    "annotations": {"k": "v\u00e9"}, "cgroup_dirs": ["/sys/fs/cgroup/pids/stockade/c1"],
    "cgroup_pending": [], "start_hooks": False, "hooks": {"poststart": [], "poststop": []},
    "starttime": 4242, "id_range": {"lock_dir": "/x", "base": 100000},
}


def test_written_whole_and_read_back(tmp_path: Path) -> None:
    (tmp_path / "c1").mkdir()
    st.write(str(tmp_path), "c1", DATA)
    assert sorted(p.name for p in (tmp_path / "c1").iterdir()) == ["state.json"]  # no .tmp
    assert json.loads((tmp_path / "c1" / "state.json").read_bytes()) == DATA  # plain JSON
    assert st.read(str(tmp_path), "c1") == DATA
    assert st.list_ids(str(tmp_path)) == ["c1"]


@pytest.mark.parametrize(("text", "why"), [
    ("{", "unreadable state (Expecting"),
    ("[1]", "unreadable state (not a JSON object)"),
    (json.dumps({**DATA, "pid": "12"}), "(pid: an integer expected, found '12')"),
    (json.dumps({**DATA, "creating": 0}), "(creating: true or false expected, found 0)"),
    (json.dumps({**DATA, "starttime": True}), "(starttime: an integer expected"),
    (json.dumps({**DATA, "cgroup_dirs": "/sys"}), "(cgroup_dirs: a list expected"),
    ("\udcff".encode("utf-8", "surrogatepass").decode("latin-1"), "unreadable state"),
])
def test_a_damaged_state_is_named(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "state.json").write_text(text, encoding="latin-1")
    with pytest.raises(st.StateError) as exc:
        st.read(str(tmp_path), "c1")
    assert str(exc.value).startswith("container c1: ") and why in str(exc.value)


def test_a_missing_state_is_no_container(tmp_path: Path) -> None:
    with pytest.raises(st.StateError, match="^container c2 does not exist$"):
        st.read(str(tmp_path), "c2")


def test_a_write_through_a_removed_directory_fails(tmp_path: Path) -> None:
    """create writes through its directory held open: once delete has removed it, the
    write fails instead of landing in a directory of that name made since."""
    (tmp_path / "c1").mkdir()
    fd = os.open(tmp_path / "c1", os.O_RDONLY | os.O_DIRECTORY)
    try:
        st.write(str(tmp_path), "c1", DATA, dir_fd=fd)
        assert st.read(str(tmp_path), "c1") == DATA
        st.remove(str(tmp_path), "c1")
        (tmp_path / "c1").mkdir()  # a later create of the same id
        with pytest.raises(FileNotFoundError):
            st.write(str(tmp_path), "c1", DATA, dir_fd=fd)
        assert list((tmp_path / "c1").iterdir()) == []
    finally:
        os.close(fd)


def test_a_create_in_progress_is_its_creator_only(tmp_path: Path) -> None:
    """creating while the recorded creator lives; a pid reused by another process (its
    start time differs) is not the creator: stopped."""
    me = st.proc_starttime(os.getpid())
    assert me is not None
    creating = {**DATA, "pid": 0, "creating": True, "creator": os.getpid()}
    assert st.status(str(tmp_path), "c1", {**creating, "creator_starttime": me[0]}) == "creating"
    assert st.status(str(tmp_path), "c1", {**creating, "creator_starttime": me[0] + 1}) == "stopped"
