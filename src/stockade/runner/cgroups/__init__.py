"""cgroups for one run: detect the host's mode, create, limit, attach, report, remove.

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
    from collections.abc import Callable

__all__ = ["CgroupError", "Usage", "Hierarchy", "detect", "detect_cached", "create", "V1Cgroup",
           "V2Cgroup"]

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
    not move under a running service), our own cgroup is re-read every time. A create()
    that fails on a cached answer is retried with refresh=True by the caller."""
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


def create(h: Hierarchy, run_id: str, io: bool = False, path: str | None = None,
           devices: bool = False, freezer: bool = False,
           on_planned: Callable[[tuple[str, ...]], None] | None = None,
           cpuset: bool = False) -> V1Cgroup | V2Cgroup:
    """Create the run's cgroup(s); the caller must call remove() in a finally block.
    io: also create the blkio cgroup (v1), only when an io weight is asked for.
    path: an OCI cgroupsPath (absolute: below the hierarchy's root; relative: below the
    invoker's own cgroup; made inside the hierarchy, `..` refused: the OCI layer has
    cleaned it as runc does) instead of stockade/<run id>. devices: the v1 devices
    cgroup. cpuset: the v1 cpuset cgroup (OCI cpus/mems). on_planned: told the
    directories before any is made."""
    if h.mode in ("v1", "hybrid"):
        dirs = h.v1_dirs()
        if path is not None:
            if path.startswith("/"):
                dirs = {c: m for c, m, _ in h.v1_mounts}
            return V1Cgroup.create(dirs, run_id, io, leaf=path.lstrip("/"), devices=devices,
                                   freezer=freezer, on_planned=on_planned, cpuset=cpuset)
        reap_stale_now_and_then(sorted({os.path.join(d, "stockade") for d in dirs.values()}))
        return V1Cgroup.create(dirs, run_id, io, devices=devices, freezer=freezer,
                               on_planned=on_planned, cpuset=cpuset)
    if h.mode == "v2" and h.v2_mount is not None:
        own = os.path.join(h.v2_mount, h.v2_own.lstrip("/"))
        if path is not None:
            return V2Cgroup.create(h.v2_mount if path.startswith("/") else own, run_id,
                                   leaf=path.lstrip("/"), on_planned=on_planned)
        reap_stale_now_and_then([os.path.join(own, "stockade")])
        return V2Cgroup.create(own, run_id, on_planned=on_planned)
    raise CgroupError("no cgroup hierarchy is mounted on this host")


def is_cgroup2(path: str) -> bool:
    from stockade.linux import syscalls as L

    try:
        return L.statfs_type(path) == L.CGROUP2_SUPER_MAGIC
    except OSError:
        return False
