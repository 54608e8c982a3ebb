"""The one ctypes layer: raw Linux syscalls Python 3.11 does not wrap, one wrapper each.

Every wrapper raises OSError(errno) on failure, so callers never test return codes.
Syscall numbers come from libseccomp's resolver (linux.libseccomp), resolved together
for every name used here by the first wrapper called (`numbers()`): a path that makes no
raw syscall never loads libseccomp.

The flags the wrappers take are defined in linux.consts; they are importable from here
too (as <sys/mount.h> brings MS_* with mount()), so a caller needs one module.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import time

from stockade.linux import consts as _c
from stockade.linux.consts import *  # noqa: F403 - the wrappers' flags, see the docstring

TYPE_CHECKING = False  # not typing's: typing would be imported on every run (bench/shim_bench.py)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

libc = ctypes.CDLL(None, use_errno=True)  # one handle to libc for every caller
libc.syscall.restype = ctypes.c_long
libc.ptrace.restype = ctypes.c_long
# Resolved on first use, not at import: a path without raw syscalls (the OCI create path,
# the executor's launch) never loads libseccomp (bench/RESULTS.md, "start-up").
WRAPPED: tuple[str, ...] = (
    "unshare", "setns", "mount", "umount2", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "mount_setattr", "openat2", "capget", "capset", "setgroups", "prctl", "seccomp",
    "bpf", "landlock_create_ruleset", "lsm_list_modules", "delete_module", "keyctl",
    "name_to_handle_at", "open_by_handle_at",
)
_numbers: dict[str, int] = {}


def numbers() -> dict[str, int]:
    """The native number of every syscall in WRAPPED (libseccomp's, resolved once)."""
    if not _numbers:
        from stockade.linux.libseccomp import native_number

        _numbers.update((name, native_number(name)) for name in WRAPPED)
    return _numbers

# The C signal module. signal.py's wrappers turn every signal number they return into
# an enum member (a Python-level call each: ~60 for a full mask), on every run's
# block-and-restore of the forwarded signals around the executor's start.
_csignal: Any = __import__("_signal")
SIG_BLOCK = 0
SIG_SETMASK = 2
# The signal numbers, as plain ints (the same on every architecture we support).
SIGHUP: int = _csignal.SIGHUP
SIGINT: int = _csignal.SIGINT
SIGQUIT: int = _csignal.SIGQUIT
SIGKILL: int = _csignal.SIGKILL
SIGUSR1: int = _csignal.SIGUSR1
SIGUSR2: int = _csignal.SIGUSR2
SIGTERM: int = _csignal.SIGTERM
SIGCONT: int = _csignal.SIGCONT
SIGWINCH: int = _csignal.SIGWINCH


def set_signal_handler(sig: int, handler: object) -> object:
    """signal.signal without the enum round trip; returns the previous handler."""
    return _csignal.signal(sig, handler)


def sigmask(how: int, signals: Iterable[int]) -> set[int]:
    """pthread_sigmask on plain ints; returns the previous mask as ints."""
    old: set[int] = _csignal.pthread_sigmask(how, signals)
    return old


def _check(rc: int) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc


def _arg(v: object) -> object:
    if v is None:
        return ctypes.c_void_p(0)
    if isinstance(v, int):
        return ctypes.c_long(v)
    return v


def syscall(name: str, *args: object) -> int:
    return _check(libc.syscall(ctypes.c_long(numbers()[name]), *(_arg(a) for a in args)))


def _path(p: str | None) -> bytes | None:
    return None if p is None else os.fsencode(p)


# --- processes and namespaces -------------------------------------------------------


def unshare(flags: int) -> None:
    syscall("unshare", flags)


def setns(fd: int, nstype: int) -> None:
    syscall("setns", fd, nstype)


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return syscall("prctl", option, a2, a3, a4, a5)


def pdeathsig() -> int:
    """This process's parent-death signal (0: none)."""
    sig = ctypes.c_int(0)
    syscall("prctl", _c.PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0)
    return sig.value


def setfsuid(uid: int) -> None:
    """Set the file-system uid (the call reports no error: the result is checked)."""
    libc.setfsuid(ctypes.c_uint(uid))
    if libc.setfsuid(ctypes.c_uint(0xFFFFFFFF)) & 0xFFFFFFFF != uid:  # -1 changes nothing, returns it
        raise OSError(1, f"setfsuid({uid}) refused")


# --- mounts -------------------------------------------------------------------------


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    syscall("mount", _path(source), _path(target), _path(fstype), flags, _path(data))


def umount2(target: str, flags: int) -> None:
    syscall("umount2", _path(target), flags)


def open_tree(dfd: int, path: str, flags: int) -> int:
    return syscall("open_tree", dfd, _path(path), flags)


def move_mount(from_dfd: int, from_path: str, to_dfd: int, to_path: str, flags: int) -> None:
    syscall("move_mount", from_dfd, _path(from_path), to_dfd, _path(to_path), flags)


def openat2(dfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = struct.pack("QQQ", flags | os.O_CLOEXEC, mode, resolve)
    buf = ctypes.create_string_buffer(how, len(how))
    return syscall("openat2", dfd, _path(path), buf, len(how))


# --- credentials --------------------------------------------------------------------

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    data = struct.pack(
        "IIIIII",
        effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF,
        effective >> 32, permitted >> 32, inheritable >> 32,
    )
    syscall("capset", ctypes.create_string_buffer(hdr, 8), ctypes.create_string_buffer(data, 24))


def capget() -> tuple[int, int, int]:
    hdr = ctypes.create_string_buffer(struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0), 8)
    data = ctypes.create_string_buffer(24)
    syscall("capget", hdr, data)
    e0, p0, i0, e1, p1, i1 = struct.unpack("IIIIII", data.raw)
    return e0 | e1 << 32, p0 | p1 << 32, i0 | i1 << 32


def setgroups(groups: list[int]) -> None:
    """The raw syscall, not glibc's: glibc would broadcast it to all threads via signals."""
    arr = (ctypes.c_uint32 * max(1, len(groups)))(*groups)
    syscall("setgroups", len(groups), ctypes.cast(arr, ctypes.c_void_p))


# --- file handles ---------------------------------------------------------------------


def name_to_handle_at(path: str) -> tuple[bytes, int]:
    """A file handle for `path` (MAX_HANDLE_SZ bytes of buffer) and its mount id."""
    handle = ctypes.create_string_buffer(8 + 128)
    ctypes.c_uint32.from_buffer(handle, 0).value = 128
    mount_id = ctypes.c_int(0)
    syscall("name_to_handle_at", _c.AT_FDCWD, _path(path),
            ctypes.c_void_p(ctypes.addressof(handle)),
            ctypes.c_void_p(ctypes.addressof(mount_id)), 0)
    return handle.raw, mount_id.value


def open_by_handle_at(mount_fd: int, handle: bytes, flags: int) -> int:
    buf = ctypes.create_string_buffer(handle, len(handle))
    return syscall("open_by_handle_at", mount_fd, ctypes.c_void_p(ctypes.addressof(buf)), flags)


# --- ptrace ---------------------------------------------------------------------------


def _ptrace(req: int, pid: int, addr: int, data: int | ctypes.c_void_p | None) -> int:
    d = data if isinstance(data, ctypes.c_void_p) or data is None else ctypes.c_void_p(data)
    return _check(int(libc.ptrace(ctypes.c_long(req), ctypes.c_long(pid),
                                  ctypes.c_void_p(addr), d)))


def seccomp_filters(pid: int) -> list[bytes]:
    """The target's seccomp filters as raw sock_filter arrays, oldest first.

    The tracee must be in a ptrace stop for PTRACE_SECCOMP_GET_FILTER, so we seize and
    interrupt it for the few microseconds the copy takes, then detach (it resumes).
    """
    _ptrace(_c.PTRACE_SEIZE, pid, 0, 0)
    try:
        _ptrace(_c.PTRACE_INTERRUPT, pid, 0, 0)
        _wait_stop(pid, 2.0)
        filters: list[bytes] = []
        index = 0
        while True:
            try:
                count = _ptrace(_c.PTRACE_SECCOMP_GET_FILTER, pid, index, None)
            except OSError as exc:
                if exc.errno == errno.ENOENT:  # no filter at this index
                    break
                raise
            buf = ctypes.create_string_buffer(count * 8)
            _ptrace(_c.PTRACE_SECCOMP_GET_FILTER, pid, index, ctypes.cast(buf, ctypes.c_void_p))
            filters.append(buf.raw)
            index += 1
    finally:
        try:  # noqa: SIM105 - no contextlib on the run path
            _ptrace(_c.PTRACE_DETACH, pid, 0, 0)
        except OSError:  # the tracee may have died: nothing to detach
            pass
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
            raise OSError(errno.ETIMEDOUT,
                          "the target did not stop for PTRACE_SECCOMP_GET_FILTER")
        time.sleep(0.0005)


# --- seccomp, landlock, LSM -----------------------------------------------------------


def seccomp_set_filter(bpf: bytes, flags: int = 0) -> int:
    """Load a raw `struct sock_filter[]` program (8 bytes per instruction); returns the
    syscall's result (the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0)."""
    if not bpf or len(bpf) % 8:
        raise OSError(errno.EINVAL, "seccomp program is empty or not a multiple of 8 bytes")
    prog = ctypes.create_string_buffer(bpf, len(bpf))
    fprog = ctypes.create_string_buffer(
        struct.pack("HxxxxxxQ", len(bpf) // 8, ctypes.addressof(prog)), 16)
    return syscall("seccomp", _c.SECCOMP_SET_MODE_FILTER, flags, fprog)


def landlock_abi() -> int:
    try:
        return syscall("landlock_create_ruleset", None, 0, _c.LANDLOCK_CREATE_RULESET_VERSION)
    except OSError:
        return 0


def lsm_active_ids() -> tuple[int, ...] | None:
    """The active LSMs by id, in stacking order (lsm_list_modules, 6.8+); None when the
    kernel cannot say."""
    buf = (ctypes.c_uint64 * 32)()
    size = ctypes.c_uint32(ctypes.sizeof(buf))
    try:
        n = syscall("lsm_list_modules", buf, ctypes.byref(size), 0)
    except OSError:
        return None
    return tuple(int(buf[i]) for i in range(n))


def statfs_type(path: str) -> int:
    buf = ctypes.create_string_buffer(120)
    _check(libc.statfs(os.fsencode(path), buf))
    return int(struct.unpack_from("l", buf.raw, 0)[0])
