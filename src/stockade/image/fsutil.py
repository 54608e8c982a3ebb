"""Walking and removing trees that image content built.

Such a tree is attacker-shaped: symlinks anywhere (`d -> /etc/shadow`), directories nested
thousands deep or longer than PATH_MAX, and, rootless, our own 0555 or 0000 directories.
So every step here is relative to an open directory fd, one name at a time, never follows
a symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW), and walks with an explicit stack (no recursion,
one fd held at a time whatever the depth).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir_at(parent_fd: int, name: str) -> int:
    """The directory `name` of `parent_fd`; OSError (ELOOP, ENOTDIR) for anything else."""
    return os.open(name, DIR_FLAGS, dir_fd=parent_fd)


def _enter(parent_fd: int, name: str) -> int:
    """Open a directory of ours to empty it, making it usable first when rootless."""
    if os.geteuid() != 0:  # root passes any mode (CAP_DAC_OVERRIDE); a user needs u+rwx
        with contextlib.suppress(OSError):
            os.chmod(name, 0o700, dir_fd=parent_fd, follow_symlinks=False)
    return open_dir_at(parent_fd, name)


@dataclass
class _Level:
    """A directory being emptied: its name in its parent, the parent's identity (checked
    when we climb back through `..`), and the names still to remove."""

    name: str
    parent_id: tuple[int, int]
    names: list[str] = field(default_factory=list)


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def remove_at(parent_fd: int, name: str) -> None:
    """Remove `name` of the directory `parent_fd`, whatever it is, with all it holds.
    Goes on past an entry it cannot remove and raises the first error at the end."""
    first_error: OSError | None = None
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    fd = _enter(parent_fd, name)
    stack = [_Level(name, _ident(parent_fd), os.listdir(fd))]
    try:
        while stack:
            level = stack[-1]
            if level.names:
                child = level.names.pop()
                try:
                    cst = os.stat(child, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISDIR(cst.st_mode):
                        os.unlink(child, dir_fd=fd)
                        continue
                    child_fd = _enter(fd, child)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    first_error = first_error or exc
                    continue
                here = _ident(fd)
                os.close(fd)
                fd = child_fd
                stack.append(_Level(child, here, os.listdir(fd)))
                continue
            # `level` is empty: climb back to its parent and remove it there
            stack.pop()
            if not stack:
                break
            up = os.open("..", DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = up
            if _ident(fd) != level.parent_id:
                raise OSError(errno.ESTALE, f"directory {level.name!r} was moved while it was removed")
            try:
                os.rmdir(level.name, dir_fd=fd)
            except OSError as exc:
                first_error = first_error or exc
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except OSError as exc:
        raise first_error or exc from None
    if first_error is not None:
        raise first_error


def force_rmtree(path: Path) -> bool:
    """Remove `path` (one of the store's own directories, or what it holds). Best effort:
    it runs in cleanup paths, where raising would hide the real error; returns False if
    something is left, which `image prune` retries."""
    try:
        parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        remove_at(parent_fd, path.name)
    except OSError:
        pass
    finally:
        os.close(parent_fd)
    return not os.path.lexists(path)
