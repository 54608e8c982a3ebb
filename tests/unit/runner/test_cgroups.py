"""cgroup drivers against directories laid out like cgroupfs (no privileges needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.policy.units import blkio_weight, cpu_shares
from stockade.runner.cgroupfs import CgroupError
from stockade.runner.cgroups import V1Cgroup, V2Cgroup, detect
from stockade.runner.plan import Limits


def _v2_tree(root: Path, run_id: str) -> Path:
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("cpu io memory pids\n")
    parent = root / "stockade"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("cpu io memory pids\n")
    (parent / "cgroup.subtree_control").write_text("cpu io memory pids\n")
    run = parent / run_id
    run.mkdir()
    (run / "cgroup.controllers").write_text("cpu io memory pids\n")
    for f in ("memory.max", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight",
              "io.weight", "cgroup.procs"):
        (run / f).write_text("")
    (run / "memory.peak").write_text("12345\n")
    (run / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (run / "pids.peak").write_text("7\n")
    (run / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    return run


def test_v2_limits_and_usage(tmp_path: Path) -> None:
    run = _v2_tree(tmp_path, "r1")
    cg = V2Cgroup.create(str(tmp_path), "r1")
    notes = cg.apply(Limits(memory=64 << 20, swap=0, pids=32, cpu_quota_us=50000,
                            cpu_weight=200, io_weight=300))
    assert notes == []
    assert (run / "memory.max").read_text() == str(64 << 20)
    assert (run / "memory.swap.max").read_text() == "0"
    assert (run / "pids.max").read_text() == "32"
    assert (run / "cpu.max").read_text() == "50000 100000"
    assert (run / "cpu.weight").read_text() == "200"
    assert (run / "io.weight").read_text() == "default 300"
    u = cg.usage()
    assert (u.memory_peak, u.pids_peak, u.cpu_time_ns, u.oom_kills) == (12345, 7, 1_500_000, 1)


def test_v2_missing_controller_is_an_error(tmp_path: Path) -> None:
    run = _v2_tree(tmp_path, "r2")
    (run / "cgroup.controllers").write_text("cpu\n")
    cg = V2Cgroup.create(str(tmp_path), "r2")
    with pytest.raises(CgroupError, match="memory controller"):
        cg.apply(Limits(memory=1 << 20))


def test_v2_refused_value_names_the_file(tmp_path: Path) -> None:
    run = _v2_tree(tmp_path, "r3")
    (run / "pids.max").unlink()
    cg = V2Cgroup.create(str(tmp_path), "r3")
    with pytest.raises(CgroupError, match="pids.max"):
        cg.apply(Limits(pids=5))


def test_v1_swap_needs_memory(tmp_path: Path) -> None:
    dirs = {}
    for c in ("memory", "pids", "cpu", "cpuacct"):
        d = tmp_path / c
        d.mkdir()
        dirs[c] = str(d)
    cg = V1Cgroup.create(dirs, "r")
    with pytest.raises(CgroupError, match="swap"):
        cg.apply(Limits(swap=0))
    cg.remove()
    assert not any((tmp_path / c / "stockade" / "r").exists() for c in dirs)


def test_detect_hybrid(tmp_path: Path) -> None:
    mi = tmp_path / "mountinfo"
    mi.write_text(
        "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "31 25 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
        "32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "33 25 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
    cg = tmp_path / "cgroup"
    cg.write_text("4:memory:/a/b\n3:pids:/\n2:cpu,cpuacct:/\n0::/x\n")
    h = detect(str(mi), str(cg))
    assert h.mode == "hybrid"
    assert h.v1_dirs()["memory"] == "/sys/fs/cgroup/memory/a/b"
    assert h.v1_dirs()["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/"
    assert h.v2_mount == "/sys/fs/cgroup/unified" and h.v2_own == "/x"


def test_weight_conversions() -> None:
    assert cpu_shares(1) == 2 and cpu_shares(10000) == 262144
    assert blkio_weight(1) == 10 and blkio_weight(10000) == 1000


def test_reap_stale_removes_only_empty_dirs_of_dead_runners(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    import stockade.runner.cgroups as cg

    dead = tmp_path / "999999999-1-aa"  # no such pid
    alive = tmp_path / f"{os.getpid()}-1-bb"
    busy = tmp_path / "999999997-1-dd"
    for d in (dead, alive, busy):
        d.mkdir()
    (busy / "task").write_text("")  # rmdir fails: not empty, so it stays
    now = time.time()
    monkeypatch.setattr(cg.time, "time", lambda: now + 120)  # all of them are "old"
    cg.reap_stale([str(tmp_path)])
    assert not dead.exists() and alive.exists() and busy.exists()
    monkeypatch.setattr(cg.time, "time", lambda: now)
    young = tmp_path / "999999998-1-cc"
    young.mkdir()
    cg.reap_stale([str(tmp_path)])
    assert young.exists()  # may be a runner in another pid namespace between mkdir/attach
