"""oci/fastplan.py's bookkeeping: the bound on stored plans, the key it is given (the
plans themselves are run by the front end in tests/integration/oci/test_fastpath.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stockade.oci import fastplan


def test_prune_keeps_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastplan, "KEEP", 3)
    (tmp_path / "seen").write_text("x\n")
    for i in range(6):
        p = tmp_path / f"{i:016x}"
        p.write_bytes(b"plan")
        os.utime(p, ns=(i * 10**9, i * 10**9))
    fastplan._prune(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0000000000000003", "0000000000000004", "0000000000000005", "seen"]


def test_offer_needs_the_front_ends_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKADE_FAST_KEY", "../../etc/passwd")
    container: Any = None  # never looked at: the key is refused first
    assert fastplan.offer("/nonexistent", container, {}, 0) == \
        "not stored: no key from the front end"


def test_stamp_follows_every_file_of_the_package(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub" / "__pycache__").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "data.json").write_text("{}")
    (pkg / "sub" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"ignored")
    first = fastplan.stamp(str(pkg))
    assert fastplan.stamp(str(pkg)) == first
    (pkg / "sub" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"still ignored")
    assert fastplan.stamp(str(pkg)) == first
    (pkg / "sub" / "data.json").write_text('{"a": 1}')  # content (size) changed
    second = fastplan.stamp(str(pkg))
    assert second != first
    os.utime(pkg / "a.py", ns=(1, 1))  # only the mtime changed
    assert fastplan.stamp(str(pkg)) != second
    (pkg / "new.c").write_text("")
    assert fastplan.stamp(str(pkg)).endswith(("-3", "-4"))  # (+ libseccomp)


def test_a_plan_with_a_pooled_id_range_is_never_stored(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # `--policy` giving a bundle a user namespace: create pins a range of the id pool to
    # the container (runner.idalloc.pin); the front end's create could not.
    from stockade.oci import config
    from stockade.oci.translate import translate
    from stockade.runner._record import replace
    from stockade.runner.cgroups import Hierarchy
    from stockade.runner.plan import IdMap, IdPool
    from tests.unit.oci.test_translate import BASE

    (tmp_path / "rootfs").mkdir()
    c = translate(config.strip_nulls(BASE), str(tmp_path), "c1", last_cap=40, euid=0)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    h = Hierarchy("v2", v2_mount="/sys/fs/cgroup")
    assert fastplan.why_not(c, h) is None
    pool = IdPool(2_000_000_000, 65536, str(tmp_path / "idpool"))
    m = (IdMap(0, pool.start, pool.range_size),)
    ident = replace(c.plan.identity, userns=True, uid_map=m, gid_map=m, pool=pool)
    pooled = replace(c, plan=replace(c.plan, identity=ident))
    assert fastplan.why_not(pooled, h) == "an id range of the pool (pinned by create)"
