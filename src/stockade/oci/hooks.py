"""OCI hooks: run with the container's state JSON on stdin (runtime-spec config.md).

prestart/createRuntime/createContainer run in the runtime's namespaces once the
container's root is built (stockade has no hook point between its namespaces and
pivot_root: documented), poststart after start, poststop at delete.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from stockade.errors import StockadeError
from stockade.oci.translate import Hook


class HookError(StockadeError):
    pass


def to_json(h: Hook) -> dict[str, Any]:
    return {"path": h.path, "args": list(h.args), "env": list(h.env), "timeout": h.timeout}


def from_json(d: dict[str, Any]) -> Hook:
    return Hook(d["path"], tuple(d["args"]), tuple(d["env"]), d.get("timeout"))


def run(kind: str, hooks: tuple[Hook, ...], state: dict[str, Any]) -> None:
    data = json.dumps(state).encode()
    for i, h in enumerate(hooks):
        env = dict(e.split("=", 1) for e in h.env if "=" in e)
        try:
            res = subprocess.run(list(h.args) or [h.path], executable=h.path, input=data,
                                 env=env, capture_output=True, timeout=h.timeout,
                                 check=False)
        except subprocess.TimeoutExpired as exc:
            raise HookError(f"hooks.{kind}[{i}] {h.path}: timed out after {h.timeout}s") from exc
        except OSError as exc:
            raise HookError(f"hooks.{kind}[{i}] {h.path}: {exc.strerror}") from exc
        if res.returncode != 0:
            err = res.stderr.decode(errors="replace").strip()
            raise HookError(f"hooks.{kind}[{i}] {h.path}: exit status {res.returncode}"
                            + (f": {err}" if err else ""))
