"""The copy fallback: apply layers one by one onto a plain directory, with the same result
overlayfs would show (whiteouts delete, opaque directories hide what is below, a layer's
entry replaces a lower one of another type). Never follows a symlink: the layers are
image content, and `lib -> /` must not make us write into the host."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from stockade.image.fsutil import force_rmtree
from stockade.image.store import LayerMeta


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        force_rmtree(Path(path))
    else:
        os.unlink(path)


class _Copier:
    def __init__(self, meta: LayerMeta, root: bool) -> None:
        self.root = root
        self.opaques = set(meta.opaques)
        self.whiteouts: dict[str, list[str]] = {}
        for w in meta.whiteouts:
            parent, _, name = w.rpartition("/")
            self.whiteouts.setdefault(parent, []).append(name)
        self.native = meta.native
        self.links: dict[tuple[int, int], str] = {}
        self.dirs: list[tuple[str, os.stat_result]] = []

    def attrs(self, dst: str, st: os.stat_result) -> None:
        if self.root:
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def enter_dir(self, rel: str, dst: str) -> None:
        if not os.path.isdir(dst) or os.path.islink(dst):
            _remove(dst)
            os.mkdir(dst, 0o700)
            return
        if not self.root:
            os.chmod(dst, 0o700)  # a lower layer's 0555 directory; its mode is set again last
        if rel in self.opaques:
            for name in os.listdir(dst):
                _remove(os.path.join(dst, name))
        for name in self.whiteouts.get(rel, ()):
            _remove(os.path.join(dst, name))

    def entry(self, src: str, dst: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if not stat.S_ISDIR(mode):
            _remove(dst)
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                os.link(self.links[key], dst)
                return
            shutil.copyfile(src, dst, follow_symlinks=False)
            self.links[key] = dst
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dst, mode, st.st_rdev)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(dst, 0o600)
        else:
            return  # sockets are not layer content
        self.attrs(dst, st)

    def walk(self, src_root: str, dst_root: str) -> None:
        """Parents before children, with an explicit stack: a layer can nest directories
        deeper than Python's recursion limit."""
        todo = [(src_root, dst_root, "")]
        while todo:
            src, dst, rel = todo.pop()
            self.enter_dir(rel, dst)
            with os.scandir(src) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                st = e.stat(follow_symlinks=False)
                child_rel = f"{rel}/{e.name}" if rel else e.name
                s, d = os.path.join(src, e.name), os.path.join(dst, e.name)
                if self.native and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    continue  # overlayfs whiteout marker, already applied by enter_dir
                if stat.S_ISDIR(st.st_mode):
                    todo.append((s, d, child_rel))
                    self.dirs.append((d, st))
                else:
                    self.entry(s, d, st)


def apply_layer(layer_root: Path, meta: LayerMeta, dest: Path) -> None:
    """Copy one unpacked layer over `dest` (the layers below it already applied)."""
    c = _Copier(meta, os.geteuid() == 0)
    c.walk(str(layer_root), str(dest))
    # modes last, children first: a 0555 directory refuses children when rootless
    for d, st in reversed(c.dirs):
        c.attrs(d, st)
    c.attrs(str(dest), os.lstat(layer_root))
