"""cgroup planning and reading against directories laid out like cgroupfs (no privileges
needed); their making and limits: tests/unit/executor/test_cgroups.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.policy.units import blkio_weight, cpu_shares
from stockade.runner.cgroupfs import CgroupError
from stockade.runner.cgroups import Hierarchy, detect, made, plan
from stockade.runner.plan import Limits


def test_v2_usage_is_read_from_the_run_directory(tmp_path: Path) -> None:
    (tmp_path / "memory.peak").write_text("12345\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (tmp_path / "pids.peak").write_text("7\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    u = made("v2", {"": str(tmp_path)}).usage()
    assert (u.memory_peak, u.pids_peak, u.cpu_time_ns, u.oom_kills) == (12345, 7, 1_500_000, 1)


def _v1(tmp_path: Path, controllers: tuple[str, ...]) -> Hierarchy:
    return Hierarchy("v1", tuple((c, str(tmp_path / c), "/") for c in controllers))


def test_v1_plan_refuses_an_unmounted_controller_the_limits_need(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="the pids controller is not mounted"):
        plan(_v1(tmp_path, ("memory", "cpu", "cpuacct")), "r", Limits(memory=1 << 20))
    with pytest.raises(CgroupError, match="the devices controller is not mounted"):
        plan(_v1(tmp_path, ("memory", "pids", "cpu", "cpuacct")), "r", Limits(), devices=True)


def test_v1_swap_needs_memory(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="swap"):
        plan(_v1(tmp_path, ("memory", "pids", "cpu", "cpuacct")), "r", Limits(swap=0))


def test_v1_plan_names_each_directory_and_its_limits(tmp_path: Path) -> None:
    h = _v1(tmp_path, ("memory", "pids", "cpu", "cpuacct", "freezer"))
    got = plan(h, "r", Limits(memory=1 << 20, pids=5), freezer=True, record=True)
    s = got.section
    assert s["mode"] == "v1" and s["name"] == "r" and s["leaf"] == "" and s["record"] is True
    assert [c["name"] for c in s["controllers"]] == ["memory", "pids", "cpu", "cpuacct",
                                                     "freezer"]
    assert [(w["controller"], w["file"], w["value"]) for w in s["writes"]] == [
        ("memory", "memory.limit_in_bytes", str(1 << 20)), ("pids", "pids.max", "5")]
    assert not any((tmp_path / c / "stockade").exists() for c in ("memory", "pids"))


def test_v1_io_weight_uses_the_file_the_host_has(tmp_path: Path) -> None:
    h = _v1(tmp_path, ("memory", "pids", "cpu", "cpuacct", "blkio"))
    (tmp_path / "blkio").mkdir()
    none = plan(h, "r", Limits(io_weight=500), io=True)
    assert none.notes == ("resources.io_weight: no blkio weight file on this host (no "
                          "BFQ/CFQ scheduler); io weight NOT applied",)
    (tmp_path / "blkio" / "blkio.bfq.weight").write_text("")
    bfq = plan(h, "r", Limits(io_weight=500), io=True)
    assert not bfq.notes and bfq.section["writes"][-1]["file"] == "blkio.bfq.weight"


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
