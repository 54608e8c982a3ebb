"""The root a container starts from, built from the store without touching the archive.

    overlay     layers as overlayfs lower dirs + a per-container upper dir (root only)
    overlay-ro  layers as a read-only lower stack, no upper (policy `root: read-only`)
    bind-ro     a one-layer image, read-only: a read-only bind mount of the layer
    copy        layers copied into a per-container directory (no overlayfs, or rootless);
                with root it is then bind-mounted read-only when asked

The layers themselves are never writable from a container: overlay writes go to the upper
dir, a copy is the container's own. On exit the mount is removed, and the container's
directory too unless `keep` (its writable layer then stays under ROOT/containers/<id>).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from stockade.errors import StockadeError
from stockade.image import _mount, locks
from stockade.image.config import ImageConfig
from stockade.image.copytree import apply_layer
from stockade.image.fsutil import force_rmtree
from stockade.image.store import ImageRecord, Store
from stockade.linux import consts

METHODS = ("auto", "overlay", "copy")
MAX_MOUNT_DATA = 4000  # mount(2) data is one page


@dataclass  # not frozen: it owns a mount and a lock until close()
class PreparedRootfs:
    """A prepared root. Use as a context manager, or call close(); idempotent."""

    path: Path  # the directory to pivot_root into
    method: str  # overlay | overlay-ro | bind-ro | copy
    read_only: bool  # the root is already read-only (False for a rootless copy: remount it)
    image: ImageRecord
    container_id: str
    container_dir: Path
    keep: bool
    note: str = ""  # why "auto" did not use overlayfs, for --dry-run and the report
    _lock_fd: int | None = field(default=None, repr=False)

    @property
    def config(self) -> ImageConfig:
        return self.image.config

    @property
    def upper(self) -> Path | None:
        """Where the container's writes land (None for a read-only root)."""
        if self.method == "overlay":
            return self.container_dir / "upper"
        if self.method == "copy" and not self.read_only:
            return self.path
        return None

    def __enter__(self) -> PreparedRootfs:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._lock_fd is None:
            return
        try:
            if _mount.is_mountpoint(str(self.path)):
                _mount.umount(str(self.path))
            if self.keep:
                (self.container_dir / "keep").touch()
            else:
                force_rmtree(self.container_dir)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = None


def _overlay(store: Store, layers: list[str], cdir: Path, read_only: bool) -> tuple[Path, str]:
    merged = cdir / "merged"
    merged.mkdir()
    lowers = [str(store.layer_root(d)) for d in reversed(layers)]  # overlayfs: top first
    if read_only and len(lowers) == 1:
        # overlayfs needs two lowers without an upper; one layer is just a read-only bind
        _mount.mount(lowers[0], str(merged), None, consts.MS_BIND)
        _mount.mount("", str(merged), None, consts.MS_BIND | consts.MS_REMOUNT | consts.MS_RDONLY)
        return merged, "bind-ro"
    for p in lowers:
        if "," in p or ":" in p:
            raise StockadeError(f"store path {p!r} has ',' or ':', which overlayfs options cannot carry")
    data = "lowerdir=" + ":".join(lowers)
    flags = 0
    if read_only:
        flags |= consts.MS_RDONLY
    else:
        upper = cdir / "upper"
        upper.mkdir(mode=0o755)
        # overlayfs shows the upper dir's owner and mode as the root's: use the image's
        top = os.stat(lowers[0])
        os.chown(upper, top.st_uid, top.st_gid)
        os.chmod(upper, stat.S_IMODE(top.st_mode))
        (cdir / "work").mkdir(mode=0o700)
        data += f",upperdir={cdir / 'upper'},workdir={cdir / 'work'}"
    if len(data) > MAX_MOUNT_DATA:
        raise StockadeError(f"image has too many layers ({len(lowers)}) for one overlayfs mount "
                            "here (the copy method has no such limit)")
    _mount.mount("overlay", str(merged), "overlay", flags, data)
    return merged, "overlay-ro" if read_only else "overlay"


def _undo_overlay(cdir: Path) -> None:
    merged = cdir / "merged"
    if merged.is_dir() and _mount.is_mountpoint(str(merged)):
        _mount.umount(str(merged))
    for sub in ("merged", "upper", "work"):
        force_rmtree(cdir / sub)


def describe_rootfs(store: Store, ref: str, *, read_only: bool, method: str = "auto") -> str:
    """One line for `run --dry-run`: which image, which layers, how the root would be built.
    Reads the store only; mounts nothing."""
    image = store.resolve(ref)
    n = len(image.layers)
    if method == "copy" or not (os.geteuid() == 0 and _mount.overlay_supported()):
        how = "a copy of the layers" + (" (read-only)" if read_only and os.geteuid() == 0 else "")
    elif read_only:
        how = "a read-only bind of the layer" if n == 1 else "a read-only overlayfs lower stack"
    else:
        how = "overlayfs with a per-container writable upper layer"
    return f"image {ref} ({image.id}, {n} layer{'s' if n != 1 else ''}): rootfs is {how}"


def _copy(store: Store, layers: list[str], cdir: Path, read_only: bool) -> tuple[Path, bool]:
    rootfs = cdir / "rootfs"
    rootfs.mkdir(mode=0o755)
    for d in layers:
        apply_layer(store.layer_root(d), store.layer_meta(d), rootfs)
    if read_only and os.geteuid() == 0:
        _mount.mount(str(rootfs), str(rootfs), None, consts.MS_BIND)
        _mount.mount("", str(rootfs), None, consts.MS_BIND | consts.MS_REMOUNT | consts.MS_RDONLY)
        return rootfs, True
    return rootfs, False


def prepare_rootfs(
    store: Store,
    ref: str,
    *,
    read_only: bool,
    keep: bool,
    method: str = "auto",
    container_id: str | None = None,
) -> PreparedRootfs:
    """Build the root for one container of image `ref` (NAME[:TAG], ID or ID prefix).

    `method`: "auto" (overlayfs when root and the kernel has it, else a copy), "overlay"
    (an error when impossible), "copy". Reads only the store: no archive, no re-verification.
    Raises StockadeError; on error nothing is left mounted or on disk."""
    if method not in METHODS:
        raise StockadeError(f"unknown rootfs method {method!r} (expected one of {', '.join(METHODS)})")
    is_root = os.geteuid() == 0
    if method == "overlay" and not (is_root and _mount.overlay_supported()):
        raise StockadeError("overlayfs rootfs needs root and the overlay filesystem; "
                            "use the copy method")
    use_overlay = method == "overlay" or (method == "auto" and is_root and _mount.overlay_supported())
    cid = container_id or secrets.token_hex(8)
    if not cid.isalnum():
        raise StockadeError(f"bad container id {cid!r}")
    cdir = store.containers_dir / cid
    # Registering the container under the shared store lock keeps rm/prune from deleting
    # the image's layers between resolve() and the mount.
    with store.locked(shared=True):
        image = store.resolve(ref)
        for d in image.layers:
            if not store.has_layer(d):
                raise StockadeError(f"image {image.short_id}: layer {d} is missing from the store; "
                                    "load the image again")
        try:
            cdir.mkdir(mode=0o711)
        except FileExistsError:
            raise StockadeError(f"container {cid} already exists in {store.containers_dir}") from None
        lock_fd = locks.hold(cdir / "lock")
        (cdir / "container.json").write_text(json.dumps(
            {"id": cid, "image": image.id, "layers": list(image.layers), "pid": os.getpid()}))
    prepared = PreparedRootfs(cdir, "", read_only, image, cid, cdir, keep, _lock_fd=lock_fd)
    try:
        if not image.layers:
            path = cdir / "rootfs"
            path.mkdir()
            prepared.path, prepared.method, prepared.read_only = path, "copy", False
        elif use_overlay:
            try:
                path, how = _overlay(store, list(image.layers), cdir, read_only)
                prepared.path, prepared.method, prepared.read_only = path, how, read_only
            except (OSError, StockadeError) as exc:
                if method == "overlay":
                    raise
                # auto: a store on a filesystem overlayfs refuses as a lower layer, or too
                # many layers for one mount: the copy is slower but the same root.
                _undo_overlay(cdir)
                path, ro = _copy(store, list(image.layers), cdir, read_only)
                prepared.path, prepared.method, prepared.read_only = path, "copy", ro
                prepared.note = f"overlayfs not used: {exc}"
        else:
            path, ro = _copy(store, list(image.layers), cdir, read_only)
            prepared.path, prepared.method, prepared.read_only = path, "copy", ro
    except OSError as exc:
        prepared.keep = False
        prepared.close()
        raise StockadeError(f"cannot prepare the rootfs of {ref}: {exc}") from None
    except BaseException:
        prepared.keep = False
        prepared.close()
        raise
    return prepared


def materialize_rootfs(store: Store, ref: str, dest: Path) -> ImageRecord:
    """Write the image's merged root into `dest` (absent or empty) as plain files: for an
    OCI bundle (`stockade oci spec --image`), whose rootfs outlives any one process."""
    image = store.resolve(ref)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise StockadeError(f"{dest}: not empty; the image rootfs needs an empty directory")
    with store.locked(shared=True):  # the layers must not be pruned while we copy them
        try:
            for d in image.layers:
                apply_layer(store.layer_root(d), store.layer_meta(d), dest)
        except OSError as exc:
            raise StockadeError(f"cannot write the rootfs of {ref} into {dest}: {exc}") from None
    return image
