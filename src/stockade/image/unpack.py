"""Safe extraction of one layer tar into its own directory, as the OCI image spec describes.

The tar is attacker input. Every entry is checked before anything is written: no absolute
names, no `..`, no writing through a symlink (parents are lstat'ed, files opened O_NOFOLLOW),
no symlink whose relative target climbs out of the root, no hardlink to outside the layer,
no device nodes when rootless, no `trusted.*` xattrs (they would steer overlayfs).

Whiteouts: `.wh.NAME` hides NAME of lower layers, `.wh..wh..opq` makes a directory opaque.
They are recorded in the result (the copy fallback applies them) and, as root, also written
in overlayfs's own format (a 0/0 character device, `trusted.overlay.opaque=y`) so that the
layer directory can be an overlay lower dir as it is.
"""

from __future__ import annotations

import errno
import gzip
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from stockade.errors import StockadeError
from stockade.image.digest import Reader

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
OVL_OPAQUE = "trusted.overlay.opaque"


@dataclass(frozen=True)
class UnpackResult:
    whiteouts: tuple[str, ...]  # paths (relative, "/"-joined) hidden in lower layers
    opaques: tuple[str, ...]  # directories whose lower contents are hidden
    native: bool  # overlayfs markers written in the directory too
    entries: int
    privileged: tuple[str, ...] = ()  # "/path (setuid|setgid|file capabilities)": the image's wishes


def _name(raw: str, what: str = "entry") -> str:
    if raw.startswith("/"):
        raise StockadeError(f"layer {what} has an absolute path: {raw!r}")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise StockadeError(f"layer {what} escapes the root (path traversal): {raw!r}")
    return "/".join(parts)


class _Extractor:
    def __init__(self, dest: Path, rootless: bool) -> None:
        self.dest = str(dest)
        self.rootless = rootless
        self.whiteouts: list[str] = []
        self.opaques: list[str] = []
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.privileged: list[str] = []

    def _full(self, rel: str) -> str:
        return os.path.join(self.dest, rel)

    def _parent(self, rel: str) -> None:
        """Create missing parents; refuse to go through anything but a real directory."""
        path = self.dest
        for part in rel.split("/")[:-1]:
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and not self.rootless:
                # our own whiteout marker, then entries below that name in the same layer:
                # the lower one stays hidden (opaque), this layer's entries show
                os.unlink(path)
                os.mkdir(path, 0o755)
                os.setxattr(path, OVL_OPAQUE, b"y")
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise StockadeError(f"layer entry {rel!r} goes through a non-directory "
                                    f"({'symlink' if stat.S_ISLNK(st.st_mode) else 'file'}) "
                                    f"at {os.path.relpath(path, self.dest)!r}")

    def _clear(self, full: str, keep_dir: bool) -> None:
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(full)
        else:
            os.unlink(full)

    def whiteout(self, rel: str) -> None:
        parent, base = posixpath.split(rel)
        if base == WH_OPAQUE:
            self._parent(rel)
            if parent:
                full = self._full(parent)
                if not os.path.lexists(full):
                    os.mkdir(full, 0o755)
                elif not os.path.isdir(full) or os.path.islink(full):
                    raise StockadeError(f"opaque marker in a non-directory: {rel!r}")
            self.opaques.append(parent)
            if not self.rootless:
                os.setxattr(self._full(parent) if parent else self.dest, OVL_OPAQUE, b"y")
            return
        if base.startswith(WH_PREFIX + WH_PREFIX):
            return  # other aufs metadata (.wh..wh.plnk, ...): reserved, nothing to apply
        target = posixpath.join(parent, base[len(WH_PREFIX):])
        if not target or target.split("/")[-1] in ("", ".", ".."):
            raise StockadeError(f"bad whiteout name: {rel!r}")
        self._parent(target)
        self.whiteouts.append(target)
        # A file of the same layer wins over the whiteout (spec): only mark a free name.
        if not self.rootless and not os.path.lexists(self._full(target)):
            os.mknod(self._full(target), stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str) -> None:
        self._parent(rel)
        full = self._full(rel)
        self._clear(full, keep_dir=m.isdir())
        if m.isdir():
            if not os.path.isdir(full):
                os.mkdir(full, 0o700)
            self.dirs.append((full, m))
            return
        if m.isreg():
            src = tar.extractfile(m)
            assert src is not None
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        elif m.issym():
            self._check_symlink(rel, m.linkname)
            os.symlink(m.linkname, full)
        elif m.islnk():
            target = _name(m.linkname, "hardlink target")
            self._parent(target)
            src_full = self._full(target)
            if not os.path.lexists(src_full) or os.path.isdir(src_full):
                raise StockadeError(f"layer hardlink {rel!r} -> {m.linkname!r}: target is not a file "
                                    "earlier in the same layer")
            os.link(src_full, full, follow_symlinks=False)
            return  # a hardlink shares the target's inode and attributes
        elif m.ischr() or m.isblk():
            if self.rootless:
                raise StockadeError(f"layer has a device node {rel!r}: refused in rootless mode")
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(full, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(full, 0o600)
        else:
            raise StockadeError(f"layer entry {rel!r} has an unsupported tar type {m.type!r}")
        self._note_privilege(rel, m)
        self._attrs(full, m)

    def _note_privilege(self, rel: str, m: tarfile.TarInfo) -> None:
        # Recorded so that `run --dry-run` can say what the image asks for and does not get.
        for bit, what in ((0o4000, "setuid"), (0o2000, "setgid")):
            if m.isreg() and m.mode & bit:
                self.privileged.append(f"/{rel} ({what})")
        if "SCHILY.xattr.security.capability" in m.pax_headers:
            self.privileged.append(f"/{rel} (file capabilities)")

    def _check_symlink(self, rel: str, target: str) -> None:
        # Absolute targets resolve inside the container's root; a relative one that climbs
        # above it only makes sense as an escape for whoever follows it on the host.
        if not target:
            raise StockadeError(f"layer symlink {rel!r} has an empty target")
        if not target.startswith("/"):
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            if resolved == ".." or resolved.startswith("../"):
                raise StockadeError(f"layer symlink {rel!r} -> {target!r} points out of the root")

    def _attrs(self, full: str, m: tarfile.TarInfo) -> None:
        if not self.rootless:
            os.chown(full, m.uid, m.gid, follow_symlinks=False)
            for key, value in m.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    self._xattr(full, key[len("SCHILY.xattr."):], value)
        if not m.issym():
            mode = m.mode & 0o7777
            if self.rootless:
                mode &= ~0o6000  # no set-id bits on files a user unpacked
            os.chmod(full, mode)  # after chown: chown clears set-id bits
        os.utime(full, (m.mtime, m.mtime), follow_symlinks=False)

    def _xattr(self, full: str, name: str, value: str) -> None:
        if name.startswith("trusted.") or name.startswith("security.selinux"):
            return  # trusted.overlay.* would steer overlayfs; labels are the LSM's business
        try:
            os.setxattr(full, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise

    def finish(self) -> None:
        # Directory modes and times last: children change mtimes, and a 0555 directory
        # would refuse its own children when rootless.
        for full, m in reversed(self.dirs):
            self._attrs(full, m)


def unpack_layer(stream: Reader, dest: Path, *, rootless: bool) -> UnpackResult:
    """Extract the tar read from `stream` into the empty directory `dest`."""
    ex = _Extractor(dest, rootless)
    count = 0
    try:
        with tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|") as tar:
            for m in tar:
                rel = _name(m.name)
                count += 1
                if not rel:
                    if m.isdir():
                        ex.dirs.append((ex.dest, m))
                    continue
                if posixpath.basename(rel).startswith(WH_PREFIX):
                    ex.whiteout(rel)
                else:
                    ex.entry(tar, m, rel)
        ex.finish()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise StockadeError(f"layer is not a valid tar (truncated or corrupt): {exc}") from None
    except OSError as exc:
        raise StockadeError(f"layer cannot be unpacked: {exc}") from None
    return UnpackResult(tuple(ex.whiteouts), tuple(ex.opaques), not rootless, count,
                        tuple(ex.privileged))
