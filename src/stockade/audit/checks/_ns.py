"""Is a namespace the host's? Initial-namespace inode numbers, or the auditor's own."""

from __future__ import annotations

from stockade.audit.view import View

# include/linux/proc_ns.h; net and mnt got fixed numbers in recent kernels (6.x). Dynamic
# inode numbers start at 0xF0000000, so these never collide with a container's.
INIT_INODES = {"ipc": 0xEFFFFFFF, "uts": 0xEFFFFFFE, "user": 0xEFFFFFFD, "pid": 0xEFFFFFFC,
               "cgroup": 0xEFFFFFFB, "time": 0xEFFFFFFA, "net": 0xEFFFFFF9, "mnt": 0xEFFFFFF8}


def host_ns(view: View, name: str) -> tuple[bool | None, str]:
    """(True/False, evidence), or (None, why) when it cannot be told."""
    ino = view.ns.get(name)
    if ino is None:
        return None, f"ns/{name} unreadable"
    if ino == INIT_INODES.get(name):
        return True, f"ns/{name} -> {name}:[{ino}] (0x{ino:X}, the initial namespace)"
    ref = view.ref_ns.get(name)
    if ref is not None and ref == ino:
        return True, f"ns/{name} -> {name}:[{ino}], the same as the auditor's (host) namespace"
    return False, f"ns/{name} -> {name}:[{ino}], not the host's"
