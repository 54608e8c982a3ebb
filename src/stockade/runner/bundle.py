"""`--bundle DIR`: take the rootfs, command, env, cwd and hostname from an OCI bundle's
config.json. The policy still decides everything about confinement: the bundle's own
namespaces, capabilities, seccomp and mounts are ignored (use `stockade oci` for those).
"""

from __future__ import annotations

import os

from stockade.runner._record import frozen
from stockade.runner.codes import runner_error


@frozen
class Bundle:
    rootfs: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str
    hostname: str | None


def read_bundle(path: str) -> Bundle:
    import json

    cfg_path = os.path.join(path, "config.json")
    try:
        with open(cfg_path) as fh:
            cfg = json.load(fh)
    except (OSError, ValueError) as exc:
        raise runner_error("preflight", f"bundle {path}: cannot read config.json: {exc}") from exc
    try:
        root = cfg["root"]["path"]
        proc = cfg.get("process", {})
        args = tuple(str(a) for a in proc.get("args", ()))
        env = tuple(tuple(e.split("=", 1)) for e in proc.get("env", ()) if "=" in e)
        cwd = str(proc.get("cwd", "/"))
        hostname = cfg.get("hostname")
    except (KeyError, TypeError, AttributeError) as exc:
        raise runner_error("preflight", f"bundle {path}: config.json lacks {exc}") from exc
    rootfs = root if os.path.isabs(root) else os.path.join(path, root)
    return Bundle(rootfs, args, env, cwd, hostname)
