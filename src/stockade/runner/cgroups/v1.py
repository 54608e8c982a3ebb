"""cgroup v1: one directory per controller (memory, pids, cpu, cpuacct, blkio...).

The executor makes and limits the directories (executor/cgroups.c) from the section this
module plans (v1_section); the runtime reads their usage and removes them."""

from __future__ import annotations

import os

from stockade.policy.units import blkio_weight, cpu_shares
from stockade.runner._record import frozen
from stockade.runner.cgroupfs import CgroupError, Usage, keyed, kill_and_rmdir, read_int, write

TYPE_CHECKING = False  # the plan module pulls in ctypes: not on `oci delete`'s path
if TYPE_CHECKING:
    from typing import Any

    from stockade.runner.plan import Limits

NEEDED = ("memory", "pids", "cpu", "cpuacct")


@frozen
class V1Cgroup:
    dirs: dict[str, str]  # controller -> the run's directory (distinct paths)
    mode: str = "v1"

    def attach(self, pid: int) -> None:
        for path in sorted(set(self.dirs.values())):
            write(os.path.join(path, "cgroup.procs"), str(pid))

    def usage(self) -> Usage:
        mem = self.dirs.get("memory", "")
        return Usage(
            memory_peak=read_int(os.path.join(mem, "memory.max_usage_in_bytes")),
            cpu_time_ns=read_int(os.path.join(self.dirs.get("cpuacct", ""), "cpuacct.usage")),
            pids_peak=read_int(os.path.join(self.dirs.get("pids", ""), "pids.peak")),
            oom_kills=keyed(os.path.join(mem, "memory.oom_control"), "oom_kill") or 0,
        )

    def remove(self) -> None:
        errors = []
        for path in sorted(set(self.dirs.values())):
            try:
                kill_and_rmdir(path)
            except CgroupError as exc:
                errors.append(str(exc))
        if errors:
            raise CgroupError("; ".join(errors))

    def paths(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.dirs.values())))


def v1_writes(lim: Limits) -> list[tuple[str, str, str]]:
    """(controller, file, value) for every limit but the io weight, in the order they
    are written (the compiled front end replays this list: oci/fastplan.py)."""
    out: list[tuple[str, str, str]] = []
    if lim.memory is not None:
        out.append(("memory", "memory.limit_in_bytes", str(lim.memory)))
    if lim.swap is not None:
        if lim.memory is None:
            raise CgroupError("resources.swap needs resources.memory (memsw = memory + swap)")
        out.append(("memory", "memory.memsw.limit_in_bytes", str(lim.memory + lim.swap)))
    if lim.memory_reservation is not None:
        out.append(("memory", "memory.soft_limit_in_bytes", str(lim.memory_reservation)))
    if lim.swappiness is not None:
        out.append(("memory", "memory.swappiness", str(lim.swappiness)))
    if lim.oom_kill_disable:
        out.append(("memory", "memory.oom_control", "1"))
    if lim.pids is not None:
        out.append(("pids", "pids.max", str(lim.pids)))
    if lim.cpu_quota_us is not None:
        out.append(("cpu", "cpu.cfs_period_us", str(lim.cpu_period_us)))
        out.append(("cpu", "cpu.cfs_quota_us", str(lim.cpu_quota_us)))
    if lim.cpu_weight is not None:
        out.append(("cpu", "cpu.shares", str(cpu_shares(lim.cpu_weight))))
    if lim.cpu_shares is not None:
        out.append(("cpu", "cpu.shares", str(lim.cpu_shares)))
    if lim.cpuset_cpus is not None:
        out.append(("cpuset", "cpuset.cpus", lim.cpuset_cpus))
    if lim.cpuset_mems is not None:
        out.append(("cpuset", "cpuset.mems", lim.cpuset_mems))
    if lim.devices_allow is not None:
        # Deny everything first, then the allow rules in order (runc's v1 order).
        out.append(("devices", "devices.deny", "a"))
        out.extend(("devices", "devices.allow", rule) for rule in lim.devices_allow)
    return out


IO_WEIGHT_FILES = ("blkio.weight", "blkio.bfq.weight")  # CFQ's, then BFQ's


def v1_section(parents: dict[str, str], lim: Limits, *, io: bool = False,
               devices: bool = False, freezer: bool = False,
               cpuset: bool = False) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """The controllers, the writes and the notes of a v1 cgroup (docs/EXECUTOR.md,
    `cgroups`). parents: each mounted controller's directory (the runtime's own cgroup
    in it). io: the blkio cgroup too (an io weight); devices, freezer (OCI pause and
    resume, when mounted), cpuset: those cgroups too. Raises CgroupError for a controller
    the limits need that is not mounted."""
    extra = ((("blkio",) if io else ()) + (("devices",) if devices else ())
             + (("freezer",) if freezer else ()) + (("cpuset",) if cpuset else ()))
    controllers: list[str] = []
    for ctrl in (*NEEDED, *extra):
        if ctrl not in parents:
            if ctrl in NEEDED or ctrl in ("devices", "cpuset"):
                raise CgroupError(f"the {ctrl} controller is not mounted")
            continue
        controllers.append(ctrl)
    writes: list[dict[str, Any]] = []
    for ctrl, name, value in v1_writes(lim):
        absent = None
        if name == "memory.memsw.limit_in_bytes":
            absent = ["fail", "resources.swap asked but swap accounting is off (no "
                      "memory.memsw.limit_in_bytes; boot with swapaccount=1)"]
        writes.append({"controller": ctrl, "key": "", "file": name, "value": value,
                       "absent": absent})
    notes: list[str] = []
    if lim.io_weight is not None:
        blk = parents.get("blkio")
        weight = next((n for n in IO_WEIGHT_FILES
                       if blk is not None and os.path.exists(os.path.join(blk, n))), None)
        if weight is None:
            notes.append("resources.io_weight: no blkio weight file on this host (no BFQ/CFQ "
                         "scheduler); io weight NOT applied")
        else:
            writes.append({"controller": "blkio", "key": "io_weight", "file": weight,
                           "value": str(blkio_weight(lim.io_weight)), "absent": None})
    return controllers, writes, notes
