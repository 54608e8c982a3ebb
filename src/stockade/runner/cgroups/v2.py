"""cgroup v2: one directory; controllers enabled in the parents' subtree_control.

The executor makes and limits the directory (executor/cgroups.c) from the section this
module plans (v2_section); the runtime reads its usage and removes it."""

from __future__ import annotations

import os

from stockade.policy.units import cpu_weight
from stockade.runner._record import frozen
from stockade.runner.cgroupfs import CgroupError, Usage, keyed, kill_and_rmdir, read_int, write

TYPE_CHECKING = False  # the plan module pulls in ctypes: not on `oci delete`'s path
if TYPE_CHECKING:
    from typing import Any

    from stockade.runner.plan import Limits

WANTED = ("cpu", "io", "memory", "pids")


@frozen
class V2Cgroup:
    path: str
    mode: str = "v2"

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


def v2_section(lim: Limits) -> tuple[list[dict[str, Any]], str, list[str]]:
    """The writes, the device program (hex) and the notes of a v2 cgroup (docs/
    EXECUTOR.md, `cgroups`): each limit's controller must be available in the new
    directory, or the executor names it."""
    writes: list[dict[str, Any]] = [
        {"controller": ctrl, "key": key, "file": name, "value": value, "absent": None}
        for ctrl, key, name, value in v2_writes(lim)]
    notes: list[str] = []
    if lim.swappiness is not None or lim.oom_kill_disable:
        notes.append("resources: memory swappiness and disableOOMKiller have no cgroup "
                     "v2 file; NOT applied (runc ignores them there too)")
    if lim.io_weight is not None:
        writes.append({"controller": "io", "key": "io_weight", "file": "io.weight",
                       "value": f"default {lim.io_weight}",
                       "absent": ["note", "resources.io_weight: no io controller here; "
                                  "NOT applied"]})
    program = ""
    if lim.devices_allow is not None:
        from stockade.runner.cgroups.devices_bpf import DeviceRuleError
        from stockade.runner.cgroups.devices_bpf import program as device_program

        try:
            program = device_program(lim.devices_allow).hex()
        except DeviceRuleError as exc:
            raise CgroupError(f"device rules (eBPF program): {exc}") from exc
    return writes, program, notes
