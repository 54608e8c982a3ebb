"""Namespace-wide settings done by the init: hostname, loopback, the cgroup namespace."""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct

from stockade.linux import syscalls as L
from stockade.linux.consts import IFF_UP, SIOCGIFFLAGS, SIOCSIFFLAGS

_libc = L.libc  # one handle to libc for the whole runner


def set_hostname(name: str) -> None:
    data = name.encode()
    if _libc.sethostname(data, len(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sethostname: {os.strerror(err)}")


def loopback_up() -> None:
    """`ip link set lo up` with one ioctl (no netlink library, no socket module import)."""
    fd = _libc.socket(2, 2 | 0o2000000, 0)  # AF_INET, SOCK_DGRAM|SOCK_CLOEXEC
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"socket: {os.strerror(err)}")
    try:
        req = bytearray(struct.pack("16sH22x", b"lo", 0))
        fcntl.ioctl(fd, SIOCGIFFLAGS, req)
        flags = struct.unpack_from("H", req, 16)[0] | IFF_UP
        fcntl.ioctl(fd, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags))
    finally:
        os.close(fd)


def enter_cgroup_ns() -> None:
    """After the cgroup attach, so the namespace root is the sandbox's own cgroup."""
    L.unshare(L.CLONE_NEWCGROUP)
