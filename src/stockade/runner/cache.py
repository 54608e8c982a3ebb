"""A small on-disk cache that only trusts files the current user owns and alone can write.

Location: $STOCKADE_CACHE_DIR, else $XDG_CACHE_HOME/stockade, else /var/cache/stockade
for root and ~/.cache/stockade for others. Any problem means "no cache", never an error:
the cache only saves time.
"""

from __future__ import annotations

import os
import stat


def cache_dir(sub: str) -> str | None:
    base = os.environ.get("STOCKADE_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        if xdg:
            base = os.path.join(xdg, "stockade")
        elif os.geteuid() == 0:
            base = "/var/cache/stockade"
        else:
            home = os.environ.get("HOME") or "/nonexistent"
            base = os.path.join(home, ".cache", "stockade")
    path = os.path.join(base, sub)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return None
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None
    return path


def read_trusted(path: str) -> bytes | None:
    """The file's bytes if it is a regular file we own that no one else can write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> bool:
    """Write `data` to `path` (0600) all at once or not at all; False if it could not."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:  # noqa: SIM105 - no contextlib on the run path
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True
