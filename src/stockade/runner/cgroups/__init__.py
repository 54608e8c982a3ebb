"""cgroups for one run: detect the host's mode, create, limit, attach, report, remove.

Layout: <controller mount>/<the runner's own cgroup>/stockade/<run id>, so a sandbox
stays inside whatever the invoker is itself confined to (and v2 delegation works).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from stockade.runner import _linux as L
from stockade.runner.cgroups.base import CgroupError, Usage
from stockade.runner.cgroups.v1 import V1Cgroup
from stockade.runner.cgroups.v2 import V2Cgroup

__all__ = ["CgroupError", "Usage", "Hierarchy", "detect", "create", "V1Cgroup", "V2Cgroup"]

V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "blkio")


@dataclass(frozen=True)
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


def create(h: Hierarchy, run_id: str) -> V1Cgroup | V2Cgroup:
    """Create the run's cgroup(s); the caller must call remove() in a finally block."""
    if h.mode in ("v1", "hybrid"):
        return V1Cgroup.create(h.v1_dirs(), run_id)
    if h.mode == "v2" and h.v2_mount is not None:
        return V2Cgroup.create(os.path.join(h.v2_mount, h.v2_own.lstrip("/")), run_id)
    raise CgroupError("no cgroup hierarchy is mounted on this host")


def is_cgroup2(path: str) -> bool:
    try:
        return L.statfs_type(path) == L.CGROUP2_SUPER_MAGIC
    except OSError:
        return False
