"""linux.cgroupsPath stays inside the cgroup hierarchy (issue 13), ids have runc's shape
and a length a directory name can have: no privileges needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stockade.oci import state
from stockade.oci.config import ConfigError
from stockade.oci.translate import cgroups_path
from stockade.runner.cgroupfs import CgroupError, make_below
from stockade.runner.cgroups import Hierarchy, create


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


def test_make_below_never_leaves_the_base(tmp_path: Path) -> None:
    """The attack of issue 13, against a directory standing for cgroupfs: `..` and a
    symlinked component are refused and nothing is made outside (or inside) the base."""
    base = tmp_path / "cgroupfs"
    base.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(CgroupError, match="not a path below"):
        make_below(str(base), "../outside/x")
    (base / "link").symlink_to(outside)
    for rel in ("a/b/../../link/x", "new/../link/x", "./link"):
        with pytest.raises(CgroupError, match="not a path below"):  # before any mkdir
            make_below(str(base), rel)
    with pytest.raises(CgroupError, match="not a directory of the hierarchy"):
        make_below(str(base), "link/x")
    (base / "made").mkdir()
    (base / "made" / "link").symlink_to(outside)
    with pytest.raises(CgroupError, match="not a directory of the hierarchy"):
        make_below(str(base), "made/link/x", exist_ok=True)
    assert list(outside.iterdir()) == []
    assert sorted(os.listdir(base)) == ["link", "made"]
    fresh = base / "fresh"
    with pytest.raises(CgroupError):
        make_below(str(base), "fresh/deeper/" + "x" * 300)  # ENAMETOOLONG at the end
    assert not fresh.exists()  # what it made on the way is removed again


def test_make_below_makes_parents_and_refuses_an_existing_leaf(tmp_path: Path) -> None:
    path, made = make_below(str(tmp_path), "a/b/c")
    assert path == str(tmp_path / "a" / "b" / "c") and os.path.isdir(path)
    assert made == [str(tmp_path / "a"), str(tmp_path / "a" / "b"), path]
    with pytest.raises(CgroupError, match="exists already"):
        make_below(str(tmp_path), "a/b/c")  # someone else's cgroup: delete would kill it
    assert make_below(str(tmp_path), "a/b/c", exist_ok=True) == (path, [])
    assert make_below(str(tmp_path), "a/b/d")[1] == [str(tmp_path / "a" / "b" / "d")]


def test_v2_leaf_stays_inside_and_is_announced_first(tmp_path: Path) -> None:
    """cgroups.create with an OCI path on a v2 layout: on_planned hears the directory
    before it exists; a `..` that reached it anyway (not cleaned) is refused."""
    mount = tmp_path / "unified"
    mount.mkdir()
    heard: list[tuple[str, ...]] = []

    def planned(dirs: tuple[str, ...]) -> None:
        heard.append(dirs)
        assert not any(os.path.exists(d) for d in dirs)

    h = Hierarchy("v2", (), str(mount), "/")
    cg = create(h, "c1", path="/ctr/c1", on_planned=planned)
    assert heard == [(str(mount / "ctr" / "c1"),)] and cg.paths() == heard[0]
    with pytest.raises(CgroupError):
        create(h, "c2", path="/../escaped")
    assert not (tmp_path / "escaped").exists()


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
