"""cgroup v2: one directory; controllers enabled in the parents' subtree_control."""

from __future__ import annotations

import os

from stockade.policy.units import cpu_weight
from stockade.runner._record import frozen
from stockade.runner.cgroupfs import (
    CgroupError,
    Usage,
    keyed,
    kill_and_rmdir,
    make_below,
    read,
    read_int,
    write,
)

TYPE_CHECKING = False  # the plan module pulls in ctypes: not on `oci delete`'s path
if TYPE_CHECKING:
    from collections.abc import Callable

    from stockade.runner.plan import Limits

WANTED = ("cpu", "io", "memory", "pids")


def _enable(parent: str, wanted: tuple[str, ...]) -> None:
    available = set((read(os.path.join(parent, "cgroup.controllers")) or "").split())
    enabled = set((read(os.path.join(parent, "cgroup.subtree_control")) or "").split())
    missing = [c for c in wanted if c in available and c not in enabled]
    if missing:
        try:
            write(os.path.join(parent, "cgroup.subtree_control"),
                  " ".join("+" + c for c in missing))
        except CgroupError as exc:
            raise CgroupError(f"{exc} (a cgroup v2 parent with processes cannot delegate "
                              "controllers: run stockade from a delegated leaf cgroup)") from exc


@frozen
class V2Cgroup:
    path: str
    mode: str = "v2"

    @staticmethod
    def create(own: str, run_id: str, leaf: str | None = None,
               on_planned: Callable[[tuple[str, ...]], None] | None = None) -> V2Cgroup:
        """leaf: an OCI cgroupsPath below `own`, made inside the hierarchy
        (cgroupfs.make_below; an existing leaf is an error: our delete would kill what is
        in it). on_planned: told the directory before it is made (see V1Cgroup.create)."""
        if leaf:
            path = os.path.join(own, leaf)
            if on_planned is not None:
                on_planned((path,))
            return V2Cgroup(make_below(own, leaf)[0])
        parent = os.path.join(own, "stockade")
        path = os.path.join(parent, run_id)
        if on_planned is not None:
            on_planned((path,))
        make_below(own, "stockade", exist_ok=True)
        _enable(own, WANTED)
        _enable(parent, WANTED)
        try:
            os.mkdir(path)
        except FileExistsError:
            pass  # a pre-laid-out test tree
        except OSError as exc:
            raise CgroupError(f"cannot create {path}: {exc.strerror}") from exc
        return V2Cgroup(path)

    def _has(self, ctrl: str) -> bool:
        return ctrl in (read(os.path.join(self.path, "cgroup.controllers")) or "").split()

    def _need(self, ctrl: str, key: str) -> None:
        if not self._has(ctrl):
            raise CgroupError(f"resources.{key} asked but the {ctrl} controller is not "
                              f"available in {self.path}")

    def apply(self, lim: Limits) -> list[str]:
        notes: list[str] = []
        p = self.path
        for ctrl, key, name, value in v2_writes(lim):
            self._need(ctrl, key)
            write(os.path.join(p, name), value)
        if lim.devices_allow is not None:
            from stockade.runner.cgroups.devices_bpf import DeviceRuleError, attach, program

            try:
                attach(p, program(lim.devices_allow))
            except (OSError, DeviceRuleError) as exc:
                raise CgroupError(f"device rules (eBPF program on {p}): {exc}") from exc
        if lim.swappiness is not None or lim.oom_kill_disable:
            notes.append("resources: memory swappiness and disableOOMKiller have no cgroup "
                         "v2 file; NOT applied (runc ignores them there too)")
        if lim.io_weight is not None:
            if self._has("io") and os.path.exists(os.path.join(p, "io.weight")):
                write(os.path.join(p, "io.weight"), f"default {lim.io_weight}")
            else:
                notes.append("resources.io_weight: no io controller here; NOT applied")
        return notes

    def attach(self, pid: int) -> None:
        write(os.path.join(self.path, "cgroup.procs"), str(pid))

    def usage(self) -> Usage:
        p = self.path
        usec = keyed(os.path.join(p, "cpu.stat"), "usage_usec")
        return Usage(
            memory_peak=read_int(os.path.join(p, "memory.peak")),
            cpu_time_ns=None if usec is None else usec * 1000,
            pids_peak=read_int(os.path.join(p, "pids.peak")),
            oom_kills=keyed(os.path.join(p, "memory.events"), "oom_kill") or 0,
        )

    def remove(self) -> None:
        kill_and_rmdir(self.path, kill_file=os.path.join(self.path, "cgroup.kill"))

    def paths(self) -> tuple[str, ...]:
        return (self.path,)


def v2_writes(lim: Limits) -> list[tuple[str, str, str, str]]:
    """(controller, resources key, file, value) for every limit but devices and the io
    weight, in the order they are written (the compiled front end replays this list:
    oci/fastplan.py)."""
    out: list[tuple[str, str, str, str]] = []
    if lim.memory is not None:
        out.append(("memory", "memory", "memory.max", str(lim.memory)))
    if lim.swap is not None:
        out.append(("memory", "swap", "memory.swap.max", str(lim.swap)))
    if lim.memory_reservation is not None:  # runc: memory.low
        out.append(("memory", "memory_reservation", "memory.low", str(lim.memory_reservation)))
    if lim.pids is not None:
        out.append(("pids", "pids", "pids.max", str(lim.pids)))
    if lim.cpu_quota_us is not None:
        out.append(("cpu", "cpu", "cpu.max", f"{lim.cpu_quota_us} {lim.cpu_period_us}"))
    if lim.cpu_weight is not None:
        out.append(("cpu", "cpu_weight", "cpu.weight", str(lim.cpu_weight)))
    if lim.cpu_shares is not None:  # runc's shares -> weight conversion
        out.append(("cpu", "cpu", "cpu.weight", str(cpu_weight(lim.cpu_shares))))
    if lim.cpuset_cpus is not None:
        out.append(("cpuset", "cpuset", "cpuset.cpus", lim.cpuset_cpus))
    if lim.cpuset_mems is not None:
        out.append(("cpuset", "cpuset", "cpuset.mems", lim.cpuset_mems))
    return out
