"""Fold recorded paths into the few entries a person would write.

- writes under a mount the runner makes fresh (tmpfs /tmp, /run, /dev/shm, policy tmpfs)
  become that mount point: the runner keeps it private and Landlock grants below it;
- writes to the device nodes every runtime's /dev has (null, zero, tty, pts/N, the
  stdio links...) need no entry: they are writable under every policy, and `/dev`
  itself would grant creating files there (`default` does not); any other existing node
  under /dev is named as seen, and a file created there is dropped (/dev is read-only in
  every runtime: the write failed);
- a file the workload created, removed or renamed becomes its directory (it does not
  exist before the run, so it cannot be bound or named alone);
- reads fold into `dir/**` once a directory has several, and `/proc/<pid>` is
  `/proc/self` (pids differ on every run);
- a path below another entry of the same list is dropped.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable

from stockade.runner.plan import DEV_NODES

_PROC_PID = re.compile(r"^/proc/(\d+|self|thread-self)(/task/\d+)?(?=/|$)")
FRESH_MOUNTS = ("/dev/shm", "/dev/mqueue", "/tmp", "/run", "/proc", "/sys")
# What every runtime's minimal /dev gives writable (not creatable) under a read-only root:
# the runner's nodes, the stdio links to /proc/self/fd, terminals.
STANDARD_DEV_NODES = frozenset({*(f"/dev/{n}" for n in DEV_NODES), "/dev/ptmx", "/dev/stdin",
                                "/dev/stdout", "/dev/stderr"})
STANDARD_DEV_DIRS = ("/dev/fd", "/dev/pts")
READ_FOLD_AT = 3  # files read in one directory before it becomes `dir/**`


def canonical(path: str) -> str:
    return _PROC_PID.sub("/proc/self", path)


def under(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def _prune(paths: Iterable[str], plain_covers: bool = True) -> list[str]:
    """Drop entries covered by another: `/a/**` covers `/a/...`; a plain `/a` covers
    `/a/b` too when `plain_covers` (writable: a directory grants what is below it)."""
    out: list[str] = []
    for p in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(under(p.removesuffix("/**"), q.removesuffix("/**")) and p != q
                   and (q.endswith("/**") or plain_covers and not p.endswith("/**"))
                   for q in out):
            out.append(p)
    globs = {q.removesuffix("/**") for q in out if q.endswith("/**")}
    return sorted(p for p in out if p not in globs)  # `d/**` says `d` too


def writable_everywhere(path: str) -> bool:
    """A device node every policy leaves writable (`default` included)."""
    return path in STANDARD_DEV_NODES or any(under(path, d) and path != d
                                             for d in STANDARD_DEV_DIRS)


def fold_writes(written: Iterable[tuple[str, bool]], fresh: Iterable[str]) -> list[str]:
    """(path, created) pairs -> writable entries (plain paths: the runner binds them)."""
    mounts = sorted(set(fresh) | set(FRESH_MOUNTS), key=len, reverse=True)
    out: set[str] = set()
    for path, created in written:
        path = canonical(path)
        if writable_everywhere(path):
            continue
        top = next((mnt for mnt in mounts if under(path, mnt)), None)
        if top is not None:
            out.add(top)
        elif under(path, "/dev"):
            if not created:
                out.add(path)
        elif created:
            out.add(os.path.dirname(path) or "/")
        else:
            out.add(path)
    return _prune(out)


def fold_reads(paths: Iterable[str], covered: Iterable[str] = ()) -> list[str]:
    """Read paths -> read_only entries, folded into `dir/**` where a directory has several."""
    cover = list(covered)
    plain = {canonical(p) for p in paths}
    plain = {p for p in plain if not any(under(p, c.removesuffix("/**")) for c in cover)}
    per_dir = Counter(os.path.dirname(p) for p in plain)
    out = set()
    for p in plain:
        d = os.path.dirname(p)
        out.add(f"{d}/**" if per_dir[d] >= READ_FOLD_AT and d != "/" else p)
    return _prune(out, plain_covers=False)  # reading a directory lists it, nothing more
