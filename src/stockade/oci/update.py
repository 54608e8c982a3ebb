"""`stockade oci update`: change a running container's resources (runc update).

The values follow runc's (and the runtime spec's LinuxResources): 0 or absent leaves a
limit as it is, -1 removes it; memory.swap is memory + swap. They are written to the
container's own cgroups: v1 memory.limit_in_bytes / memory.memsw.limit_in_bytes (memsw
first when it is above the current memory limit: memsw must stay >= it), pids.max, cpu.cfs_period_us
/ cpu.cfs_quota_us, cpu.shares; v2 memory.max, memory.swap.max (the swap part), pids.max,
cpu.max, cpu.weight. Anything else (reservation, realtime, cpusets, blockIO, ...) is a
clear error naming it, never silently skipped.
"""

from __future__ import annotations

import os

from stockade.errors import StockadeError
from stockade.oci import state as st
from stockade.policy.units import cpu_weight
from stockade.runner.cgroupfs import CgroupError, read, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SUPPORTED = {"memory": ("limit", "swap"), "cpu": ("shares", "quota", "period"),
             "pids": ("limit",)}
UNLIMITED = -1


class UpdateError(StockadeError):
    pass


def resources_from(resources: str | None, flags: dict[str, int | None]) -> dict[str, Any]:
    """--resources FILE|- (JSON; the flags are then ignored, as with runc), else the
    flags: memory, memory_swap, cpu_quota, cpu_period, cpu_share, pids_limit."""
    if resources is not None:
        from stockade.oci.config import load_object

        return load_object(resources, "--resources", "LinuxResources: memory, cpu, pids")
    out: dict[str, Any] = {}
    for flag, (section, key) in (("memory", ("memory", "limit")),
                                 ("memory_swap", ("memory", "swap")),
                                 ("cpu_share", ("cpu", "shares")),
                                 ("cpu_quota", ("cpu", "quota")),
                                 ("cpu_period", ("cpu", "period")),
                                 ("pids_limit", ("pids", "limit"))):
        if flags.get(flag) is not None:
            out.setdefault(section, {})[key] = flags[flag]
    return out


def _values(res: dict[str, Any]) -> dict[str, int]:
    """(section.key -> value) of what is to change; refuses what cannot be applied."""
    out: dict[str, int] = {}
    for section, body in res.items():
        if section not in SUPPORTED:
            if body:
                raise UpdateError(f"resources.{section}: not supported by stockade update "
                                  f"(supported: memory.limit/swap, cpu.shares/quota/period, "
                                  "pids.limit)")
            continue
        if not isinstance(body, dict):
            raise UpdateError(f"resources.{section}: must be an object")
        for key, value in body.items():
            name = f"{section}.{key}"
            if key not in SUPPORTED[section]:
                if value not in (None, 0, "", [], {}):
                    raise UpdateError(f"resources.{name}: not supported by stockade update")
                continue
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise UpdateError(f"resources.{name}: expected an integer, -1 for no limit "
                                  "(0: unchanged)")
            if value != 0:
                out[name] = value
    period = out.get("cpu.period")
    if period is not None and period != UNLIMITED and period < 1000:
        raise UpdateError("resources.cpu.period: must be >= 1000 (microseconds)")
    if out.get("cpu.period") == UNLIMITED or out.get("cpu.shares") == UNLIMITED:
        raise UpdateError("resources.cpu.period/shares: -1 is not a value for these")
    return out


def update(root: str, cid: str, res: dict[str, Any]) -> None:
    values = _values(res)
    data = st.read(root, cid)
    status = st.status(root, cid, data)
    if status not in ("created", "running", "paused"):
        raise st.StateError(f"container {cid} is not running (status: {status})")
    dirs = [str(d) for d in data.get("cgroup_dirs") or []]
    if not dirs:
        raise UpdateError(f"container {cid} has no cgroup to update")
    from stockade.runner.cgroups import is_cgroup2

    try:
        if len(dirs) == 1 and is_cgroup2(dirs[0]):
            _v2(dirs[0], values)
        else:
            _v1(dirs, values)
    except CgroupError as exc:
        raise UpdateError(str(exc)) from exc


def _read_int(path: str) -> int:
    text = (read(path) or "").strip()
    if text == "max":
        return UNLIMITED
    if not text.lstrip("-").isdigit():
        raise UpdateError(f"{path}: unreadable ({text!r})")
    return int(text)


def _dir_with(dirs: list[str], name: str) -> str:
    for d in dirs:
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise UpdateError(f"no {name} in the container's cgroups (controller not mounted?)")


def _v1(dirs: list[str], values: dict[str, int]) -> None:
    memory, swap = values.get("memory.limit"), values.get("memory.swap")
    if memory is not None or swap is not None:
        mem = _dir_with(dirs, "memory.limit_in_bytes")
        memsw = os.path.join(os.path.dirname(mem), "memory.memsw.limit_in_bytes")
        if memory == UNLIMITED and swap is None and os.path.exists(memsw):
            swap = UNLIMITED  # no memory limit: no memory+swap limit either (runc)
        if swap is not None and not os.path.exists(memsw):
            raise UpdateError("resources.memory.swap: swap accounting is off on this host "
                              "(no memory.memsw.limit_in_bytes; boot with swapaccount=1)")
        # memsw >= memory at every moment: when the new memsw is above the current
        # memory limit, write it first (runc's setMemoryAndSwap order).
        first = memory is not None and swap is not None and (
            swap == UNLIMITED or _read_int(mem) < swap)
        for path, value in ([(memsw, swap), (mem, memory)] if first
                            else [(mem, memory), (memsw, swap)]):
            if value is not None:
                write(path, str(value))
    if "pids.limit" in values:
        v = values["pids.limit"]
        write(_dir_with(dirs, "pids.max"), "max" if v == UNLIMITED else str(v))
    if "cpu.period" in values:
        write(_dir_with(dirs, "cpu.cfs_period_us"), str(values["cpu.period"]))
    if "cpu.quota" in values:
        write(_dir_with(dirs, "cpu.cfs_quota_us"), str(values["cpu.quota"]))
    if "cpu.shares" in values:
        write(_dir_with(dirs, "cpu.shares"), str(values["cpu.shares"]))


def _v2(d: str, values: dict[str, int]) -> None:
    def need(name: str) -> str:
        path = os.path.join(d, name)
        if not os.path.exists(path):
            raise UpdateError(f"{name}: its controller is not available in {d}")
        return path

    memory, total = values.get("memory.limit"), values.get("memory.swap")
    if memory is not None:
        write(need("memory.max"), "max" if memory == UNLIMITED else str(memory))
    if total is not None:  # memory + swap -> the swap part (runc's conversion)
        current = memory if memory is not None else _read_int(need("memory.max"))
        if total == UNLIMITED:
            swap = "max"
        elif current == UNLIMITED or total < current:
            raise UpdateError("resources.memory.swap is memory+swap: it needs a memory "
                              "limit and must be >= it")
        else:
            swap = str(total - current)
        write(need("memory.swap.max"), swap)
    if "pids.limit" in values:
        v = values["pids.limit"]
        write(need("pids.max"), "max" if v == UNLIMITED else str(v))
    if "cpu.quota" in values or "cpu.period" in values:
        path = need("cpu.max")
        cur_quota, cur_period = (read(path) or "max 100000").split()
        quota = values.get("cpu.quota")
        quota_text = cur_quota if quota is None else ("max" if quota == UNLIMITED else str(quota))
        write(path, f"{quota_text} {values.get('cpu.period', cur_period)}")
    if "cpu.shares" in values:  # runc's shares -> weight conversion
        shares = values["cpu.shares"]
        write(need("cpu.weight"), str(cpu_weight(shares)))


def main_update(root: str, cid: str, args: Any) -> None:
    st.check_id(cid)
    res = resources_from(args.resources, {
        "memory": args.memory, "memory_swap": args.memory_swap, "cpu_share": args.cpu_share,
        "cpu_quota": args.cpu_quota, "cpu_period": args.cpu_period,
        "pids_limit": args.pids_limit})
    for flag in ("memory_reservation", "cpuset_cpus", "cpuset_mems", "cpu_rt_period",
                 "cpu_rt_runtime", "blkio_weight"):
        if getattr(args, flag) not in (None, 0, ""):
            raise UpdateError(f"--{flag.replace('_', '-')}: not supported by stockade update")
    update(root, cid, res)
