"""The recorder: answers every seccomp user notification with CONTINUE, noting what it saw.

Why seccomp user notification (and not ptrace, ftrace or audit): the filter is installed
in the payload just before execve and the kernel copies it into every child process and
thread it creates, so nothing the workload does can bypass it (completeness). Each
syscall stops once (ptrace stops twice, at entry and exit, and `strace -f` formats
every call), and the kernel wakes the learner on the same CPU
(SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP). Syscall tracepoints would be cheaper but this
kernel has no hist triggers or eprobes, so their ring buffer could drop events under
load; audit's SECCOMP_RET_LOG is rate limited. Both lose completeness.

Arguments come with the notification. Path strings are read from /proc/PID/mem while
the caller is stopped (then SECCOMP_IOCTL_NOTIF_ID_VALID checks that the pid was not
reused meanwhile). A sibling thread could change the string between our read and the
kernel's: fine for learning a cooperative workload, never for enforcement.

Runs in a forked process so the runner's launch stays single-threaded; the recording
goes back to the learner as JSON on a pipe.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import struct
from collections.abc import Callable

from stockade.linux.consts import (
    ANY_NEW_NAMESPACE,
    AT_FDCWD,
    O_ACCMODE,
    O_CREAT,
    O_TRUNC,
    SECCOMP_IOCTL_NOTIF_ID_VALID,
    SECCOMP_IOCTL_NOTIF_RECV,
    SECCOMP_IOCTL_NOTIF_SEND,
    SECCOMP_IOCTL_NOTIF_SET_FLAGS,
    SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
    SECCOMP_USER_NOTIF_FLAG_CONTINUE,
)

# linux/seccomp.h
_NOTIF = struct.Struct("=QIIiIQ6Q")  # id, pid, flags, nr, arch, ip, args[6]  (80 bytes)
_RESP = struct.Struct("=QqiI")  # id, val, error, flags  (24 bytes)
_ZERO = bytes(_NOTIF.size)


# name -> ((dirfd index | None, path index, kind), ...); kind: r w x, or o<flags index>
# for open-style calls, or h<how index> for openat2 (flags are the first u64 of `how`).
PATH_ARGS: dict[str, tuple[tuple[int | None, int, str], ...]] = {
    "open": ((None, 0, "o1"),), "openat": ((0, 1, "o2"),), "openat2": ((0, 1, "h2"),),
    "creat": ((None, 0, "w"),), "execve": ((None, 0, "x"),), "execveat": ((0, 1, "x"),),
    "mkdir": ((None, 0, "w"),), "mkdirat": ((0, 1, "w"),), "mknod": ((None, 0, "w"),),
    "mknodat": ((0, 1, "w"),), "unlink": ((None, 0, "w"),), "unlinkat": ((0, 1, "w"),),
    "rmdir": ((None, 0, "w"),), "rename": ((None, 0, "w"), (None, 1, "w")),
    "renameat": ((0, 1, "w"), (2, 3, "w")), "renameat2": ((0, 1, "w"), (2, 3, "w")),
    "link": ((None, 1, "w"),), "linkat": ((2, 3, "w"),), "symlink": ((None, 1, "w"),),
    "symlinkat": ((1, 2, "w"),), "truncate": ((None, 0, "w"),), "chmod": ((None, 0, "w"),),
    "fchmodat": ((0, 1, "w"),), "chown": ((None, 0, "w"),), "lchown": ((None, 0, "w"),),
    "fchownat": ((0, 1, "w"),),
}
# name -> argument indexes whose values the policy may condition on
ARG_VALUES: dict[str, tuple[int, ...]] = {
    "socket": (0, 1), "socketpair": (0, 1), "clone": (0,), "personality": (0,), "ioctl": (1,),
}
SOCKADDR_CALLS = {"bind": "bind", "connect": "connect"}  # sockaddr* at arg 1


class Recorder:
    """Mutable while recording (one process, one thread); `result()` is plain JSON."""

    def __init__(self, native: str, names: dict[int, str], audit_native: int) -> None:
        self.native = native
        self.names = names
        self.audit_native = audit_native
        self.started = False  # the payload's own setup (before its first execve) is not the workload
        self.seen: set[tuple[int, int]] = set()
        self.values: set[tuple[str, int, int]] = set()
        self.paths: set[tuple[str, str]] = set()
        self.sockaddrs: set[tuple[str, int, int, bool]] = set()  # call, family, port, loopback
        self.peers: set[tuple[str, int]] = set()  # IPv4 (address, port) connected to
        self.clone3_ns = False
        self.pids: set[int] = set()
        self.notifications = 0
        self._mem: dict[int, int] = {}
        self._missing: set[tuple[str, str]] = set()
        self._handlers: dict[int, Callable[[int, str, tuple[int, ...], int], None]] = {}
        for nr, name in names.items():
            if name in PATH_ARGS or name in ARG_VALUES or name in SOCKADDR_CALLS or name == "clone3":
                self._handlers[nr] = self._detail

    # -- the hot path ------------------------------------------------------------------

    def handle(self, listener: int, buf: bytearray, resp: bytearray) -> None:
        buf[:] = _ZERO  # the kernel refuses a receive buffer that is not zeroed (EINVAL)
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
        nid, pid, _flags, nr, arch, _ip, *args = _NOTIF.unpack(buf)
        self.notifications += 1
        if not self.started and arch == self.audit_native \
                and self.names.get(nr) in ("execve", "execveat"):
            self.started = True
        if self.started:
            self.seen.add((arch, nr))
            self.pids.add(pid)
            if arch == self.audit_native:
                h = self._handlers.get(nr)
                if h is not None:
                    h(pid, self.names[nr], tuple(args), nid)
                    if not self._valid(listener, nid):
                        return  # the caller died meanwhile: nothing to answer
        _RESP.pack_into(resp, 0, nid, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        try:  # noqa: SIM105 - the hot path: a plain try costs less than contextlib.suppress
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp, False)
        except OSError:
            pass  # ENOENT: the caller was killed while stopped

    # -- details: arguments, paths, socket addresses ------------------------------------

    def _detail(self, pid: int, name: str, args: tuple[int, ...], nid: int) -> None:
        for index in ARG_VALUES.get(name, ()):
            self.values.add((name, index, args[index]))
        for dirfd_i, path_i, kind in PATH_ARGS.get(name, ()):
            raw = self._string(pid, args[path_i])
            if raw is None:
                continue
            dirfd = AT_FDCWD if dirfd_i is None else _signed32(args[dirfd_i])
            path = self._absolute(pid, raw, dirfd)
            if path is None:
                continue
            if kind[0] == "o":
                kind = _open_kind(args[int(kind[1:])])
            elif kind[0] == "h":
                head = self._read(pid, args[int(kind[1:])], 8)
                kind = _open_kind(struct.unpack("=Q", head)[0]) if head and len(head) == 8 else "r"
            if (kind, path) in self.paths or (kind, path) in self._missing:
                continue
            if kind in "rx" and not os.path.lexists(f"/proc/{pid}/root{path}"):
                self._missing.add((kind, path))  # probes (library search, $PATH walk)
                continue
            self.paths.add((kind, path))
        if name in ("execve", "execveat"):
            fd = self._mem.pop(pid, None)  # the exec replaces the mm this fd reads
            if fd is not None:
                os.close(fd)
        if name in SOCKADDR_CALLS:
            addr = self._read(pid, args[1], 24)
            if addr and len(addr) >= 8:
                self._sockaddr(name, addr)
        if name == "clone3":
            head = self._read(pid, args[0], 8)
            if head and len(head) == 8 and struct.unpack("=Q", head)[0] & ANY_NEW_NAMESPACE:
                self.clone3_ns = True

    def _sockaddr(self, call: str, addr: bytes) -> None:
        family = struct.unpack_from("=H", addr)[0]
        if family == socket.AF_INET:
            port = struct.unpack_from("!H", addr, 2)[0]
            self.sockaddrs.add((call, family, port, addr[4] == 127))
            if call == "connect" and addr[4] != 127 and len(addr) >= 8 and any(addr[4:8]):
                self.peers.add((socket.inet_ntoa(addr[4:8]), port))  # proposed egress
        elif family == socket.AF_INET6 and len(addr) >= 24:
            port = struct.unpack_from("!H", addr, 2)[0]
            ip = addr[8:24]
            loop = ip == b"\0" * 15 + b"\1" or (ip[:12] == b"\0" * 10 + b"\xff\xff" and ip[12] == 127)
            self.sockaddrs.add((call, family, port, loop))

    def _mem_fd(self, pid: int) -> int | None:
        fd = self._mem.get(pid)
        if fd is None:
            if len(self._mem) > 256:
                for old in self._mem.values():
                    os.close(old)
                self._mem.clear()
            try:
                fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            self._mem[pid] = fd
        return fd

    def _read(self, pid: int, addr: int, size: int) -> bytes | None:
        fd = self._mem_fd(pid)
        if fd is None or addr == 0:
            return None
        try:
            data = os.pread(fd, size, addr)
            if data:
                return data
            raise OSError(errno.EIO, "old mm")
        except OSError:
            # an exec replaced the mm behind a cached fd: reopen once
            self._mem.pop(pid, None)
            os.close(fd)
            fd = self._mem_fd(pid)
            if fd is None:
                return None
            try:
                return os.pread(fd, size, addr)
            except OSError:
                return None

    def _string(self, pid: int, addr: int) -> str | None:
        data = self._read(pid, addr, 4096)
        if not data:
            return None
        end = data.find(b"\0")
        return os.fsdecode(data if end < 0 else data[:end]) or None

    def _absolute(self, pid: int, path: str, dirfd: int) -> str | None:
        if not path.startswith("/"):
            link = f"/proc/{pid}/cwd" if dirfd == AT_FDCWD else f"/proc/{pid}/fd/{dirfd}"
            try:
                base = os.readlink(link)
            except OSError:
                return None
            path = os.path.join(base, path)
        return os.path.normpath(path).replace("//", "/")

    @staticmethod
    def _valid(listener: int, nid: int) -> bool:
        try:
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, struct.pack("=Q", nid), False)
        except OSError:
            return False
        return True

    def result(self) -> dict[str, object]:
        return {
            "started": self.started,
            "syscalls": sorted([a, n] for a, n in self.seen),
            "values": sorted([n, i, v] for n, i, v in self.values),
            "paths": sorted([k, p] for k, p in self.paths),
            "sockaddrs": sorted([c, f, p, lo] for c, f, p, lo in self.sockaddrs),
            "peers": sorted([a, p] for a, p in self.peers),
            "clone3_ns": self.clone3_ns,
            "tasks": len(self.pids),
            "notifications": self.notifications,
        }


def _signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _open_kind(flags: int) -> str:
    return "w" if flags & O_ACCMODE or flags & (O_CREAT | O_TRUNC) else "r"


class _Stop(Exception):
    """Raised by the SIGUSR1 handler to leave a blocking receive."""


def supervise(sock: socket.socket, out_fd: int, recorder: Recorder) -> None:
    """Wait for the listener fd (or the learner's "end"), then answer notifications until
    the learner's SIGUSR1 (sent once the sandbox's last task is gone), then write the
    recording to `out_fd`.

    The receive blocks in the kernel instead of poll()+receive: one syscall less per
    notification (~15% of the round trip). SIGUSR1 is also the parent-death signal, so
    the recorder never outlives the learner."""
    looping = [False]

    def on_usr1(_signum: int, _frame: object) -> None:
        looping.append(True)  # remember the stop even outside the loop
        if looping[0]:
            raise _Stop

    signal.signal(signal.SIGUSR1, on_usr1)
    from stockade.linux import syscalls as L

    L.prctl(L.PR_SET_PDEATHSIG, signal.SIGUSR1)
    msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 1)
    if fds:
        listener = fds[0]
        # before 6.6 this flag is unknown: the same, one scheduler hop slower
        with contextlib.suppress(OSError):
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, struct.pack("=Q", SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP),
                        False)
        buf = bytearray(_NOTIF.size)
        resp = bytearray(_RESP.size)
        handle = recorder.handle
        looping[0] = True
        try:
            while len(looping) == 1:
                try:
                    handle(listener, buf, resp)
                except OSError as exc:  # ENOENT: the caller died before we answered
                    if exc.errno not in (errno.ENOENT, errno.EINTR):
                        raise
        except _Stop:
            pass
        looping[0] = False
        os.close(listener)
    data = json.dumps(recorder.result()).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(out_fd, view):]
