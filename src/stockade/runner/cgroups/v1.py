"""cgroup v1: one directory per controller (memory, pids, cpu, cpuacct, blkio)."""

from __future__ import annotations

import os

from stockade.policy.units import blkio_weight, cpu_shares
from stockade.runner._record import frozen
from stockade.runner.cgroupfs import (
    CgroupError,
    Usage,
    keyed,
    kill_and_rmdir,
    make_below,
    read_int,
    write,
)

TYPE_CHECKING = False  # the plan module pulls in ctypes: not on `oci delete`'s path
if TYPE_CHECKING:
    from collections.abc import Callable

    from stockade.runner.plan import Limits

NEEDED = ("memory", "pids", "cpu", "cpuacct")


@frozen
class V1Cgroup:
    dirs: dict[str, str]  # controller -> the run's directory (distinct paths)
    mode: str = "v1"

    @staticmethod
    def create(parents: dict[str, str], run_id: str, io: bool = False,
               leaf: str | None = None, devices: bool = False, freezer: bool = False,
               on_planned: Callable[[tuple[str, ...]], None] | None = None,
               cpuset: bool = False) -> V1Cgroup:
        """leaf: the path below each parent (default stockade/<run id>; OCI cgroupsPath),
        made inside each controller's hierarchy (cgroupfs.make_below); an existing leaf is
        an error. freezer: also the freezer cgroup when it is mounted (OCI pause/resume).
        cpuset: also the cpuset cgroup (OCI cpus/mems); each directory made gets its
        parent's cpus and mems (a v1 cpuset starts empty and takes no task), as runc.
        on_planned: told the directories before the first is made (OCI create records
        them, so that a runtime killed half-way leaves nothing a delete cannot find)."""
        rel = leaf or os.path.join("stockade", run_id)
        extra = ((("blkio",) if io else ()) + (("devices",) if devices else ())
                 + (("freezer",) if freezer else ()) + (("cpuset",) if cpuset else ()))
        wanted: dict[str, str] = {}
        for ctrl in (*NEEDED, *extra):
            base = parents.get(ctrl)
            if base is None:
                if ctrl in NEEDED or ctrl in ("devices", "cpuset"):
                    raise CgroupError(f"the {ctrl} controller is not mounted")
                continue
            wanted[ctrl] = base
        paths = {ctrl: os.path.join(base, rel) for ctrl, base in wanted.items()}
        if on_planned is not None:
            on_planned(tuple(sorted(set(paths.values()))))
        made: dict[str, str] = {}
        try:
            for ctrl, base in wanted.items():
                if paths[ctrl] in made.values():  # co-mounted controllers (cpu,cpuacct)
                    made[ctrl] = paths[ctrl]
                    continue
                made[ctrl], new = make_below(base, rel)
                if ctrl == "cpuset":
                    _inherit_cpuset(new)
        except CgroupError:
            V1Cgroup(made).remove()
            raise
        return V1Cgroup(made)

    def apply(self, lim: Limits) -> list[str]:
        """Write the limits; returns notes about what this host cannot apply."""
        notes: list[str] = []
        for ctrl, name, value in v1_writes(lim):
            base = self.dirs.get(ctrl)
            if base is None:
                raise CgroupError(f"{ctrl} rules asked but no {ctrl} cgroup was created")
            if name == "memory.memsw.limit_in_bytes" and not os.path.exists(
                    os.path.join(base, name)):
                raise CgroupError("resources.swap asked but swap accounting is off "
                                  "(no memory.memsw.limit_in_bytes; boot with swapaccount=1)")
            write(os.path.join(base, name), value)
        if lim.io_weight is not None:
            blk = self.dirs.get("blkio")
            for name in ("blkio.weight", "blkio.bfq.weight"):
                if blk is not None and os.path.exists(os.path.join(blk, name)):
                    write(os.path.join(blk, name), str(blkio_weight(lim.io_weight)))
                    break
            else:
                notes.append("resources.io_weight: no blkio weight file on this host "
                             "(no BFQ/CFQ scheduler); io weight NOT applied")
        return notes

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


def _inherit_cpuset(made: list[str]) -> None:
    """Fresh v1 cpuset directories (outermost first) get their parent's cpus and mems."""
    for path in made:
        parent = os.path.dirname(path)
        for name in ("cpuset.cpus", "cpuset.mems"):
            try:
                with open(os.path.join(parent, name)) as fh:
                    value = fh.read().strip()
            except OSError as exc:
                raise CgroupError(f"{parent}/{name}: {exc.strerror}") from exc
            write(os.path.join(path, name), value)


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
