"""Digest stamps: what stockade last put into the kernel under a name, and the kernel's
own fingerprint of it then. A stamp is only believed while the kernel still shows that
fingerprint, so a profile replaced or removed by someone else, or a reboot, is noticed."""

from __future__ import annotations

import os
from contextlib import suppress

from stockade.runner.cache import cache_dir, read_trusted, write_atomic


def _path(kind: str, name: str) -> str | None:
    directory = cache_dir("lsm")
    return None if directory is None else os.path.join(directory, f"{kind}-{name}")


def read(kind: str, name: str) -> tuple[str, str] | None:
    """(text digest, kernel fingerprint) recorded for `name`, or None."""
    path = _path(kind, name)
    data = None if path is None else read_trusted(path)
    if data is None:
        return None
    digest, _, fingerprint = data.decode(errors="replace").strip().partition(" ")
    return (digest, fingerprint) if digest and fingerprint else None


def write(kind: str, name: str, digest: str, fingerprint: str) -> None:
    path = _path(kind, name)
    if path is not None:  # no cache: the next run loads again, which is only slower
        write_atomic(path, f"{digest} {fingerprint}\n".encode())


def forget(kind: str, name: str) -> None:
    path = _path(kind, name)
    if path is not None:
        with suppress(FileNotFoundError):
            os.unlink(path)
