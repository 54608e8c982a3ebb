"""Rows the corpus cannot reach on this machine (no lxcfs, no binfmt_misc, no
uevent_helper), evaluated on fake Views with fake probe outcomes; and target resolution."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stockade.audit import targets
from stockade.audit.docker_api import socket_path
from stockade.audit.model import Status
from stockade.audit.probe import Outcome
from stockade.errors import StockadeError

from .fakeproc import DOCKER_MOUNTINFO
from .test_checks_fake_proc import status, view_of


def test_lxcfs_rw(tmp_path: Path) -> None:
    line = "710 600 0:60 /proc/meminfo /proc/meminfo rw,nosuid - fuse.lxcfs lxcfs rw,user_id=0\n"
    v = view_of(tmp_path, mountinfo=DOCKER_MOUNTINFO + line)
    assert status(v, "MNT-LXCFS-RW") is Status.PRESENT
    v = view_of(tmp_path, mountinfo=DOCKER_MOUNTINFO + line.replace("rw,nosuid", "ro,nosuid"))
    assert status(v, "MNT-LXCFS-RW") is Status.ABSENT


def test_binfmt_and_core_pattern_by_proof(tmp_path: Path) -> None:
    v = view_of(tmp_path)
    reg = "/proc/sys/fs/binfmt_misc/register"
    assert status(v, "BINFMT-MISC", {reg: Outcome(True)}) is Status.EXPLOITABLE
    assert status(v, "BINFMT-MISC", {reg: Outcome(False, 30, "Read-only file system")}) is Status.ABSENT
    core = {"/proc/sys/kernel/core_pattern": Outcome(False, 30), "/proc/sys/kernel/modprobe": Outcome(True)}
    assert status(v, "PROCSYS-CORE-PATTERN", core) is Status.EXPLOITABLE


def test_sysfs_rw_mount_without_proof_is_present(tmp_path: Path) -> None:
    v = view_of(tmp_path, mountinfo=DOCKER_MOUNTINFO.replace("/sys ro,nosuid", "/sys rw,nosuid"))
    helper = {"/sys/kernel/uevent_helper": Outcome(False, 2)}
    assert status(v, "SYSFS-RW", helper) is Status.PRESENT
    assert status(v, "SYSFS-RW", {"/sys/kernel/uevent_helper": Outcome(True)}) is Status.EXPLOITABLE
    v = view_of(tmp_path)
    assert status(v, "SYSFS-RW", helper) is Status.ABSENT


def test_release_agent_through_a_rw_cgroup_root(tmp_path: Path) -> None:
    line = "711 600 0:32 / /host-cg rw,relatime - cgroup cgroup rw,memory\n"
    v = view_of(tmp_path, mountinfo=DOCKER_MOUNTINFO + line)
    assert status(v, "CG1-RELEASE-AGENT") is Status.PRESENT
    assert status(v, "CG1-RELEASE-AGENT", {"/host-cg": Outcome(True)}) is Status.EXPLOITABLE


def test_leaked_fd_and_masked_paths(tmp_path: Path) -> None:
    v = view_of(tmp_path)
    assert status(v, "RUNC-LEAKED-FD", {"target:fd/3": Outcome(True, None, "outside")}) is Status.EXPLOITABLE
    assert status(v, "RUNC-LEAKED-FD", {"target:cwd": Outcome(False, 2, "inside the root")}) is Status.ABSENT
    masked = {"/proc/kcore": Outcome(True), "/proc/keys": Outcome(True, None, "masked (/dev/null)"),
              "/proc/timer_list": Outcome(False, 2), "/proc/sched_debug": Outcome(False, 2),
              "/sys/firmware": Outcome(False, 2)}
    # /proc/kcore has a mount over it in the fake table: masked; /proc/keys is /dev/null
    assert status(v, "MASKED-PATHS-MISSING", masked) is Status.ABSENT
    masked["/proc/timer_list"] = Outcome(True)
    assert status(v, "MASKED-PATHS-MISSING", masked) is Status.EXPLOITABLE


def test_kernel_devices(tmp_path: Path) -> None:
    v = view_of(tmp_path)
    gone = {p: Outcome(False, 2) for p in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg")}
    assert status(v, "DEV-MEM-KMSG", gone) is Status.ABSENT
    assert status(v, "DEV-MEM-KMSG", {**gone, "/dev/kmsg": Outcome(True)}) is Status.EXPLOITABLE
    assert status(v, "DEV-MEM-KMSG", {**gone, "/dev/mem": Outcome(False, 1)}) is Status.PRESENT


def test_stockade_state_is_read_tolerantly(tmp_path: Path) -> None:
    for cid, state in (("a", {"pid": os.getpid()}), ("b", {"init_process_pid": os.getpid(), "id": "b"}),
                       ("c", {"Pid": os.getpid(), "rootfs": "/r"})):
        (tmp_path / cid).mkdir()
        (tmp_path / cid / "state.json").write_text(json.dumps(state))
        t = targets.from_stockade(cid, str(tmp_path))
        assert t.pid == os.getpid() and t.runtime == "stockade"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "state.json").write_text(json.dumps({"status": "stopped"}))
    with pytest.raises(StockadeError, match="names no running process"):
        targets.from_stockade("d", str(tmp_path))
    with pytest.raises(StockadeError, match="no container state") as missing:
        targets.from_stockade("zz", str(tmp_path))
    # the message names where a `stockade run` sandbox would be recorded, and --all
    assert f"record in {tmp_path / 'run' / 'zz'}" in str(missing.value)
    assert "--all" in str(missing.value)


def test_docker_host_parsing() -> None:
    assert socket_path({}) == "/var/run/docker.sock"
    assert socket_path({"DOCKER_HOST": "unix:///tmp/x.sock"}) == "/tmp/x.sock"
    with pytest.raises(StockadeError):
        socket_path({"DOCKER_HOST": "ssh://host"})


def test_docker_inspect_of_a_stopped_container() -> None:
    with pytest.raises(StockadeError, match="not running"):
        targets._docker_target({"Name": "/x", "State": {"Running": False, "Pid": 0}})
