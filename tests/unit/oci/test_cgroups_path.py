"""linux.cgroupsPath stays inside the cgroup hierarchy (issue 13), ids have runc's shape
and a length a directory name can have: no privileges needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.oci import state
from stockade.oci.config import ConfigError
from stockade.oci.translate import cgroups_path
from stockade.runner.cgroups import Hierarchy, plan
from stockade.runner.plan import Limits


@pytest.mark.parametrize("raw,clean", [
    ("/../../../../../tmp/x/a/b", "/tmp/x/a/b"),  # the path: below the root
    ("//../x", "/x"),  # normpath keeps a leading "//": not here
    ("/docker/abc", "/docker/abc"),
    ("/a/./b/../c/", "/a/c"),
    ("../../x", "x"),  # relative: below the runtime's own cgroup, `..` stops there
    ("a/../../b", "b"),
    ("machine/ctr-1", "machine/ctr-1"),
    (None, None),
    ("", None),
])
def test_cleaned_as_runc(raw: str | None, clean: str | None) -> None:
    assert cgroups_path(raw) == clean


@pytest.mark.parametrize("raw,needle", [
    ("/", "hierarchy's root"), ("/../..", "hierarchy's root"), ("..", "own cgroup"),
    ("a/..", "own cgroup"), ("slice:prefix:name", "systemd"), (5, "must be a path"),
])
def test_top_itself_refused(raw: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        cgroups_path(raw)
    assert info.value.exit_code == 2
    assert "linux.cgroupsPath" in str(info.value)


def test_v2_leaf_is_planned_below_the_hierarchy_and_recorded_first(tmp_path: Path) -> None:
    """An OCI path on a v2 layout: the executor makes it (executor/cgroups.c refuses a `..`
    that reached it anyway: tests/unit/executor/test_cgroups.py); the plan names it below
    the mount and asks the runtime to record it before it exists."""
    mount = tmp_path / "unified"
    mount.mkdir()
    h = Hierarchy("v2", (), str(mount), "/")
    got = plan(h, "c1", Limits(), path="/ctr/c1", record=True).section
    assert (got["absolute"], got["leaf"], got["record"]) == (True, "ctr/c1", True)
    assert got["controllers"] == [{"name": "", "mount": str(mount)}]
    assert got["enable"] == []  # controllers are enabled only for the default layout
    assert not (mount / "ctr").exists()  # planning makes nothing


@pytest.mark.parametrize("cid,ok", [
    ("a" * 255, True), ("a" * 256, False), ("x" * 300, False), (".hidden", False),
    (".fast", False), ("a.b", True), ("a,b", False), ("", False),
])
def test_id_length_and_shape(cid: str, ok: bool) -> None:
    if ok:
        assert state.check_id(cid) == cid
        return
    with pytest.raises(state.StateError) as info:
        state.check_id(cid)
    assert info.value.exit_code == 2 and len(str(info.value)) < 200
