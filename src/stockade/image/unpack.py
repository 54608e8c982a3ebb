"""Safe extraction of one layer tar into its own directory, as the OCI image spec describes.

The tar is attacker input. Every entry is checked before anything is written: no absolute
names, no `..`, no symlink whose relative target climbs out of the root, no hardlink to
outside the layer, no device nodes when rootless, no `trusted.*` xattrs (they would steer
overlayfs), and the Limits (size, entries, depth, name length) while it streams.

Nothing is ever done through a symlink. A layer may hold `d -> /etc/shadow` (absolute
targets are legal: they resolve inside the container), and may replace any name by a
symlink later in the same tar. So every write is relative to an open directory fd reached
from the root one component at a time with O_NOFOLLOW (fsutil.open_dir_at), and owner, mode
and times are set on an fd of the object itself (a file's own fd, a directory reopened
and fstat-checked to be the one we made) or with AT_SYMLINK_NOFOLLOW, never by path.

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
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from stockade.errors import StockadeError
from stockade.image.digest import CHUNK, Reader
from stockade.image.fsutil import DIR_FLAGS, open_dir_at, remove_at
from stockade.image.limits import BoundedTarInfo, Budget, Limits

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
OVL_OPAQUE = "trusted.overlay.opaque"
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # a name that is no longer our directory


@dataclass(frozen=True)
class UnpackResult:
    whiteouts: tuple[str, ...]  # paths (relative, "/"-joined) hidden in lower layers
    opaques: tuple[str, ...]  # directories whose lower contents are hidden
    native: bool  # overlayfs markers written in the directory too
    entries: int
    privileged: tuple[str, ...] = ()  # "/path (setuid|setgid|file capabilities)": the image's wishes


@dataclass(frozen=True)
class _DirAttrs:
    """What the finishing pass applies to a directory, and which directory it is."""

    rel: str
    ident: tuple[int, int]  # (st_dev, st_ino) of the directory we made for this entry
    info: tarfile.TarInfo


def _name(raw: str, what: str = "entry") -> str:
    if raw.startswith("/"):
        raise StockadeError(f"layer {what} has an absolute path: {raw!r}")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise StockadeError(f"layer {what} escapes the root (path traversal): {raw!r}")
    return "/".join(parts)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


class _Cursor:
    """One open directory fd inside the layer, and the components that reach it from the
    root. It moves like a shell's cwd: up through `..` (the real parent: we never rename a
    directory, and reaching the root is checked), down one name at a time with O_NOFOLLOW.
    Tars list a directory's entries together, so a move is a step or two, whatever the
    depth, and one fd is held however deep the tree is."""

    def __init__(self, root_fd: int) -> None:
        self.root_ident = _ident(root_fd)
        self.parts: list[str] = []
        self.fd = os.dup(root_fd)

    def close(self) -> None:
        os.close(self.fd)

    def common(self, parts: list[str]) -> int:
        """How many leading components `parts` shares with where the cursor is."""
        if parts[: len(self.parts)] == self.parts:  # the usual case, compared in C
            return len(self.parts)
        for i, (mine, theirs) in enumerate(zip(self.parts, parts, strict=False)):
            if mine != theirs:
                return i
        return len(parts)

    def up(self, leaving: Callable[[int, list[str]], None] | None = None) -> None:
        parent = os.open("..", DIR_FLAGS, dir_fd=self.fd)  # before `leaving` may chmod 0000
        try:
            if leaving is not None:
                leaving(self.fd, self.parts)
        except BaseException:
            os.close(parent)
            raise
        os.close(self.fd)
        self.fd = parent
        self.parts.pop()
        if not self.parts and _ident(parent) != self.root_ident:
            raise OSError(errno.ESTALE, "the layer directory was moved while it was unpacked")

    def down(self, part: str, child_fd: int) -> None:
        os.close(self.fd)
        self.fd = child_fd
        self.parts.append(part)


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


class _Extractor:
    """Writes entries below `root_fd`, each in the directory the cursor moves to."""

    def __init__(self, root_fd: int, rootless: bool) -> None:
        self.root_fd = root_fd
        self.rootless = rootless
        self.whiteouts: list[str] = []
        self.opaques: list[str] = []
        self.dirs: list[_DirAttrs] = []
        self.privileged: list[str] = []
        self.cursor = _Cursor(root_fd)

    def close(self) -> None:
        self.cursor.close()

    def _chdir(self, parts: list[str], rel: str) -> int:
        """An fd of the directory `parts` (made if missing); refuses to go through anything
        but a real directory."""
        c = self.cursor
        keep = c.common(parts)
        while len(c.parts) > keep:
            c.up()
        for part in parts[keep:]:
            c.down(part, self._step(c.fd, part, rel, "/".join([*c.parts, part])))
        return c.fd

    def _step(self, fd: int, part: str, rel: str, where: str) -> int:
        """An fd of the directory `part` of `fd`, made if missing."""
        st = _lstat_at(fd, part)
        if st is None:
            os.mkdir(part, 0o755, dir_fd=fd)
        elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and not self.rootless:
            # our own whiteout marker, then entries below that name in the same layer:
            # the lower one stays hidden (opaque), this layer's entries show
            os.unlink(part, dir_fd=fd)
            os.mkdir(part, 0o755, dir_fd=fd)
            sub = open_dir_at(fd, part)
            try:
                os.setxattr(sub, OVL_OPAQUE, b"y")
            finally:
                os.close(sub)
        elif not stat.S_ISDIR(st.st_mode):
            kind = "symlink" if stat.S_ISLNK(st.st_mode) else "file"
            raise StockadeError(f"layer entry {rel!r} goes through a non-directory ({kind}) at {where!r}")
        try:
            return open_dir_at(fd, part)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # only if swapped under us
                raise StockadeError(f"layer entry {rel!r} goes through a non-directory at {where!r}") from None
            raise

    def _parent(self, rel: str) -> tuple[int, str]:
        parts = rel.split("/")
        return self._chdir(parts[:-1], rel), parts[-1]

    def whiteout(self, rel: str) -> None:
        parent, base = posixpath.split(rel)
        if base == WH_OPAQUE:
            dir_fd = self._chdir(parent.split("/") if parent else [], rel)
            self.opaques.append(parent)
            if not self.rootless:
                os.setxattr(dir_fd, OVL_OPAQUE, b"y")
            return
        if base.startswith(WH_PREFIX + WH_PREFIX):
            return  # other aufs metadata (.wh..wh.plnk, ...): reserved, nothing to apply
        name = base[len(WH_PREFIX):]
        if name in ("", ".", ".."):
            raise StockadeError(f"bad whiteout name: {rel!r}")
        target = posixpath.join(parent, name)
        dir_fd, _ = self._parent(target)
        self.whiteouts.append(target)
        # A file of the same layer wins over the whiteout (spec): only mark a free name.
        if not self.rootless and _lstat_at(dir_fd, name) is None:
            os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dir_fd)

    def _clear(self, dir_fd: int, name: str, keep_dir: bool) -> None:
        st = _lstat_at(dir_fd, name)
        if st is None or (keep_dir and stat.S_ISDIR(st.st_mode)):
            return
        remove_at(dir_fd, name)

    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str, budget: Budget) -> None:
        dir_fd, name = self._parent(rel)
        self._clear(dir_fd, name, keep_dir=m.isdir())
        if m.isdir():
            if _lstat_at(dir_fd, name) is None:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            self.dirs.append(_DirAttrs(rel, (st.st_dev, st.st_ino), m))
            return
        if m.isreg():
            if m.issparse():  # holes cost no stream bytes but are written out as zeros
                budget.charge_bytes(m.size)
            self._file(tar, m, dir_fd, name)
            self._note_privilege(rel, m)
            return
        if m.issym():
            self._check_symlink(rel, m.linkname)
            os.symlink(m.linkname, name, dir_fd=dir_fd)
        elif m.islnk():
            self._hardlink(rel, m.linkname, dir_fd, name)
            return  # a hardlink shares the target's inode and attributes
        elif m.ischr() or m.isblk():
            if self.rootless:
                raise StockadeError(f"layer has a device node {rel!r}: refused in rootless mode")
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=dir_fd)
        elif m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=dir_fd)
        else:
            raise StockadeError(f"layer entry {rel!r} has an unsupported tar type {m.type!r}")
        self._attrs_at(dir_fd, name, m)

    def _file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, dir_fd: int, name: str) -> None:
        src = tar.extractfile(m)
        assert src is not None
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dir_fd)
        try:
            while chunk := src.read(CHUNK):
                _write_all(fd, chunk)
            self._attrs_fd(fd, m)
        finally:
            os.close(fd)

    def _hardlink(self, rel: str, linkname: str, dir_fd: int, name: str) -> None:
        target = _name(linkname, "hardlink target")
        parts = target.split("/")
        # The target's directory, reached the same way (O_NOFOLLOW from the root); a
        # separate fd so that the cached parent of this entry stays valid.
        src_fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts[:-1]):
                try:
                    nxt = open_dir_at(src_fd, part)
                except OSError as exc:
                    if exc.errno not in _GONE:
                        raise
                    raise StockadeError(f"layer hardlink {rel!r} -> {linkname!r}: "
                                        f"{'/'.join(parts[: i + 1])!r} is not a directory of "
                                        "this layer") from None
                os.close(src_fd)
                src_fd = nxt
            st = _lstat_at(src_fd, parts[-1])
            if st is None or stat.S_ISDIR(st.st_mode):
                raise StockadeError(f"layer hardlink {rel!r} -> {linkname!r}: target is not a file "
                                    "earlier in the same layer")
            os.link(parts[-1], name, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(src_fd)

    def _note_privilege(self, rel: str, m: tarfile.TarInfo) -> None:
        # Recorded so that `run --dry-run` can say what the image asks for and does not get.
        for bit, what in ((0o4000, "setuid"), (0o2000, "setgid")):
            if m.mode & bit:
                self.privileged.append(f"/{rel} ({what})")
        if "SCHILY.xattr.security.capability" in m.pax_headers:
            self.privileged.append(f"/{rel} (file capabilities)")

    def _check_symlink(self, rel: str, target: str) -> None:
        # Absolute targets resolve inside the container's root; a relative one that climbs
        # above it only makes sense as an escape for whoever follows it on the host. (A
        # chain of links can still climb: that is why nothing here follows one.)
        if not target:
            raise StockadeError(f"layer symlink {rel!r} has an empty target")
        if not target.startswith("/"):
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            if resolved == ".." or resolved.startswith("../"):
                raise StockadeError(f"layer symlink {rel!r} -> {target!r} points out of the root")

    def _mode(self, m: tarfile.TarInfo) -> int:
        mode = m.mode & 0o7777
        return mode & ~0o6000 if self.rootless else mode  # no set-id bits on files a user unpacked

    def _attrs_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        """Owner, xattrs, mode and times of a file or directory, through its own fd."""
        if not self.rootless:
            os.fchown(fd, m.uid, m.gid)
            self._xattrs(fd, m)
        os.fchmod(fd, self._mode(m))  # after chown: chown clears set-id bits
        os.utime(fd, (m.mtime, m.mtime))

    def _attrs_at(self, dir_fd: int, name: str, m: tarfile.TarInfo) -> None:
        """The same for a symlink, device or fifo, which we do not open (opening a device
        can act on it): by name in its directory, never following a symlink. Their xattrs
        are dropped: user.* is not allowed on them, and only files carry capabilities."""
        if not self.rootless:
            os.chown(name, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
        if not m.issym():
            os.chmod(name, self._mode(m), dir_fd=dir_fd, follow_symlinks=False)
        os.utime(name, (m.mtime, m.mtime), dir_fd=dir_fd, follow_symlinks=False)

    def _xattrs(self, fd: int, m: tarfile.TarInfo) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if name.startswith("trusted.") or name.startswith("security.selinux"):
                continue  # trusted.overlay.* would steer overlayfs; labels are the LSM's business
            try:
                os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def finish(self, root_info: tarfile.TarInfo | None) -> None:
        """Directory owners, modes and times last: children change mtimes, and a 0555
        directory would refuse its own children when rootless. Depth first (a directory
        when the cursor leaves it, after all below it), reached with O_NOFOLLOW: a
        directory that a later entry replaced (by a symlink to the host, say) is skipped,
        never followed; one that is not the directory we made is left alone."""
        wanted = {tuple(d.rel.split("/")): d for d in self.dirs}  # the last entry of a name wins

        def leaving(fd: int, parts: list[str]) -> None:
            attrs = wanted.get(tuple(parts))
            if attrs is not None and _ident(fd) == attrs.ident:
                self._attrs_fd(fd, attrs.info)

        c = self.cursor
        for key in sorted(wanted):
            parts = list(key)
            keep = c.common(parts)
            while len(c.parts) > keep:
                c.up(leaving)
            for part in parts[keep:]:
                try:
                    sub = open_dir_at(c.fd, part)
                except OSError as exc:
                    if exc.errno not in _GONE:
                        raise
                    break  # no longer a directory: not ours to set
                c.down(part, sub)
        while c.parts:
            c.up(leaving)
        if root_info is not None:
            self._attrs_fd(self.root_fd, root_info)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def unpack_layer(stream: Reader, dest: Path, *, rootless: bool, budget: Budget | None = None) -> UnpackResult:
    """Extract the tar read from `stream` into the empty directory `dest`. Bytes, entries,
    depth and name lengths are charged to `budget` as they stream (default: Limits())."""
    budget = budget or Budget(Limits())
    root_fd = os.open(dest, DIR_FLAGS)
    ex = _Extractor(root_fd, rootless)
    count = 0
    root_info = None
    try:
        with tarfile.open(fileobj=cast(IO[bytes], budget.metered(stream)), mode="r|",
                          tarinfo=BoundedTarInfo) as tar:
            while (m := tar.next()) is not None:
                tar.members.clear()  # type: ignore[attr-defined]  # a stream TarFile keeps every TarInfo
                rel = _name(m.name)
                budget.charge_entry(rel, m.linkname)
                count += 1
                if not rel:
                    if m.isdir():
                        root_info = m
                    continue
                if posixpath.basename(rel).startswith(WH_PREFIX):
                    ex.whiteout(rel)
                else:
                    ex.entry(tar, m, rel, budget)
        ex.finish(root_info)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise StockadeError(f"layer is not a valid tar (truncated or corrupt): {exc}") from None
    except OSError as exc:
        raise StockadeError(f"layer cannot be unpacked: {exc}") from None
    finally:
        ex.close()
        os.close(root_fd)
    return UnpackResult(tuple(ex.whiteouts), tuple(ex.opaques), not rootless, count,
                        tuple(ex.privileged))
