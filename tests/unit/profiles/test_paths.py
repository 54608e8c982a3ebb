from __future__ import annotations

import pytest
from _policies import built, with_fs

from stockade.errors import Location, PolicyError
from stockade.policy.model import PathEntry
from stockade.policy.paths import subtree_prefix, validate_filesystem, validate_path

LOC = Location("p.yaml", 7, 3, "filesystem.writable[0]")


@pytest.mark.parametrize("path", ["/tmp", "/usr/lib/**", "/var/log/*.log", "/dev/tty[0-9]",
                                  "/etc/{passwd,group}", "/srv/a?c", "/with space/x"])
def test_expressible_paths_pass(path: str) -> None:
    validate_path(path, LOC)


@pytest.mark.parametrize(("path", "why"), [
    ("tmp", "not absolute"), ("./x", "not absolute"), ("/a/../b", "'..'"), ("/a//b", "'//'"),
    ("/a/***", "'***'"), ("/a/[b", "unbalanced '['"), ("/a/{b,{c,d}}", "nested"),
    ("/a/{b", "unbalanced '{'"), ("/a/b}", "unbalanced '}'"), ("/@{HOME}/x", "variable"),
    ("/a/b,c", "','"), ("/a/[]", "empty"), ("/a/[b/c]", "spans"), ('/a"b', "double quote"),
    ("/a/^b", "'^'"),
])
def test_bad_paths_name_the_location(path: str, why: str) -> None:
    with pytest.raises(PolicyError) as exc:
        validate_path(path, LOC)
    msg = str(exc.value)
    assert why in msg and "p.yaml:7:3" in msg and "filesystem.writable[0]" in msg
    assert exc.value.exit_code == 2


def test_tmpfs_takes_no_globs() -> None:
    p = with_fs(built("web-api"), tmpfs=(PathEntry("/run/*", Location("p.yaml", 2, 1)),))
    with pytest.raises(PolicyError, match="filesystem.tmpfs: globs are not allowed"):
        validate_filesystem(p)


def test_subtree_prefix() -> None:
    assert subtree_prefix("/usr/lib/**") == "/usr/lib"
    assert subtree_prefix("/usr") == "/usr"
    assert subtree_prefix("/usr/*/bin") is None
