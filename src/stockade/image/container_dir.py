"""A container's directory in the store (ROOT/containers/<id>): removing one whose owner
is gone. Below both the store (prune) and rootfs (which creates these directories), so
neither has to import the other."""

from __future__ import annotations

from pathlib import Path

from stockade.image import _mount
from stockade.image.fsutil import force_rmtree


def remove_container_dir(d: Path) -> None:
    """For prune: unmount what rootfs mounted there (merged/ or rootfs/), then remove it."""
    for sub in ("merged", "rootfs"):
        p = d / sub
        if p.is_dir() and _mount.is_mountpoint(str(p)):
            _mount.umount(str(p))
    force_rmtree(d)
