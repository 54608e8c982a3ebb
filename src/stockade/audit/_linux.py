"""The audit's only ctypes layer: the few syscalls Python 3.11 lacks.

Every function raises OSError with the kernel's errno, so probes can report errnos.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import platform
import time

from stockade.runner import linux_consts as _consts

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

CLONE_NEWNS = _consts.CLONE_NEWNS
CLONE_NEWCGROUP = _consts.CLONE_NEWCGROUP
CLONE_NEWUTS = _consts.CLONE_NEWUTS
CLONE_NEWIPC = _consts.CLONE_NEWIPC
CLONE_NEWUSER = _consts.CLONE_NEWUSER
CLONE_NEWPID = _consts.CLONE_NEWPID
CLONE_NEWNET = _consts.CLONE_NEWNET

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C

SECCOMP_SET_MODE_FILTER = 1

# x86_64 and aarch64 syscall numbers for calls glibc has no wrapper for (or hides).
_NR = {
    "x86_64": {"setns": 308, "unshare": 272, "delete_module": 176, "keyctl": 250,
               "name_to_handle_at": 303, "open_by_handle_at": 304, "seccomp": 317,
               "capset": 126, "capget": 125, "setgroups": 116, "get_mempolicy": 239},
    "aarch64": {"setns": 268, "unshare": 97, "delete_module": 106, "keyctl": 219,
                "name_to_handle_at": 264, "open_by_handle_at": 265, "seccomp": 277,
                "capset": 91, "capget": 90, "setgroups": 159, "get_mempolicy": 236},
}[platform.machine()]


def _check(ret: int) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def syscall(name: str, *args: int | bytes | ctypes.c_void_p | None) -> int:
    cargs = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return _check(int(_libc.syscall(ctypes.c_long(_NR[name]), *cargs)))


def setns(fd: int, nstype: int = 0) -> None:
    syscall("setns", fd, nstype)


def unshare(flags: int) -> None:
    syscall("unshare", flags)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    def b(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    _check(_libc.mount(b(source), b(target), b(fstype), ctypes.c_ulong(flags), b(data)))


def chroot(path: str) -> None:
    os.chroot(path)


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(0), ctypes.c_ulong(0)))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    data = (_CapData * 2)()
    for i in range(2):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    _check(int(_libc.capset(ctypes.byref(hdr), ctypes.byref(data))))


def setgroups(groups: list[int]) -> None:
    arr = (ctypes.c_uint32 * max(1, len(groups)))(*groups)
    # the raw syscall, not glibc's: glibc would broadcast it to all threads via signals
    syscall("setgroups", len(groups), ctypes.cast(arr, ctypes.c_void_p))


def _ptrace(req: int, pid: int, addr: int, data: int | ctypes.c_void_p | None) -> int:
    _libc.ptrace.restype = ctypes.c_long
    d = data if isinstance(data, ctypes.c_void_p) or data is None else ctypes.c_void_p(data)
    return _check(int(_libc.ptrace(ctypes.c_long(req), ctypes.c_long(pid), ctypes.c_void_p(addr), d)))


def seccomp_filters(pid: int) -> list[bytes]:
    """The target's seccomp filters as raw sock_filter arrays, oldest first.

    The tracee must be in a ptrace stop for PTRACE_SECCOMP_GET_FILTER, so we seize and
    interrupt it for the few microseconds the copy takes, then detach (it resumes).
    """
    _ptrace(PTRACE_SEIZE, pid, 0, 0)
    try:
        _ptrace(PTRACE_INTERRUPT, pid, 0, 0)
        _wait_stop(pid, 2.0)
        filters: list[bytes] = []
        index = 0
        while True:
            try:
                count = _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, None)
            except OSError as exc:
                if exc.errno == 2:  # ENOENT: no filter at this index
                    break
                raise
            buf = ctypes.create_string_buffer(count * 8)
            _ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, ctypes.cast(buf, ctypes.c_void_p))
            filters.append(buf.raw)
            index += 1
    finally:
        with contextlib.suppress(OSError):  # the tracee may have died: nothing to detach
            _ptrace(PTRACE_DETACH, pid, 0, 0)
    filters.reverse()  # index 0 is the most recent; load the oldest first
    return filters


def _wait_stop(pid: int, timeout: float) -> None:
    """Wait for the tracee's ptrace stop; a task that cannot stop (frozen) must not hang us."""
    deadline = time.monotonic() + timeout
    while True:
        done, _ = os.waitpid(pid, 0x40000000 | os.WNOHANG)  # __WALL: not our child
        if done:
            return
        if time.monotonic() > deadline:
            raise OSError(errno.ETIMEDOUT, "the target did not stop for PTRACE_SECCOMP_GET_FILTER")
        time.sleep(0.0005)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_seccomp(program: bytes) -> None:
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    syscall("seccomp", SECCOMP_SET_MODE_FILTER, 0, ctypes.c_void_p(ctypes.addressof(prog)))


def name_to_handle_at(path: str) -> tuple[bytes, int]:
    """A file handle for `path` (MAX_HANDLE_SZ bytes of buffer) and its mount id."""
    handle = ctypes.create_string_buffer(8 + 128)
    ctypes.c_uint32.from_buffer(handle, 0).value = 128
    mount_id = ctypes.c_int(0)
    syscall("name_to_handle_at", -100, path.encode(), ctypes.c_void_p(ctypes.addressof(handle)),
            ctypes.c_void_p(ctypes.addressof(mount_id)), 0)
    return handle.raw, mount_id.value


def open_by_handle_at(mount_fd: int, handle: bytes, flags: int) -> int:
    buf = ctypes.create_string_buffer(handle, len(handle))
    return syscall("open_by_handle_at", mount_fd, ctypes.c_void_p(ctypes.addressof(buf)), flags)


def mknod(path: str, mode: int, dev: int) -> None:
    os.mknod(path, mode, dev)
