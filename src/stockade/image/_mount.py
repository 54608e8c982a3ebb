"""Mounting an image's root: mount(2)/umount2(2) through the one syscall layer
(linux.syscalls), with the target named in the error, and the host's mount facts."""

from __future__ import annotations

import os

from stockade.linux import syscalls
from stockade.linux.consts import MNT_DETACH


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    try:
        syscalls.mount(source, target, fstype, flags, data)
    except OSError as exc:
        raise OSError(exc.errno, f"mount {fstype or 'bind'} on {target}: {exc.strerror}") from None


def umount(target: str, flags: int = MNT_DETACH) -> None:
    try:
        syscalls.umount2(target, flags)
    except OSError as exc:
        raise OSError(exc.errno, f"umount {target}: {exc.strerror}") from None


def is_mountpoint(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == real:
                return True
    return False


def overlay_supported() -> bool:
    try:
        with open("/proc/filesystems", encoding="ascii") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False
