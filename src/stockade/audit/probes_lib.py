"""Harmless probe primitives. None of them writes: opens for writing are closed unwritten,
mounts happen only in a private mount namespace of a throw-away fork, syscalls get
arguments that cannot change anything."""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import stat
import struct
from collections.abc import Callable

from stockade.audit.probe import Outcome, attempt
from stockade.linux import consts, syscalls
from stockade.linux.consts import (
    BLKGETSIZE64,
    KEY_SPEC_SESSION_KEYRING,
    KEYCTL_DESCRIBE,
    KEYCTL_GET_KEYRING_ID,
    SIOCSIFFLAGS,
)

NULL_DEV = os.makedev(1, 3)


def scan_dirs(dirs: tuple[str, ...], keep: Callable[[str, os.DirEntry[str], os.stat_result], bool]) -> list[str]:
    """Paths of the entries of `dirs` (not followed through symlinks) that `keep` accepts;
    unreadable directories and entries are passed over."""
    found: list[str] = []
    for d in dirs:
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if keep(d, e, st):
                        found.append(e.path)
        except OSError:
            continue
    return found


def open_close(path: str, flags: int) -> Outcome:
    def go() -> str:
        fd = os.open(path, flags | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == NULL_DEV and not path.startswith("/dev/null"):
                return "masked (/dev/null)"
            return ""
        finally:
            os.close(fd)
    return attempt(go)


def open_wronly(path: str) -> Outcome:
    return open_close(path, os.O_WRONLY)


def open_rdonly(path: str) -> Outcome:
    return open_close(path, os.O_RDONLY)


def is_exposed(o: Outcome) -> bool:
    return o.ok and "masked" not in o.detail


def private_mount_ns() -> None:
    syscalls.unshare(consts.CLONE_NEWNS)
    # Make our copy private first, so nothing we mount can propagate back to a peer.
    syscalls.mount(None, "/", None, consts.MS_REC | consts.MS_PRIVATE, None)


def scratch_dir() -> str:
    for d in ("/tmp", "/mnt", "/run", "/dev", "/"):
        if os.path.isdir(d):
            return d
    return "/"


def mount_tmpfs() -> Outcome:
    def go() -> str:
        private_mount_ns()
        d = scratch_dir()
        syscalls.mount("stockade-probe", d, "tmpfs", consts.MS_NOSUID | consts.MS_NODEV, "size=4k")
        return f"tmpfs mounted on {d} in a private mount namespace"
    return attempt(go)


def cgroup_release_agent() -> Outcome:
    def go() -> str:
        private_mount_ns()
        d = scratch_dir()
        syscalls.mount("stockade-probe", d, "tmpfs", 0, "size=4k")
        os.mkdir(d + "/cg")
        # a fresh named hierarchy: only exists in our private namespace, gone when we exit
        syscalls.mount("cgroup", d + "/cg", "cgroup", 0, f"none,name=stockade_probe_{os.getpid()}")
        fd = os.open(d + "/cg/release_agent", os.O_WRONLY)
        os.close(fd)
        return "mounted a named cgroup v1 hierarchy; release_agent opened for write (not written)"
    return attempt(go)


def delete_module() -> Outcome:
    def go() -> str:
        syscalls.syscall("delete_module", b"stockade_no_such_module_0", os.O_NONBLOCK)
        return "delete_module accepted"
    out = attempt(go)
    if out.errno == 2:  # ENOENT: past the capability and seccomp checks
        return Outcome(True, 2, "delete_module reached the module lookup (ENOENT)")
    return out


def open_by_handle(path: str) -> Outcome:
    """Reopen a file from a handle. When name_to_handle_at is filtered, craft the handle the
    shocker exploit starts from: inode 2 (an ext4/xfs root), generation 0, type
    FILEID_INO32_GEN; success means the host filesystem's root directory was opened."""
    def go() -> str:
        mfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                handle, _ = syscalls.name_to_handle_at(path)
                how = f"reopened {path} from its handle"
            except OSError as exc:
                if exc.errno not in (1, 38, 95):
                    raise
                handle = struct.pack("=Ii", 8, 1) + struct.pack("=II", 2, 0)
                how = f"opened inode 2 (the filesystem root) of {path}'s filesystem from a crafted handle"
            fd = syscalls.open_by_handle_at(mfd, handle, os.O_RDONLY)
            os.close(fd)
        finally:
            os.close(mfd)
        return "open_by_handle_at " + how
    return attempt(go)


def ifflags_nonexistent() -> Outcome:
    def go() -> str:
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        except OSError:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with s:
            req = struct.pack("16sH14x", b"stockadenone0", 0)
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, req)
        return "SIOCSIFFLAGS accepted"
    out = attempt(go)
    if out.errno == 19:  # ENODEV: the capability check passed, the name does not exist
        return Outcome(True, 19, "SIOCSIFFLAGS passed the CAP_NET_ADMIN check (ENODEV)")
    return out


def raw_socket() -> Outcome:
    def go() -> str:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        s.close()
        return "raw ICMP socket opened and closed"
    return attempt(go)


def kallsyms_first_line() -> Outcome:
    def go() -> str:
        with open("/proc/kallsyms") as fh:
            first = fh.readline().split()
        addr = int(first[0], 16) if first else 0
        if addr == 0:
            raise PermissionError(13, "addresses hidden (kptr_restrict)")
        return "kallsyms shows real addresses"
    return attempt(go)


def keyctl_session() -> Outcome:
    def go() -> str:
        serial = syscalls.syscall("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
        buf = ctypes.create_string_buffer(256)
        try:
            syscalls.syscall("keyctl", KEYCTL_DESCRIBE, serial, ctypes.cast(buf, ctypes.c_void_p), 256)
            desc = buf.value.decode(errors="replace").rsplit(";", 1)[-1]
        except OSError:
            desc = "?"
        return f"session keyring {serial} {desc}"
    out = attempt(go)
    if out.errno == 126:  # ENOKEY: keyctl itself ran, there is no session keyring
        return Outcome(True, 126, "keyctl reachable; no session keyring")
    return out


def unshare_user() -> Outcome:
    def go() -> str:
        syscalls.unshare(consts.CLONE_NEWUSER)
        return "new user namespace"
    return attempt(go)


def readlink(path: str) -> Outcome:
    return attempt(lambda: os.readlink(path))


def read_text(path: str, limit: int = 200) -> Outcome:
    def go() -> str:
        with open(path, errors="replace") as fh:
            return fh.read(limit).strip()
    return attempt(go)


def block_device(path: str) -> Outcome:
    def go() -> str:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            size = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0]
        finally:
            os.close(fd)
        return f"{path} opened read-only, {size} bytes"
    return attempt(go)


def mknod_open(major: int, minor: int) -> Outcome:
    def go() -> str:
        private_mount_ns()
        d = scratch_dir()
        syscalls.mount("stockade-probe", d, "tmpfs", 0, "size=4k")
        node = d + "/blk"
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(major, minor))
        try:
            fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in (6, 19):  # ENXIO/ENODEV: the device cgroup let it through
                return f"mknod b {major}:{minor} in a private tmpfs; open reached the driver"
            raise
        os.close(fd)
        return f"mknod b {major}:{minor} in a private tmpfs, opened read-only"
    return attempt(go)


def connect_unix(path: str, ping: bool) -> Outcome:
    def go() -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(path)
            if not ping:
                return "connected"
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            head = s.recv(256).split(b"\r\n", 1)[0].decode(errors="replace")
            return f"connected; GET /_ping -> {head}"
    return attempt(go)


def connect_tcp(host: str, port: int, request: bytes | None) -> Outcome:
    def go() -> str:
        with socket.create_connection((host, port), timeout=1) as s:
            if request is None:
                return f"connected to {host}:{port}"
            s.settimeout(1)
            s.sendall(request)
            head = s.recv(256).split(b"\r\n", 1)[0].decode(errors="replace")
            return f"{host}:{port} answered {head}"
    return attempt(go)


def listdir(path: str) -> Outcome:
    return attempt(lambda: ", ".join(sorted(os.listdir(path))[:8]) or "(empty)")


def first_file(directory: str) -> str | None:
    """A regular file near the top of a mount, for an open-for-write test."""
    for sub in ("", "etc/", "bin/"):
        try:
            with os.scandir(directory.rstrip("/") + "/" + sub) as it:
                for entry in it:
                    if entry.is_file(follow_symlinks=False):
                        return entry.path
        except OSError:
            continue
    return None


def open_first_file_wronly(directory: str) -> Outcome:
    path = first_file(directory)
    if path is None:
        return Outcome(False, None, "no regular file found to test")
    out = open_wronly(path)
    return Outcome(out.ok, out.errno, f"{path}: {'opened for write, closed unwritten' if out.ok else out.describe()}")


def fd_escapes(fd_path: str) -> Outcome:
    """Does this directory fd lead outside our root? Walk '..' until it stops moving."""
    def go() -> str:
        root = os.stat("/")
        fd = os.open(fd_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for _ in range(256):
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino):
                    raise FileNotFoundError(2, "inside the root")
                parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                pst = os.fstat(parent)
                os.close(fd)
                fd = parent
                if (pst.st_dev, pst.st_ino) == (st.st_dev, st.st_ino):
                    return "reaches a filesystem root that is not the container's root"
        finally:
            os.close(fd)
        return "walked 256 levels without meeting the root"
    return attempt(go)
