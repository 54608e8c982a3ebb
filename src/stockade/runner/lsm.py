"""AppArmor / SELinux exec labels, written through a verified procfs fd.

The write goes to /proc/thread-self/attr/... It is the first of the identity steps,
after the root is built (so through the sandbox's own procfs) and before Landlock,
which would refuse it, and before seccomp and the capability drop. The proc mount is
checked to really be procfs (fstatfs) and the path is resolved beneath it without
leaving it, so a rootfs that fakes /proc (a bind-mounted tmpfs, CVE-2019-16884 class)
cannot swallow the label. The label is a task attribute: a fork inherits it, and it
takes effect at the next execve. The kernel must already hold the profile / module it
names: stockade.lsm.load puts it there before the sandbox is created.
"""

from __future__ import annotations

import os

from stockade.linux import syscalls as L
from stockade.runner.plan import LsmPlan


class LsmError(Exception):
    pass


def _open_attr(candidates: tuple[str, ...]) -> int:
    proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if L.fstatfs_type(proc) != L.PROC_SUPER_MAGIC:
            raise LsmError("/proc is not procfs")
        last: OSError | None = None
        for rel in candidates:
            try:
                fd = L.openat2(proc, rel, os.O_WRONLY, L.RESOLVE_BENEATH | L.RESOLVE_NO_XDEV)
            except OSError as exc:
                last = exc
                continue
            if L.fstatfs_type(fd) != L.PROC_SUPER_MAGIC:
                os.close(fd)
                raise LsmError(f"/proc/{rel} is not on procfs")
            return fd
        raise LsmError(f"cannot open {candidates[-1]}: {last.strerror if last else '?'}")
    finally:
        os.close(proc)


def apply(plan: LsmPlan) -> None:
    # thread-self, not getpid(): in a new pid namespace, before the new /proc is mounted,
    # our pid names another process in the host's procfs.
    if plan.apparmor_profile:
        fd = _open_attr(("thread-self/attr/apparmor/exec", "thread-self/attr/exec"))
        try:
            os.write(fd, f"exec {plan.apparmor_profile}".encode())
        except OSError as exc:
            raise LsmError(f"apparmor exec {plan.apparmor_profile}: {exc.strerror}") from exc
        finally:
            os.close(fd)
    if plan.selinux_label:
        fd = _open_attr(("thread-self/attr/exec",))
        try:
            os.write(fd, plan.selinux_label.encode())
        except OSError as exc:
            raise LsmError(f"selinux exec {plan.selinux_label}: {exc.strerror}") from exc
        finally:
            os.close(fd)
