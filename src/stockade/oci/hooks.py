"""OCI hooks: run with the container's state JSON on stdin (runtime-spec config.md).

prestart/createRuntime run in the runtime's namespaces and createContainer in the
container's (mount, network, ipc, uts, cgroup), all while the container's process waits
with its namespaces made and its root not yet built (before pivot_root), as the spec
orders; startContainer runs inside the container (executor/child.c), poststart
after start, poststop at delete.
"""

from __future__ import annotations

import os

from stockade.errors import StockadeError
from stockade.runner._record import frozen

TYPE_CHECKING = False  # not typing's: `oci create` loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from typing import Any


@frozen
class Hook:
    path: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    timeout: int | None


class HookError(StockadeError):
    pass


def to_json(h: Hook) -> dict[str, Any]:
    return {"path": h.path, "args": list(h.args), "env": list(h.env), "timeout": h.timeout}


def from_json(d: dict[str, Any]) -> Hook:
    return Hook(d["path"], tuple(d["args"]), tuple(d["env"]), d.get("timeout"))


# The namespaces a createContainer hook enters (the container's); not user (the hook
# keeps the runtime's credentials) and not pid (setns only moves children).
_ENTER = (("mnt", 0x00020000), ("net", 0x40000000), ("ipc", 0x08000000),
          ("uts", 0x04000000), ("cgroup", 0x02000000))


def _enter(pid: int) -> None:
    """In the forked hook, before exec: join the container's namespaces."""
    from stockade.linux import syscalls as L

    fds = [(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag)
           for name, flag in _ENTER]
    for fd, flag in fds:
        L.setns(fd, flag)
        os.close(fd)


def run(kind: str, hooks: tuple[Hook, ...], state: dict[str, Any],
        enter: int | None = None, keep_going: bool = False) -> None:
    """Run each hook in order; the first failure raises. enter: a pid whose namespaces
    the hooks run in (createContainer); the path still resolves as the runtime sees it,
    since the container's root is not built yet. keep_going (poststart, poststop: the
    spec says their failures are logged and the remaining hooks run): every hook runs,
    then one HookError names each that failed."""
    if not hooks:
        return
    import json

    data = json.dumps(state).encode()
    failed: list[str] = []
    for i, h in enumerate(hooks):
        try:
            _run_one(f"hooks.{kind}[{i}]", h, data, enter)
        except HookError as exc:
            if not keep_going:
                raise
            failed.append(exc.message)
    if failed:
        raise HookError("; ".join(failed))


def _run_one(where: str, h: Hook, data: bytes, enter: int | None) -> None:
    import subprocess

    env = dict(e.split("=", 1) for e in h.env if "=" in e)
    try:
        res = subprocess.run(list(h.args) or [h.path], executable=h.path, input=data,
                             env=env, capture_output=True, timeout=h.timeout,
                             check=False,
                             preexec_fn=None if enter is None else lambda: _enter(enter))
    except subprocess.TimeoutExpired as exc:
        raise HookError(f"{where} {h.path}: timed out after {h.timeout}s") from exc
    except OSError as exc:
        raise HookError(f"{where} {h.path}: {exc.strerror}") from exc
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip()
        raise HookError(f"{where} {h.path}: exit status {res.returncode}"
                        + (f": {err}" if err else ""))
