"""Idmapped mounts: host directories the payload writes, owned as the payload sees them.

Under `map: auto` the payload's root is host uid 2000000000+ (runner.idalloc): a bound
host directory owned by root shows as `nobody` inside and cannot be written (sqlite3:
"unable to open database file", git: "dubious ownership"). Chowning it on the host would
hand the directory to whatever id the next sandbox gets. Instead, as Docker and podman
do for `:idmap` volumes, the runner gives every writable host tree (filesystem.writable,
a writable --bind) and an image's root an idmapped mount (mount_setattr
MOUNT_ATTR_IDMAP) through a user namespace with the sandbox's own maps: a file owned by
host uid N shows as uid N inside, and what the payload's uid N creates is stored as
host uid N. The directory's owner on the host is the owner inside; nothing is chowned.

The kernel allows this only to a caller with CAP_SYS_ADMIN over the filesystem's
superblock (the host's root), on a detached tree, so the parent makes these trees
before the clone and the child only attaches them (Plan.premade). An image's overlayfs
root cannot be idmapped itself: it is rebuilt on idmapped layers (image_root). Rootless
runs, a filesystem without idmap support or an older kernel fall back to a plain bind,
with a note: files then show as their host owners (rootless: the invoker's files are
root's inside).

What the payload's root creates there is the host's root's on disk, and nosuid holds
inside only: runner.setid_guard keeps set-id bits and file capabilities out of it.
"""

from __future__ import annotations

import errno
import os

from stockade.linux.consts import (
    MOUNT_ATTR_IDMAP,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
)
from stockade.runner._record import frozen, replace
from stockade.runner.codes import runner_error
from stockade.runner.idmap import IdmapError, write_maps
from stockade.runner.plan import Plan, tree_key


class IdmountError(Exception):
    """An image's root that cannot be mounted at all."""


# Every run asks with_idmapped() and close(); only the root's runs with writable host trees
# make mounts. So the syscall wrappers (ctypes) are imported by the functions that mount,
# not here: this module is on every `stockade run`'s path.
_SAFE = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
_IDENTITY = (0, 0, 2**32 - 1)
_KERNEL_FS = ("/proc", "/sys", "/dev")  # no idmap support, and no files of anyone's


def wanted(plan: Plan) -> list[tuple[str, str]]:
    """(tree key, host path) of every tree to idmap: writable host binds, an image's root."""
    out: list[tuple[str, str]] = []
    root = plan.mounts[0]
    if root.src and not plan.host_root and plan.idmap_root:
        out.append(("/", root.src))
    for i, op in enumerate(plan.mounts):
        if op.kind in ("bind", "writable") and op.src and not op.readonly \
                and not any(op.src == k or op.src.startswith(k + "/") for k in _KERNEL_FS):
            out.append((tree_key(i), op.src))
    return out


def rootless(plan: Plan) -> bool:
    """Only the host's root can make idmapped mounts (through a map it writes itself)."""
    return os.geteuid() != 0 or plan.identity.helper != "direct"


def needs_mapping(plan: Plan) -> bool:
    """A user namespace whose maps are not the identity: host owners would not show."""
    ident = plan.identity
    return ident.userns and [(m.inside, m.outside, m.count) for m in ident.uid_map] != [_IDENTITY]


def with_idmapped(plan: Plan) -> tuple[Plan, tuple[str, ...]]:
    """The plan with its idmapped trees premade (the caller closes them with close()),
    and notes for what fell back to a plain bind. Root only; else nothing changes."""
    todo = wanted(plan)
    if not todo or not plan.identity.userns:
        return plan, ()
    if rootless(plan):
        return plan, (f"{', '.join(sorted({p for _, p in todo}))}: no idmapped mount "
                      "(rootless): files show as their host owners; the invoker's are "
                      "root's inside",)
    if not needs_mapping(plan):
        return plan, ()
    try:
        userns = mapping_userns(plan)
    except (OSError, IdmapError) as exc:
        return plan, (f"no idmapped mounts (a mapping user namespace: {exc}); writable "
                      "host paths show as their host owners",)
    made: list[tuple[str, int]] = []
    notes: list[str] = []
    try:
        for key, src in todo:
            readonly = key == "/" and plan.mounts[0].readonly
            layers = overlay_layers(src) if key == "/" else None
            if layers is not None:  # an image's overlayfs root: rebuilt on idmapped layers
                made.append(("/", image_root(layers, src, plan, userns, readonly, notes)))
                continue
            try:
                made.append((key, idmapped_tree(src, userns, readonly)))
            except OSError as exc:
                notes.append(f"{src}: no idmapped mount ({exc.strerror}): files show as "
                             "their host owners")
    except BaseException as exc:
        for _, fd in made:
            os.close(fd)
        if isinstance(exc, (OSError, IdmountError)):
            raise runner_error("rootfs", str(exc)) from exc
        raise
    finally:
        os.close(userns)
    return replace(plan, premade=(*plan.premade, *made)), tuple(notes)


@frozen
class Layers:
    """An overlayfs mount's layers: lower dirs (top first), upper and work dirs."""

    lower: tuple[str, ...]
    upper: str = ""
    work: str = ""


def overlay_layers(path: str) -> Layers | None:
    """The layers of the overlayfs mounted at `path` (the last mount there), or None."""
    found: Layers | None = None
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) < 5 or _unescape(fields[4]) != path:
                continue
            kind = right.split(" ", 2)
            if len(kind) < 3 or kind[0] != "overlay":
                found = None
                continue
            pairs = [o.partition("=")[::2] for o in kind[2].strip().split(",")]
            opts = dict(pairs)
            # lowerdir=A:B (mount(2)), or one lowerdir+=A per layer (fsconfig)
            lower = tuple(_unescape(p) for p in opts.get("lowerdir", "").split(":") if p) \
                + tuple(_unescape(v) for k, v in pairs if k == "lowerdir+")
            found = Layers(lower, _unescape(opts.get("upperdir", "")),
                           _unescape(opts.get("workdir", ""))) if lower else None
    return found


def _unescape(text: str) -> str:
    """mountinfo's octal escapes (\\040 for a space, ...)."""
    if "\\" not in text:
        return text
    return text.encode().decode("unicode_escape").encode("latin-1").decode()


def image_root(layers: Layers, merged: str, plan: Plan, userns: int, readonly: bool,
               notes: list[str]) -> int:
    """The image's root as a detached overlayfs over idmapped layers (Linux 5.19+): the
    image's root-owned files are root's inside, and copy-ups land in the upper layer as
    the ids the payload has inside. The overlay the store mounted at `merged` is detached
    first (two overlays on one upper dir are undefined); when the idmapped one cannot be
    made, the same overlay without idmapping stands in (with a note), else IdmountError."""
    from stockade.linux import syscalls as L  # ctypes: see _SAFE

    L.umount2(merged, L.MNT_DETACH)
    root = next((m for m in plan.identity.uid_map if m.inside == 0), None)
    groot = next((m for m in plan.identity.gid_map if m.inside == 0), None)
    try:
        if root is None or groot is None:
            raise OSError(22, "root is not mapped inside")
        return _overlay_in_helper(layers, userns, (root.outside, groot.outside), readonly)
    except OSError as exc:
        notes.append(f"the image's root: no idmapped layers ({exc.strerror}): its files "
                     "show as their host owners (root's as nobody)")
    try:
        return _overlay_in_helper(layers, -1, None, readonly)
    except OSError as exc:
        raise IdmountError(f"the image's root cannot be mounted: {exc.strerror}") from exc


def _overlay_in_helper(layers: Layers, userns: int, owner: tuple[int, int] | None,
                       readonly: bool) -> int:
    """fsmount() an overlayfs of `layers` in a forked helper with a private mount
    namespace, where each layer is replaced by its idmapped clone (userns >= 0); the
    helper acts as `owner` (overlayfs makes its work and copy-up files with the
    mounter's ids) and sends the detached mount back over a socketpair."""
    import socket

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the helper's exit status is the test
        status = 1
        try:
            parent.close()
            mnt = _helper_mount(layers, userns, owner, readonly)
            socket.send_fds(child, [b"o"], [mnt])
            status = 0
        finally:
            os._exit(status)
    child.close()
    try:
        _, fds, _, _ = socket.recv_fds(parent, 1, 1)
    finally:
        parent.close()
        os.waitpid(pid, 0)
    if len(fds) != 1:
        raise OSError(22, "the overlayfs helper failed")
    return fds[0]


def _helper_mount(layers: Layers, userns: int, owner: tuple[int, int] | None,
                  readonly: bool) -> int:
    from stockade.linux import syscalls as L  # ctypes: see _SAFE

    L.unshare(L.CLONE_NEWNS)
    L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
    if userns >= 0:
        upper_parent = [os.path.dirname(layers.upper)] if layers.upper else []
        for d in dict.fromkeys([*layers.lower, *upper_parent]):
            tree = idmapped_tree(d, userns, readonly=False)
            target = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                L.move_mount(tree, "", target, "",
                             L.MOVE_MOUNT_F_EMPTY_PATH | L.MOVE_MOUNT_T_EMPTY_PATH)
            finally:
                os.close(target)
                os.close(tree)
    if owner is not None:
        caps = L.capget()
        os.setegid(owner[1])  # the fsgid follows
        L.setfsuid(owner[0])
        L.capset(*caps)  # the fsuid change cleared the file capabilities
    fs = L.syscall("fsopen", b"overlay", L.FSOPEN_CLOEXEC)
    try:
        for low in layers.lower:  # one by one: an fsconfig string holds 256 bytes
            L.syscall("fsconfig", fs, L.FSCONFIG_SET_STRING, b"lowerdir+", os.fsencode(low), 0)
        if layers.upper and not readonly:
            for key, value in (("upperdir", layers.upper), ("workdir", layers.work)):
                L.syscall("fsconfig", fs, L.FSCONFIG_SET_STRING, key.encode(),
                          os.fsencode(value), 0)
        L.syscall("fsconfig", fs, L.FSCONFIG_CMD_CREATE, None, None, 0)
        return L.syscall("fsmount", fs, L.FSMOUNT_CLOEXEC,
                         _SAFE | (MOUNT_ATTR_RDONLY if readonly else 0))
    finally:
        os.close(fs)


def close(plan: Plan) -> None:
    for _, fd in plan.premade:
        try:  # noqa: SIM105 - no contextlib on the run path
            os.close(fd)
        except OSError:
            pass


def mapping_userns(plan: Plan) -> int:
    """An fd of a user namespace with the sandbox's maps (its process exits at once: the
    fd keeps the namespace). A fork that unshares: it never runs the sandbox, only holds
    the namespace until the maps are written."""
    from stockade.linux import syscalls as L  # ctypes: see _SAFE

    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
        raise
    if pid == 0:  # unshare, say so, wait for the maps, then go
        try:
            os.close(ready_r)
            os.close(go_w)
            L.unshare(L.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"u":
            raise OSError(errno.EPERM, "unshare(CLONE_NEWUSER) was refused")
        write_maps(pid, replace(plan.identity, setgroups="allow"))
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(go_w)
        os.waitpid(pid, 0)


def idmapped_tree(src: str, userns: int, readonly: bool) -> int:
    """A detached recursive clone of `src`, nosuid+nodev, idmapped through `userns`."""
    import ctypes  # see _SAFE
    import struct

    from stockade.linux import syscalls as L

    tree = L.open_tree(L.AT_FDCWD, src, L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC
                       | L.AT_RECURSIVE)
    try:
        attrs = MOUNT_ATTR_IDMAP | _SAFE | (MOUNT_ATTR_RDONLY if readonly else 0)
        arg = struct.pack("QQQQ", attrs, 0 if readonly else MOUNT_ATTR_RDONLY, 0, userns)
        buf = ctypes.create_string_buffer(arg, len(arg))
        L.syscall("mount_setattr", tree, b"", L.AT_EMPTY_PATH | L.AT_RECURSIVE, buf, len(arg))
    except OSError:
        os.close(tree)
        raise
    return tree
