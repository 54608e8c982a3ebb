"""Runs INSIDE the sandbox (host python3): try the classic escapes, print one JSON line.

Each entry is "blocked: <errno name>" or "ESCAPED: ..."; the test wants all blocked.
"""

import ctypes
import errno
import json
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}


def err() -> str:
    return "blocked: " + errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def attempt(name, fn):
    try:
        res = fn()
        out[name] = res
    except OSError as exc:
        out[name] = "blocked: " + errno.errorcode.get(exc.errno or 0, str(exc.errno))


def core_pattern():
    with open("/proc/sys/kernel/core_pattern", "w") as fh:
        fh.write("|/tmp/pwn")
    return "ESCAPED: wrote core_pattern"


def mount_tmpfs():
    rc = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
    return "ESCAPED: mounted" if rc == 0 else err()


def unshare_user():
    rc = libc.unshare(0x10000000)
    return "ESCAPED: new user namespace" if rc == 0 else err()


def ptrace_init():
    rc = libc.ptrace(16, 1, None, None)  # PTRACE_ATTACH
    return "ESCAPED: attached to PID 1" if rc == 0 else err()


def open_by_handle():
    rc = libc.syscall(304, -100, None, 0)  # open_by_handle_at(AT_FDCWD, NULL, 0)
    e = ctypes.get_errno()
    return "blocked: " + errno.errorcode.get(e, str(e)) if rc < 0 and e in (
        errno.EPERM, errno.ENOSYS, errno.EACCES) else f"ESCAPED? rc={rc} errno={e}"


def parent_exe():
    ppid = os.getppid() or 1
    for pid in {ppid, 1}:
        fd = os.open(f"/proc/{pid}/exe", os.O_WRONLY)  # noqa: F841 - must not succeed
        return f"ESCAPED: opened /proc/{pid}/exe for writing"
    return "?"


def parent_exe_read():
    target = os.readlink("/proc/1/exe")
    return f"ESCAPED: /proc/1/exe -> {target}"


def runner_binary():
    path = sys.argv[1]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.close(fd)
    return f"ESCAPED: {path} writable"


def tiocsti():
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSTI, b"x")
    return "ESCAPED: TIOCSTI"


def kcore():
    with open("/proc/kcore", "rb") as fh:
        data = fh.read(16)
    return "blocked: masked" if not data else "ESCAPED: read kcore"


for name, fn in [("core_pattern", core_pattern), ("mount", mount_tmpfs),
                 ("unshare_user", unshare_user), ("ptrace_pid1", ptrace_init),
                 ("open_by_handle_at", open_by_handle), ("proc_1_exe_write", parent_exe),
                 ("proc_1_exe_readlink", parent_exe_read), ("runner_binary", runner_binary),
                 ("tiocsti", tiocsti), ("kcore", kcore)]:
    attempt(name, fn)
print(json.dumps(out))
