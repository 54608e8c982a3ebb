"""Container state on disk: `<root>/<id>/state.json` and `<root>/<id>/exec.fifo`.

The state outlives the runtime process: every command re-reads it and derives the
status from the kernel (is the pid alive, with the start time recorded at create, so a
reused pid is never mistaken for the container), as runc does. `exec.fifo` exists from
create until start: its presence is what "created" means.

`state.json` is one JSON object, as runc's: written whole and atomically (a temporary
file renamed over it) by this module and by the compiled front end (oci/fastexec.c,
json-c), read by both (frontend.c answers start, kill, delete and state from it).
Its keys (docs/EXECUTOR.md, "State"): id, pid, creator, creating, bundle, rootfs,
created, owner, annotations, cgroup_dirs, cgroup_pending, start_hooks, hooks,
starttime (once created), id_range (a pinned id range, if any), creator_starttime (the
creator's start time, while creating only: delete --force of a create in progress
signals the creator only if it is still that process).
"""

from __future__ import annotations

import json
import os

from stockade.errors import StockadeError
from stockade.runner.procstat import stat_fields

TYPE_CHECKING = False  # typing is not imported on the lifecycle verbs' path
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/stockade-oci"
OCI_VERSION = "1.0.2"
# runc's rule (libcontainer/factory_linux.go): letters, digits, _ + - . ; not . or ..
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
FIFO = "exec.fifo"
STATE = "state.json"
# Dropped by delete --force before it ends a create in progress: tells the creator why.
DELETING = "deleting"


class StateError(StockadeError):
    pass


MAX_ID = 255  # NAME_MAX: the id names a directory here and in cgroupfs


def check_id(cid: str) -> str:
    """runc's rule (^[\\w+-.]+$, not . or ..), plus: at most NAME_MAX characters (runc
    fails on the mkdir then) and no leading "." (the root's own entries, e.g. .fast)."""
    if not 0 < len(cid) <= MAX_ID or not _ID_CHARS.issuperset(cid) or cid.startswith("."):
        shown = cid if len(cid) <= 40 else f"{cid[:40]}... ({len(cid)} characters)"
        raise StateError(f"invalid container id {shown!r}: use 1 to {MAX_ID} letters, "
                         "digits, _ + - . (not starting with .)")
    return cid


def container_dir(root: str, cid: str) -> str:
    return os.path.join(root, check_id(cid))


def proc_starttime(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks, state letter) of pid, None if there is no such pid."""
    rest = stat_fields(pid)
    return None if rest is None else (int(rest[19]), rest[0].decode())


def read(root: str, cid: str) -> dict[str, Any]:
    path = os.path.join(container_dir(root, cid), STATE)
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except FileNotFoundError as exc:
        raise StateError(f"container {cid} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise StateError(f"container {cid}: unreadable state ({exc})") from exc
    if not isinstance(data, dict):
        raise StateError(f"container {cid}: unreadable state (not a JSON object)")
    for key, kind in _TYPES.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, kind) or
                                  (kind is int and isinstance(value, bool))):
            raise StateError(f"container {cid}: unreadable state ({key}: "
                             f"{_TYPE_NAMES[kind]} expected, found {value!r:.40})")
    return data


# The keys the lifecycle verbs compute with, and their types (others are only shown).
_TYPES: dict[str, type] = {
    "pid": int, "creator": int, "creator_starttime": int, "starttime": int, "creating": bool,
    "start_hooks": bool,
    "bundle": str, "rootfs": str, "created": str, "owner": str, "annotations": dict,
    "cgroup_dirs": list, "cgroup_pending": list, "hooks": dict, "id_range": dict,
}
_TYPE_NAMES = {int: "an integer", bool: "true or false", str: "a string", dict: "an object",
               list: "a list"}


def write(root: str, cid: str, data: dict[str, Any], dir_fd: int | None = None) -> None:
    """The state, whole: a reader sees the old or the new one, never a part. dir_fd: the
    container's directory, held open by its create: once delete has removed it, the write
    fails (FileNotFoundError: no file can be made in a removed directory) instead of
    landing in a directory of that name made since, and no directory is ever re-made."""
    d = container_dir(root, cid) if dir_fd is None else ""
    tmp = os.path.join(d, STATE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644,
                 dir_fd=dir_fd)
    with open(fd, "w") as fh:
        fh.write(json.dumps(data))
    os.replace(tmp, os.path.join(d, STATE), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def status(root: str, cid: str, data: dict[str, Any]) -> str:
    pid = int(data.get("pid") or 0)
    if data.get("creating") or not pid:
        # A create in progress (its hooks may be asking): its own process is recorded.
        creator = int(data.get("creator") or 0)
        found = proc_starttime(creator) if creator else None
        recorded = data.get("creator_starttime")  # absent from states of older versions
        alive = found is not None and recorded in (None, found[0]) and found[1] not in "ZX"
        return "creating" if alive else "stopped"
    st = proc_starttime(pid)
    if st is None or st[0] != data.get("starttime") or st[1] in ("Z", "X"):
        return "stopped"
    if os.path.exists(os.path.join(container_dir(root, cid), FIFO)):
        return "created"
    dirs = data.get("cgroup_dirs") or []
    if dirs:
        from stockade.runner.cgroupfs import is_frozen

        if any(is_frozen(str(d)) for d in dirs):
            return "paused"
    return "running"


def spec_state(root: str, cid: str, data: dict[str, Any], status_: str | None = None) -> dict[str, Any]:
    """The runtime spec's state (plus runc's extra keys: rootfs, created, owner)."""
    st = status_ or status(root, cid, data)
    out: dict[str, Any] = {
        "ociVersion": OCI_VERSION, "id": cid, "status": st,
        "pid": int(data.get("pid") or 0) if st in ("created", "running", "paused") else 0,
        "bundle": data.get("bundle", ""), "rootfs": data.get("rootfs", ""),
        "created": data.get("created", ""), "owner": data.get("owner", ""),
    }
    if data.get("annotations"):
        out["annotations"] = data["annotations"]
    return out


class locked:  # noqa: N801 - used as a context manager: `with locked(root, cid):`
    """An exclusive flock on the container's directory: start, kill and delete of one
    container are serialised (two concurrent starts must not both see "created")."""

    def __init__(self, root: str, cid: str) -> None:
        self.path = container_dir(root, cid)
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise StateError(f"container {os.path.basename(self.path)} does not exist") from exc
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing drops the lock


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, STATE))]


def remove(root: str, cid: str) -> None:
    # Only our own files live there; no shutil (it pulls in bz2 and lzma on every delete).
    d = container_dir(root, cid)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return
    for name in names:
        try:  # noqa: SIM105 - contextlib is not imported on the delete path
            os.unlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
    try:  # noqa: SIM105
        os.rmdir(d)
    except FileNotFoundError:
        pass
