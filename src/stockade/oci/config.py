"""Read and validate a bundle's config.json (runtime-spec 1.x) at the input edge.

Every field stockade does not implement is an error naming it (`linux.intelRdt`): a
runtime that ignores part of its config runs a container weaker than the one asked for.
`null` counts as absent. Values are checked for type here; their meaning is checked
where they are translated (stockade.oci.translate).
"""

from __future__ import annotations

import os

from stockade.errors import StockadeError

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms
if TYPE_CHECKING:
    from typing import Any

SUPPORTED_MAJOR = 1
_ANY = None  # a leaf: any value (its type is checked by the translator)

# The fields stockade implements, as a tree. A dict is an object with these keys; "*"
# marks a list whose items are objects with the given keys.
_HOOK = {"*": {"path": _ANY, "args": _ANY, "env": _ANY, "timeout": _ANY}}
KNOWN: dict[str, Any] = {
    "ociVersion": _ANY,
    "root": {"path": _ANY, "readonly": _ANY},
    "hostname": _ANY,
    "annotations": _ANY,  # metadata for engines, no effect on the container (spec)
    "process": {
        "terminal": _ANY, "consoleSize": {"height": _ANY, "width": _ANY},
        "user": {"uid": _ANY, "gid": _ANY, "additionalGids": _ANY, "umask": _ANY},
        "args": _ANY, "env": _ANY, "cwd": _ANY,
        "capabilities": {"bounding": _ANY, "effective": _ANY, "inheritable": _ANY,
                         "permitted": _ANY, "ambient": _ANY},
        "rlimits": {"*": {"type": _ANY, "soft": _ANY, "hard": _ANY}},
        "noNewPrivileges": _ANY, "apparmorProfile": _ANY, "selinuxLabel": _ANY,
        "oomScoreAdj": _ANY,
    },
    "mounts": {"*": {"destination": _ANY, "type": _ANY, "source": _ANY, "options": _ANY}},
    "hooks": {k: _HOOK for k in ("prestart", "createRuntime", "createContainer",
                                 "startContainer", "poststart", "poststop")},
    "linux": {
        "namespaces": {"*": {"type": _ANY, "path": _ANY}},
        "uidMappings": {"*": {"containerID": _ANY, "hostID": _ANY, "size": _ANY}},
        "gidMappings": {"*": {"containerID": _ANY, "hostID": _ANY, "size": _ANY}},
        "devices": {"*": {"path": _ANY, "type": _ANY, "major": _ANY, "minor": _ANY,
                          "fileMode": _ANY, "uid": _ANY, "gid": _ANY}},
        "resources": {
            "devices": {"*": {"allow": _ANY, "type": _ANY, "major": _ANY, "minor": _ANY,
                              "access": _ANY}},
            "memory": {"limit": _ANY, "swap": _ANY},
            "cpu": {"shares": _ANY, "quota": _ANY, "period": _ANY},
            "pids": {"limit": _ANY},
        },
        "cgroupsPath": _ANY,
        "sysctl": _ANY,
        "maskedPaths": _ANY,
        "readonlyPaths": _ANY,
        "rootfsPropagation": _ANY,
        "seccomp": {"defaultAction": _ANY, "defaultErrnoRet": _ANY, "architectures": _ANY,
                    "flags": _ANY,
                    "syscalls": {"*": {"names": _ANY, "action": _ANY, "errnoRet": _ANY,
                                       "args": {"*": {"index": _ANY, "value": _ANY,
                                                      "valueTwo": _ANY, "op": _ANY}}}}},
    },
}
# Fields engines fill in with a value that asks for nothing: accepted when empty.
_EMPTY_OK = {"linux.resources.cpu.cpus", "linux.resources.cpu.mems", "linux.mountLabel",
             "linux.resources.blockIO", "linux.resources.hugepageLimits",
             "linux.resources.network", "linux.resources.rdma", "linux.resources.unified"}


class ConfigError(StockadeError):
    """config.json asks for something wrong or unsupported (exit status 2)."""


def load(bundle: str) -> dict[str, Any]:
    path = os.path.join(bundle, "config.json")
    from stockade.oci.jsonfast import loads

    try:
        with open(path, encoding="utf-8") as fh:
            cfg = loads(fh.read())
    except FileNotFoundError as exc:
        raise ConfigError(f"bundle {bundle}: no config.json") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    validate(cfg)
    return strip_nulls(cfg)


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def validate(cfg: object) -> None:
    if not isinstance(cfg, dict):
        raise ConfigError("config.json: the top level must be an object")
    version = cfg.get("ociVersion")
    if not isinstance(version, str) or not version:
        raise ConfigError("config.json: ociVersion is missing")
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) != SUPPORTED_MAJOR:
        raise ConfigError(f"config.json: ociVersion {version}: unsupported major version "
                          f"(stockade implements {SUPPORTED_MAJOR}.x)")
    for key in ("root", "process"):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(f"config.json: {key} is missing or not an object")
    if not isinstance(cfg["root"].get("path"), str) or not cfg["root"]["path"]:
        raise ConfigError("config.json: root.path is missing")
    _walk(cfg, KNOWN, "")


def _walk(value: Any, known: Any, where: str) -> None:
    if known is _ANY or value is None:
        return
    if "*" in known:
        if not isinstance(value, list):
            raise ConfigError(f"config.json: {where} must be a list")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise ConfigError(f"config.json: {where}[{i}] must be an object")
            _walk(item, known["*"], f"{where}[{i}]")
        return
    if not isinstance(value, dict):
        raise ConfigError(f"config.json: {where} must be an object")
    for key, sub in value.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            bare = _bare(path)
            if bare in _EMPTY_OK and sub in ("", {}, [], None, 0):
                continue
            raise ConfigError(f"config.json: {path}: not supported by stockade")
        _walk(sub, known[key], path)


def _bare(path: str) -> str:
    """`linux.resources.devices[2].x` -> `linux.resources.devices.x`."""
    out = []
    for part in path.split("."):
        out.append(part.split("[", 1)[0])
    return ".".join(out)


def load_object(path: str, flag: str, what: str) -> dict[str, Any]:
    """A JSON object named on the command line (`-`: standard input), e.g. exec's
    --process or update's --resources. ConfigError naming the flag otherwise."""
    import json
    import sys

    try:
        if path == "-":
            data = json.load(sys.stdin)
        else:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{flag} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{flag} {path}: expected a JSON object ({what})")
    return data
