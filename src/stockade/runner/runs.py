"""Records of the running `stockade run` sandboxes, for `stockade audit --all/--stockade`.

One directory per sandbox, <state dir>/run/<run id>/state.json ($STOCKADE_STATE_DIR,
default /run/stockade, like runner.idalloc; rootless: $XDG_RUNTIME_DIR/stockade), written
by the runner once its init exists and removed when the sandbox has ended. It names the
init's host pid and its start time (field 22 of /proc/PID/stat): a record whose process
is gone, or whose pid now belongs to another process (its start time differs), is stale
(a SIGKILLed runner): readers ignore it and the next runner removes it.
"""

from __future__ import annotations

import json
import os

from stockade.runner.procstat import start_time

TYPE_CHECKING = False  # not typing's: the run path loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from stockade.runner.plan import Plan

RUNTIME = "stockade-run"


def runs_dir(env: dict[str, str] | None = None) -> str | None:
    env = dict(os.environ) if env is None else env
    if os.geteuid() == 0:
        base = env.get("STOCKADE_STATE_DIR") or "/run/stockade"
    elif env.get("XDG_RUNTIME_DIR"):
        base = os.path.join(env["XDG_RUNTIME_DIR"], "stockade")
    else:
        return None
    return os.path.join(base, "run")


def record(run_id: str, pid: int, plan: Plan, directory: str | None = None) -> str | None:
    """Write the record of a started sandbox; its directory (for remove()), or None when
    there is nowhere to write it (the run goes on: the record only serves the audit)."""
    directory = directory or runs_dir()
    if directory is None:
        return None
    started = start_time(pid)
    state = {
        "id": run_id, "runtime": RUNTIME, "pid": pid, "start_time": started,
        "policy": plan.policy.name, "digest": plan.policy.digest,
        "rootfs": "" if plan.jail else plan.rootfs, "view": "jail" if plan.jail else
        "host root" if plan.host_root else "directory", "command": list(plan.argv),
    }
    path = os.path.join(directory, run_id)
    try:
        os.makedirs(directory, mode=0o711, exist_ok=True)
        clean_stale(directory)
        os.mkdir(path, 0o700)
        tmp = os.path.join(path, ".state.json")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(state).encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(path, "state.json"))
    except OSError:
        _remove_tree(path)
        return None
    return path


def remove(path: str | None) -> None:
    """Remove a record written by record(): its directory holds state.json alone."""
    if path is None:
        return
    try:
        os.unlink(os.path.join(path, "state.json"))
        os.rmdir(path)
    except OSError:  # not what record() left: remove whatever is there
        _remove_tree(path)


def _remove_tree(path: str) -> None:
    import shutil  # only here: remove() of a whole record needs none

    shutil.rmtree(path, ignore_errors=True)


def read(path: str) -> dict[str, object] | None:
    """A live record (its process still the one recorded), else None."""
    try:
        with open(os.path.join(path, "state.json")) as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or pid <= 0 or start_time(pid) != state.get("start_time"):
        return None
    return state


def live(directory: str | None = None) -> list[dict[str, object]]:
    """Every running sandbox's record, stale ones left out."""
    directory = directory or runs_dir()
    if directory is None:
        return []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = (read(os.path.join(directory, n)) for n in names)
    return [s for s in found if s is not None]


def clean_stale(directory: str) -> None:
    """Remove the records whose sandbox is gone (their runner was killed)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        if os.path.exists(os.path.join(path, "state.json")) and read(path) is None:
            _remove_tree(path)
