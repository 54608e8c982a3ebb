"""Build the new root with the fd-based mount API, then pivot_root into it.

Runs in the init process (PID 1 of the new pid namespace, root of the new user
namespace), before the payload exists. Every destination is resolved with
openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) against the new root's fd, so a
symlink in an attacker-controlled rootfs can never point a mount outside of it.
Mount attributes are set on detached trees before they are attached: there is no
window where a bind is writable or suid.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import suppress

from stockade.linux import syscalls as L
from stockade.runner.plan import DEV_NODES, MountOp, Plan

STAGING = "/tmp"  # where the new root is attached (in our private mount ns) before pivot
_SAFE = L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NODEV
_RESOLVE = L.RESOLVE_IN_ROOT | L.RESOLVE_NO_MAGICLINKS


class RootfsError(Exception):
    pass


def _clone_tree(path: str, recursive: bool = True, dfd: int = L.AT_FDCWD) -> int:
    flags = L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC | (L.AT_RECURSIVE if recursive else 0)
    if dfd != L.AT_FDCWD:
        flags |= L.AT_EMPTY_PATH
    return L.open_tree(dfd, path, flags)


def _setattr(tree: int, attr_set: int, attr_clr: int = 0, recursive: bool = True) -> None:
    L.mount_setattr(tree, "", L.AT_EMPTY_PATH | (L.AT_RECURSIVE if recursive else 0),
                    attr_set, attr_clr)


def _attach(tree: int, target_fd: int) -> None:
    try:
        L.move_mount(tree, "", target_fd, "", L.MOVE_MOUNT_F_EMPTY_PATH | L.MOVE_MOUNT_T_EMPTY_PATH)
    finally:
        os.close(tree)


def resolve(root: int, path: str, *, create: str | None = None) -> int | None:
    """O_PATH fd of `path` inside the new root (symlinks cannot leave it).

    create: None (missing -> None), "dir" or "file" (mkdir -p / touch inside the root).
    """
    rel = path.lstrip("/") or "."
    try:
        return L.openat2(root, rel, os.O_PATH, _RESOLVE)
    except FileNotFoundError:
        if create is None:
            return None
    parent_rel, _, name = rel.rpartition("/")
    parent = resolve(root, "/" + parent_rel, create="dir") if parent_rel else os.dup(root)
    if parent is None:
        return None
    try:
        if create == "dir":
            os.mkdir(name, 0o755, dir_fd=parent)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                             0o644, dir_fd=parent))
    except FileExistsError:
        pass
    except OSError as exc:
        raise RootfsError(f"cannot create mountpoint {path}: {exc.strerror}") from exc
    finally:
        os.close(parent)
    try:
        return L.openat2(root, rel, os.O_PATH, _RESOLVE)
    except OSError as exc:
        raise RootfsError(f"mountpoint {path} cannot be resolved inside the root "
                          f"(a dangling symlink?): {exc.strerror}") from exc


def _target(root: int, op: MountOp, kind: str) -> int | None:
    fd = resolve(root, op.dst, create=None if op.optional else kind)
    if fd is None and not op.optional:
        raise RootfsError(f"mountpoint {op.dst} does not exist in the new root")
    return fd


def _is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def prepare_mountpoints(plan: Plan) -> None:
    """In the parent, with the invoker's credentials: create the mountpoints a bare
    rootfs directory lacks (like runc). Resolved inside the rootfs, never through it."""
    if plan.host_root:
        return
    root = os.open(plan.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    fresh: list[str] = []  # fresh filesystems: what lies below them is made inside them
    try:
        for op in plan.mounts[1:]:
            if any(op.dst.startswith(f.rstrip("/") + "/") for f in fresh):
                continue
            if op.kind in ("dev", "tmpfs", "fs"):
                fresh.append(op.dst)
            if not op.optional and op.kind in ("proc", "dev", "sysfs", "tmpfs", "bind",
                                               "writable", "fs"):
                kind = "file" if op.kind == "bind" and not os.path.isdir(op.src) else "dir"
                if op.kind == "writable" and not op.src:
                    continue  # re-bound in place: it must exist, it is not created
                fd = resolve(root, op.dst, create=kind)
                if fd is not None:
                    os.close(fd)
    finally:
        os.close(root)


def tree_key(index: int) -> str:
    """The key of plan.mounts[index]'s source tree in open_sources' dict: one tree per
    mount (two binds of one source, or a source that is also a /dev node, each get
    their own clone)."""
    return f"mount {index}"


def open_sources(plan: Plan) -> dict[str, int]:
    """Clone every host-side source tree while the host tree is still visible.

    First every mount of this (new) namespace turns slave: a clone of a shared mount
    (every Docker overlay is one) would otherwise stay in its host peer group, and what
    is mounted on it would propagate back to the host (rslave, runc's default; the OCI
    rootfsPropagation is applied after pivot_root)."""
    L.mount(None, "/", None, L.MS_REC | L.MS_SLAVE)
    trees: dict[str, int] = dict(plan.premade)  # the parent's (idmapped) trees
    root_op = plan.mounts[0]
    try:
        if root_op.src and "/" not in trees:  # else the jail: a tmpfs made by build()
            trees["/"] = _clone_tree(root_op.src, recursive=True)
        if "/" in trees:
            # nosuid+nodev everywhere below the root; read-only when the policy says so.
            # Set on the detached tree, before anyone can see it.
            _setattr(trees["/"], _SAFE | (L.MOUNT_ATTR_RDONLY if root_op.readonly
                                          and plan.host_root else 0))
        for i, op in enumerate(plan.mounts):
            if op.kind in ("bind", "writable") and op.src and tree_key(i) not in trees:
                trees[tree_key(i)] = _clone_tree(op.src, recursive=True)
            if op.kind == "dev" and plan.identity.userns:
                # A user namespace cannot mknod: the OCI linux.devices are the host's
                # nodes at the same paths, bound (runc's way).
                for name, _ in op.data:
                    trees["device " + name] = _clone_tree("/dev/" + name, recursive=False)
        for node in DEV_NODES:
            trees["/dev/" + node] = _clone_tree("/dev/" + node, recursive=False)
    except OSError as exc:
        for fd in trees.values():
            os.close(fd)
        raise RootfsError(f"cannot open a source tree: {exc.strerror} "
                          f"({exc.filename or ''})") from exc
    return trees


def build(plan: Plan, trees: dict[str, int]) -> None:
    """Attach the new root at STAGING, mount everything into it, pivot, detach the old root."""
    # Nothing we do here propagates back to the host: open_sources made the namespace
    # rslave before cloning anything.
    staging = os.open(STAGING, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    # The jail's root: a fresh tmpfs, made now (after the id maps) so that it belongs to
    # root inside, who makes its mountpoints; read-only once they are all made.
    _attach(trees.pop("/") if "/" in trees else L.fsmount_new("tmpfs", {"mode": "0755"}, _SAFE),
            staging)
    os.close(staging)
    root = os.open(STAGING, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        root_op = plan.mounts[0]
        if not plan.host_root and root_op.readonly:
            L.mount_setattr(root, "", L.AT_EMPTY_PATH | L.AT_RECURSIVE, L.MOUNT_ATTR_RDONLY)
        empty: list[int] = []  # the first masking tmpfs (attached), cloned for the others
        for i, op in enumerate(plan.mounts):
            if i:
                try:
                    _apply(root, op, trees.pop(tree_key(i), -1), trees, empty)
                except OSError as exc:  # name the mount: the bare errno tells a user nothing
                    origin = f" ({op.why})" if op.why else ""
                    raise RootfsError(f"mounting {op.kind} at {op.dst}{origin}: "
                                      f"{exc.strerror or exc}") from exc
        for fd in empty:
            os.close(fd)
        if plan.jail and root_op.readonly:  # the root tmpfs only: not /tmp, not the binds
            L.mount_setattr(root, "", L.AT_EMPTY_PATH, L.MOUNT_ATTR_RDONLY)
        os.fchdir(root)
    finally:
        os.close(root)
        for fd in trees.values():
            os.close(fd)
    # pivot_root(".", "."): the old root ends up stacked on the new one and is detached
    # at once; no directory of the host stays reachable (runc's approach). Its detach
    # must not propagate: rslave first, on the old root's tree only (through an fd of
    # it: "." would name the new root and undo the mounts' own propagation options).
    old_root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        L.pivot_root(".", ".")
        os.fchdir(old_root)
        L.mount(None, ".", None, L.MS_REC | L.MS_SLAVE)
        L.umount2(".", L.MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")
    # OCI rootfsPropagation, on the new root (runc's order: after pivot_root). Every
    # mount here is a slave of the host's or private already, so even (r)shared only
    # shares within the container: nothing mounted here ever reaches the host.
    if plan.propagation != "rslave":
        L.mount(None, "/", None, L.PROPAGATION[plan.propagation])


def _apply(root: int, op: MountOp, source: int, trees: dict[str, int],
           empty: list[int]) -> None:
    """source: the op's own clone of its host tree (binds), else -1."""
    if op.kind in ("symlink", "file"):  # the jail's /bin -> usr/bin, its /etc/hosts
        _make(root, op)
    elif op.kind == "proc":
        os.close(_fresh(root, op, "proc", {}, _SAFE | L.MOUNT_ATTR_NOEXEC))
    elif op.kind == "sysfs":
        os.close(_fresh(root, op, "sysfs", {}, _SAFE | L.MOUNT_ATTR_NOEXEC | L.MOUNT_ATTR_RDONLY))
    elif op.kind == "tmpfs":
        # data: the SELinux context= of the policy's writable type, when it has one
        os.close(_fresh(root, op, "tmpfs", {"mode": "1777", **dict(op.data)}, _SAFE))
    elif op.kind == "dev":
        _dev(root, op, trees)
    elif op.kind == "fs":
        os.close(_fresh(root, op, op.fstype, dict(op.data), _SAFE | op.attrs))
    elif op.kind == "writable" and not op.src:
        target = _target(root, op, "dir")
        assert target is not None
        try:
            tree = L.open_tree(target, "", L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC
                               | L.AT_EMPTY_PATH | L.AT_RECURSIVE)
            _setattr(tree, _SAFE, L.MOUNT_ATTR_RDONLY)
            _attach(tree, target)
        finally:
            os.close(target)
    elif op.kind in ("bind", "writable"):
        tree = source
        attrs = _SAFE | (L.MOUNT_ATTR_RDONLY if op.readonly else 0)
        _setattr(tree, attrs, 0 if op.readonly else L.MOUNT_ATTR_RDONLY)
        _propagate(tree, op)
        target = _target(root, op, "dir" if _is_dir(tree) else "file")
        assert target is not None
        try:
            _attach(tree, target)
        finally:
            os.close(target)
    elif op.kind == "readonly":
        target = _target(root, op, "dir")
        if target is None:
            return
        try:
            tree = L.open_tree(target, "", L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC
                               | L.AT_EMPTY_PATH | L.AT_RECURSIVE)
            _setattr(tree, _SAFE | L.MOUNT_ATTR_RDONLY)
            _attach(tree, target)
        finally:
            os.close(target)
    elif op.kind == "mask":
        _mask(root, op, empty)
    else:
        raise RootfsError(f"unknown mount kind {op.kind}")


def _make(root: int, op: MountOp) -> None:
    """A symlink (to op.src) or a file (op.data's content) in the jail's own tmpfs."""
    parent = resolve(root, os.path.dirname(op.dst), create="dir")
    if parent is None:
        raise RootfsError(f"cannot make {op.dst}: its directory cannot be made")
    name = os.path.basename(op.dst)
    try:
        if op.kind == "symlink":
            os.symlink(op.src, name, dir_fd=parent)
            return
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644, dir_fd=parent)
        try:
            os.write(fd, str(dict(op.data)["content"]).encode())
        finally:
            os.close(fd)
    finally:
        os.close(parent)


def _fresh(root: int, op: MountOp, fstype: str, options: dict[str, str | None],
           attrs: int) -> int:
    target = _target(root, op, "dir")
    assert target is not None
    try:
        tree = L.fsmount_new(fstype, options, attrs, op.source)
        _propagate(tree, op)
        dup = os.dup(tree)
        _attach(tree, target)
        return dup
    finally:
        os.close(target)


def _propagate(tree: int, op: MountOp) -> None:
    """The mount's OCI propagation option, set on its detached tree (never on the host's:
    the tree is a clone, a slave at most)."""
    if op.propagation:
        flags = L.AT_EMPTY_PATH | (L.AT_RECURSIVE if op.propagation & L.MS_REC else 0)
        L.mount_setattr(tree, "", flags, 0, 0, op.propagation & ~L.MS_REC)


def _mask(root: int, op: MountOp, empty: list[int]) -> None:
    target = _target(root, op, "dir")
    if target is None:
        return  # nothing there, nothing to hide
    try:
        if _is_dir(target):
            # One empty read-only tmpfs for every masked directory: the first is mounted
            # fresh, the others are clones of it (cheaper than a superblock each). The
            # template is always attached before its fd is closed: closing a detached
            # mount unmounts it, which waits for an expedited RCU grace period.
            if not empty:
                tree = L.fsmount_new("tmpfs", {"mode": "0555", "size": "4096"},
                                     _SAFE | L.MOUNT_ATTR_NOEXEC | L.MOUNT_ATTR_RDONLY)
                empty.append(os.dup(tree))
            else:
                tree = L.open_tree(empty[0], "", L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC
                                   | L.AT_EMPTY_PATH)
        else:
            null = resolve(root, "/dev/null")
            if null is None:
                raise RootfsError("/dev/null is missing in the new root")
            try:
                tree = L.open_tree(null, "", L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC
                                   | L.AT_EMPTY_PATH)
            finally:
                os.close(null)
        _attach(tree, target)
    finally:
        os.close(target)


def _device(dev: int, name: str, spec: str, tree: int) -> None:
    """One OCI linux.devices node in the new /dev: made (mknod) with its mode and owner,
    or, with `tree` (a user namespace), the host's node bound onto an empty file."""
    kind, major, minor, mode, uid, gid = spec.split()
    parent_rel, _, base = name.rpartition("/")
    parent = os.dup(dev)
    try:
        for part in parent_rel.split("/") if parent_rel else ():
            with suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=parent)
            sub = L.openat2(parent, part, os.O_PATH | os.O_DIRECTORY,
                            L.RESOLVE_BENEATH | L.RESOLVE_NO_SYMLINKS)
            os.close(parent)
            parent = sub
        if tree >= 0:
            os.close(os.open(base, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                             0o644, dir_fd=parent))
            target = L.openat2(parent, base, os.O_PATH,
                               L.RESOLVE_BENEATH | L.RESOLVE_NO_SYMLINKS)
            try:
                _setattr(tree, L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NOEXEC, recursive=False)
                _attach(tree, target)
            finally:
                os.close(target)
            return
        fmt = {"c": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]
        os.mknod(base, fmt | 0o600, os.makedev(int(major), int(minor)), dir_fd=parent)
        os.chown(base, int(uid), int(gid), dir_fd=parent, follow_symlinks=False)
        os.chmod(base, int(mode), dir_fd=parent)  # after mknod: the umask is not applied
    except OSError as exc:
        raise RootfsError(f"linux.devices /dev/{name}: {exc.strerror}") from exc
    finally:
        os.close(parent)


def _dev(root: int, op: MountOp, trees: dict[str, int]) -> None:
    dev = _fresh(root, op, "tmpfs", {"mode": "0755", "size": "65536"},
                 L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NOEXEC)
    try:
        for node in DEV_NODES:
            fd = os.open(node, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dev)
            os.close(fd)
            target = L.openat2(dev, node, os.O_PATH, L.RESOLVE_BENEATH | L.RESOLVE_NO_SYMLINKS)
            tree = trees.pop("/dev/" + node)
            try:
                _setattr(tree, L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NOEXEC, recursive=False)
                _attach(tree, target)
            finally:
                os.close(target)
        for name, spec in op.data:
            _device(dev, name, str(spec), trees.pop("device " + name, -1))
        # mqueue: an empty mountpoint for an OCI bundle's /dev/mqueue (this /dev turns
        # read-only below, so it cannot be created later).
        for name, mode in (("pts", 0o755), ("shm", 0o1777), ("mqueue", 0o755)):
            os.mkdir(name, mode, dir_fd=dev)
        pts = L.openat2(dev, "pts", os.O_PATH, L.RESOLVE_BENEATH | L.RESOLVE_NO_SYMLINKS)
        try:
            _attach(L.fsmount_new("devpts", {"newinstance": None, "ptmxmode": "0666",
                                             "mode": "0620"},
                                  L.MOUNT_ATTR_NOSUID | L.MOUNT_ATTR_NOEXEC), pts)
        finally:
            os.close(pts)
        shm = L.openat2(dev, "shm", os.O_PATH, L.RESOLVE_BENEATH | L.RESOLVE_NO_SYMLINKS)
        try:
            # "shm": the source name runc's and Docker's specs give /dev/shm.
            _attach(L.fsmount_new("tmpfs", {"mode": "1777"}, _SAFE | L.MOUNT_ATTR_NOEXEC,
                                  "shm"), shm)
        finally:
            os.close(shm)
        for name, dest in (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"),
                           ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                           ("stderr", "/proc/self/fd/2")):
            os.symlink(dest, name, dir_fd=dev)
        # No new files in /dev once it is populated (writes to the nodes still work).
        L.mount_setattr(dev, "", L.AT_EMPTY_PATH, L.MOUNT_ATTR_RDONLY)
    except OSError as exc:
        if exc.errno == errno.ENOENT and exc.filename is None:
            raise RootfsError(f"/dev: {exc.strerror}") from exc
        raise
    finally:
        os.close(dev)
