"""Removing trees we own but cannot write (rootless unpacks keep 0555 directories)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path


def force_rmtree(path: Path) -> bool:
    """Remove `path`, first making our own read-only directories writable when rootless.
    Best effort (it runs in cleanup paths, where raising would hide the real error):
    returns False if something is left, which `image prune` retries."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return True
    if os.geteuid() != 0:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        for dirpath, dirnames, _ in os.walk(path):  # top-down: fixed before it is listed
            for d in dirnames:
                with contextlib.suppress(OSError):
                    sub = os.path.join(dirpath, d)
                    if not os.path.islink(sub):
                        os.chmod(sub, 0o700)
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)
