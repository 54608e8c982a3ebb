"""Container state on disk: `<root>/<id>/state` and `<root>/<id>/exec.fifo`.

The state outlives the runtime process: every command re-reads it and derives the
status from the kernel (is the pid alive, with the start time recorded at create, so a
reused pid is never mistaken for the container), as runc does. `exec.fifo` exists from
create until start: its presence is what "created" means.
"""

from __future__ import annotations

import marshal
import os

from stockade.errors import StockadeError
from stockade.runner.procstat import stat_fields

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/stockade-oci"
OCI_VERSION = "1.0.2"
# runc's rule (libcontainer/factory_linux.go): letters, digits, _ + - . ; not . or ..
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
FIFO = "exec.fifo"
STATE = "state"
FAST = "fast"  # what the compiled front end (oci/frontend.c) reads: see write_fast
SPEC_TAIL = "spec"  # `state`'s JSON after its "pid" line, for the front end's `state`


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
            data: dict[str, Any] = marshal.load(fh)
    except FileNotFoundError as exc:
        raise StateError(f"container {cid} does not exist") from exc
    except (OSError, ValueError, EOFError, TypeError) as exc:
        raise StateError(f"container {cid}: unreadable state ({exc})") from exc
    return data


def write(root: str, cid: str, data: dict[str, Any]) -> None:
    d = container_dir(root, cid)
    tmp = os.path.join(d, STATE + ".tmp")
    with open(tmp, "wb") as fh:
        marshal.dump(data, fh)
    os.replace(tmp, os.path.join(d, STATE))


def write_fast(root: str, cid: str, data: dict[str, Any]) -> None:
    """The created container, for the compiled front end's start/kill/delete: `key=value`
    lines (pid, starttime, hooks 0/1, one cgroup= per directory). Written once, when
    create has finished; anything it cannot express (a hook, an odd path) is "hooks=1"
    or no file at all, and the front end then hands the verb to this runtime."""
    dirs = [str(x) for x in data.get("cgroup_dirs", [])]
    if any("\n" in x or not x.startswith("/") for x in dirs):
        return
    hooks = data.get("start_hooks") or any(data.get("hooks", {}).values())
    lines = [f"pid={int(data['pid'])}", f"starttime={int(data.get('starttime') or 0)}",
             f"hooks={1 if hooks else 0}", *(f"cgroup={x}" for x in dirs)]
    if data.get("id_range"):  # its delete gives the pinned id range back: Python's
        lines.append("idrange=1")
    d = container_dir(root, cid)
    # `state` as printed below (json.dumps, indent 2) from its "bundle" line on: the front
    # end prints the id, status and pid itself, then this (fastexec.c writes the same).
    import json

    text = json.dumps(spec_state(root, cid, data, "stopped"), indent=2)
    tail = text[text.index('\n  "bundle": ') + 1:]
    for name, content in ((SPEC_TAIL, tail + "\n"), (FAST, "\n".join(lines) + "\n")):
        tmp = os.path.join(d, name + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(content)
        os.replace(tmp, os.path.join(d, name))


def status(root: str, cid: str, data: dict[str, Any]) -> str:
    pid = int(data.get("pid") or 0)
    if data.get("creating") or not pid:
        # A create in progress (its hooks may be asking): its own process is recorded.
        creator = int(data.get("creator") or 0)
        alive = creator and proc_starttime(creator) is not None
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
    # Only our own files live there; no shutil (it pulls in bz2 and lzma, ~2 ms a call).
    d = container_dir(root, cid)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return
    for name in names:
        try:  # noqa: SIM105 - no contextlib on the delete path (~2.5 ms to import)
            os.unlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
    try:  # noqa: SIM105
        os.rmdir(d)
    except FileNotFoundError:
        pass
