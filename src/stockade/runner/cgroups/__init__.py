"""cgroups for one run: detect the host's mode, plan them (the executor makes and limits
them: executor/cgroups.c), read their usage, remove them.

Layout: <controller mount>/<the runner's own cgroup>/stockade/<run id>, so a sandbox
stays inside whatever the invoker is itself confined to (and v2 delegation works).
"""

from __future__ import annotations

import os
import time

# No contextlib, no ctypes here: they would load on every `stockade run`.
from stockade.runner._record import frozen
from stockade.runner.cgroupfs import CgroupError, Usage
from stockade.runner.cgroups.v1 import V1Cgroup
from stockade.runner.cgroups.v2 import V2Cgroup

TYPE_CHECKING = False  # not typing's: the run path loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from typing import Any

    from stockade.runner.plan import Limits

__all__ = ["CgroupError", "CgroupPlan", "Usage", "Hierarchy", "detect", "detect_cached", "plan",
           "made", "V1Cgroup", "V2Cgroup"]

V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "blkio", "devices", "freezer", "cpuset")


@frozen
class Hierarchy:
    mode: str  # v1 | hybrid | v2 | none
    v1_mounts: tuple[tuple[str, str, str], ...] = ()  # (controller, mountpoint, own path)
    v2_mount: str | None = None
    v2_own: str = "/"

    def v1_dirs(self) -> dict[str, str]:
        return {c: os.path.join(m, own.lstrip("/")) for c, m, own in self.v1_mounts}


def detect(mountinfo: str = "/proc/self/mountinfo", cgroup: str = "/proc/self/cgroup") -> Hierarchy:
    own_v1: dict[str, str] = {}
    own_v2 = "/"
    with open(cgroup) as fh:
        for line in fh:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if hid == "0" and ctrls == "":
                own_v2 = path
            for c in ctrls.split(","):
                if c:
                    own_v1[c] = path
    v1: dict[str, str] = {}
    v2: str | None = None
    with open(mountinfo) as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields = right.split()
            if len(fields) < 3:
                continue
            mnt = left.split()[4]
            if fields[0] == "cgroup2" and v2 is None:
                v2 = mnt
            elif fields[0] == "cgroup":
                for opt in fields[2].split(","):
                    if opt in V1_CONTROLLERS and opt not in v1:
                        v1[opt] = mnt
    mounts = tuple((c, m, own_v1.get(c, "/")) for c, m in sorted(v1.items()))
    if v1:
        mode = "hybrid" if v2 is not None else "v1"
    elif v2 is not None:
        mode = "v2"
    else:
        mode = "none"
    return Hierarchy(mode, mounts, v2, own_v2)


def detect_cached(refresh: bool = False) -> Hierarchy:
    """detect() for the runner: the cgroup mounts are parsed once per process (they do
    not move under a running service), our own cgroup is re-read every time. A run whose
    cgroups failed on a cached answer is retried with refresh=True by the caller."""
    try:
        fd = os.open("/proc/self/cgroup", os.O_RDONLY | os.O_CLOEXEC)
        try:
            own = os.read(fd, 65536)
        finally:
            os.close(fd)
    except OSError:
        own = b""
    memo: tuple[bytes, Hierarchy] | None = getattr(detect_cached, "memo", None)
    if not refresh and memo is not None and memo[0] == own and own:
        return memo[1]
    h = detect()
    detect_cached.memo = (own, h)  # type: ignore[attr-defined]
    return h


_REAP_EVERY_S = 30.0  # stale run directories are only removed once 60 s old anyway


def reap_stale_now_and_then(parents: list[str]) -> None:
    """reap_stale, at most every _REAP_EVERY_S per process (each run would otherwise
    list every parent directory)."""
    now = time.monotonic()
    last: float | None = getattr(reap_stale_now_and_then, "last", None)
    if last is not None and now - last < _REAP_EVERY_S:
        return
    reap_stale_now_and_then.last = now  # type: ignore[attr-defined]
    reap_stale(parents)


def reap_stale(parents: list[str]) -> None:
    """rmdir run cgroups left by runners that died (SIGKILL skips their finally blocks).

    A run id starts with its runner's pid; a directory whose runner is gone and which
    holds no task (its sandbox died with it, PR_SET_PDEATHSIG) is removed. Nothing is
    killed here: a busy directory stays.
    """
    for parent in parents:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            pid, _, rest = name.partition("-")
            if not pid.isdigit() or not rest:
                continue
            try:
                os.kill(int(pid), 0)
                continue  # the runner is alive (or the pid was reused: leave it)
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            path = os.path.join(parent, name)
            try:
                # Old enough that it cannot be a runner in another pid namespace between
                # its mkdir and its attach.
                if time.time() - os.stat(path).st_ctime > 60:
                    os.rmdir(path)
            except OSError:
                continue


@frozen
class CgroupPlan:
    """A run's cgroups as the executor makes them: the document's `cgroups` section
    (docs/EXECUTOR.md) and the notes of limits this host cannot apply."""

    section: dict[str, Any]
    notes: tuple[str, ...] = ()


def plan(h: Hierarchy, name: str, lim: Limits, *, io: bool = False, path: str | None = None,
         devices: bool = False, freezer: bool = False, cpuset: bool = False,
         record: bool = False) -> CgroupPlan:
    """The cgroups of one run or container, for the executor to make, limit and report.
    name: the run id or container id (the directory stockade/<name>); path: an OCI
    cgroupsPath instead (absolute: below the hierarchy's root; relative: below the
    runtime's own cgroup; made inside the hierarchy, `..` refused: the OCI layer has
    cleaned it as runc does). io, devices, freezer, cpuset: those v1 cgroups too.
    record: the runtime records the directories before the executor goes on (OCI
    create: a runtime killed half-way leaves nothing a delete cannot find). Raises
    CgroupError for what cannot be made here."""
    absolute = path is not None and path.startswith("/")
    leaf = (path or "").lstrip("/")
    base = {"absolute": absolute, "leaf": leaf, "name": name, "record": record}
    if h.mode in ("v1", "hybrid"):
        from stockade.runner.cgroups.v1 import v1_section

        mounts = {c: m for c, m, _ in h.v1_mounts}
        if path is None:
            reap_stale_now_and_then(sorted({os.path.join(d, "stockade")
                                            for d in h.v1_dirs().values()}))
        # the executor adds the runtime's own cgroup to each mount (unless absolute)
        parents = mounts if absolute else h.v1_dirs()
        controllers, writes, notes = v1_section(parents, lim, io=io, devices=devices,
                                                freezer=freezer, cpuset=cpuset)
        return CgroupPlan({"mode": "v1",
                           "controllers": [{"name": c, "mount": mounts[c]} for c in controllers],
                           **base, "writes": writes, "enable": [], "device_program": ""},
                          tuple(notes))
    if h.mode == "v2" and h.v2_mount is not None:
        from stockade.runner.cgroups.v2 import WANTED, v2_section

        if path is None:
            own = os.path.join(h.v2_mount, h.v2_own.lstrip("/"))
            reap_stale_now_and_then([os.path.join(own, "stockade")])
        writes, program, notes = v2_section(lim)
        return CgroupPlan({"mode": "v2", "controllers": [{"name": "", "mount": h.v2_mount}],
                           **base, "writes": writes,
                           # enabled in the parents only for the default stockade/<name>
                           "enable": [] if leaf else list(WANTED),
                           "device_program": program}, tuple(notes))
    raise CgroupError("no cgroup hierarchy is mounted on this host")


def made(mode: str, dirs: dict[str, str]) -> V1Cgroup | V2Cgroup:
    """The cgroup the executor reported making ({controller: directory}; v2: {"": dir})."""
    if mode == "v2":
        return V2Cgroup(next(iter(dirs.values())))
    return V1Cgroup(dict(dirs))


def is_cgroup2(path: str) -> bool:
    from stockade.linux import syscalls as L

    try:
        return L.statfs_type(path) == L.CGROUP2_SUPER_MAGIC
    except OSError:
        return False
