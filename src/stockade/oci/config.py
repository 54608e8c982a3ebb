"""Read and validate a bundle's config.json (runtime-spec 1.x) at the input edge.

A property the runtime spec defines and stockade does not implement is an error naming
it and why (`linux.intelRdt`): ignoring it would run a container other than the one
asked for. A property the spec does not define is ignored, as the spec requires ("MUST
NOT generate an error"), and reported as a warning (stderr and the --log file).
`null` counts as absent. Values are checked for type here; their meaning is checked
where they are translated (stockade.oci.translate).
"""

from __future__ import annotations

import json
import os

from stockade.errors import StockadeError

TYPE_CHECKING = False  # not typing's: `oci create` loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SUPPORTED_MAJOR = 1
_MAX_INT = 2**64 - 1  # the spec's widest integers are uint64 (rlimits, seccomp args)
_MIN_INT = -2**63


class _Leaf:
    """A field's JSON type, checked for every value here (its meaning is checked by the
    translator): bad input is one line naming the field, never a crash further on."""

    def __init__(self, expected: str, test: Callable[[object], bool],
                 item: _Leaf | None = None) -> None:
        self.expected = expected  # for the message: "a string"
        self.test = test
        self.item = item  # a list's items, an object's keys and values


def _is_text(value: object) -> bool:
    """A string with no NUL (no path, argv or environment entry can hold one) and no
    lone surrogate (JSON's \\ud800 escapes: such a string has no bytes for the kernel)."""
    if not isinstance(value, str) or "\0" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_int(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)
            and _MIN_INT <= value <= _MAX_INT)


STR = _Leaf("a string (no NUL, valid Unicode)", _is_text)
INT = _Leaf("an integer", _is_int)
BOOL = _Leaf("true or false", lambda v: isinstance(v, bool))
STRS = _Leaf("a list of strings", lambda v: isinstance(v, list), STR)
INTS = _Leaf("a list of integers", lambda v: isinstance(v, list), INT)
STRMAP = _Leaf("an object of strings", lambda v: isinstance(v, dict), STR)

# The fields stockade implements, as a tree. A dict is an object with these keys; "*"
# marks a list whose items are objects with the given keys; a _Leaf is a value's type.
_HOOK = {"*": {"path": STR, "args": STRS, "env": STRS, "timeout": INT}}
_MAP = {"*": {"containerID": INT, "hostID": INT, "size": INT}}
KNOWN: dict[str, Any] = {
    "ociVersion": STR,
    "root": {"path": STR, "readonly": BOOL},
    "hostname": STR,
    "domainname": STR,
    "annotations": STRMAP,  # metadata for engines, no effect on the container (spec)
    "process": {
        "terminal": BOOL, "consoleSize": {"height": INT, "width": INT},
        "user": {"uid": INT, "gid": INT, "additionalGids": INTS, "umask": INT},
        "args": STRS, "env": STRS, "cwd": STR,
        "capabilities": {"bounding": STRS, "effective": STRS, "inheritable": STRS,
                         "permitted": STRS, "ambient": STRS},
        "rlimits": {"*": {"type": STR, "soft": INT, "hard": INT}},
        "noNewPrivileges": BOOL, "apparmorProfile": STR, "selinuxLabel": STR,
        "oomScoreAdj": INT,
    },
    "mounts": {"*": {"destination": STR, "type": STR, "source": STR, "options": STRS}},
    "hooks": {k: _HOOK for k in ("prestart", "createRuntime", "createContainer",
                                 "startContainer", "poststart", "poststop")},
    "linux": {
        "namespaces": {"*": {"type": STR, "path": STR}},
        "uidMappings": _MAP,
        "gidMappings": _MAP,
        "devices": {"*": {"path": STR, "type": STR, "major": INT, "minor": INT,
                          "fileMode": INT, "uid": INT, "gid": INT}},
        "resources": {
            "devices": {"*": {"allow": BOOL, "type": STR, "major": INT, "minor": INT,
                              "access": STR}},
            "memory": {"limit": INT, "swap": INT, "reservation": INT, "swappiness": INT,
                       "disableOOMKiller": BOOL, "kernel": INT, "kernelTCP": INT},
            "cpu": {"shares": INT, "quota": INT, "period": INT, "cpus": STR, "mems": STR},
            "pids": {"limit": INT},
        },
        "cgroupsPath": STR,
        "sysctl": STRMAP,
        "maskedPaths": STRS,
        "readonlyPaths": STRS,
        "rootfsPropagation": STR,
        "seccomp": {"defaultAction": STR, "defaultErrnoRet": INT, "architectures": STRS,
                    "flags": STRS,
                    "syscalls": {"*": {"names": STRS, "action": STR, "errnoRet": INT,
                                       "args": {"*": {"index": INT, "value": INT,
                                                      "valueTwo": INT, "op": STR}}}}},
    },
}
# Properties the runtime spec defines that stockade does not implement, and why: an
# error (an empty value, which asks for nothing and which engines fill in, is accepted).
UNSUPPORTED = {
    "process.scheduler": "sched_setattr is not implemented",
    "process.ioPriority": "ioprio_set is not implemented",
    "process.execCPUAffinity": "not implemented",
    "linux.intelRdt": "resctrl is not managed by stockade",
    "linux.personality": "not implemented",
    "linux.timeOffsets": "needs a time namespace, not supported",
    "linux.mountLabel": "SELinux mount labels are not implemented",
    "linux.netDevices": "moving host network devices in is not implemented",
    "linux.memoryPolicy": "set_mempolicy is not implemented",
    "linux.resources.blockIO": "this host has no blkio weight files",
    "linux.resources.hugepageLimits": "not implemented",
    "linux.resources.network": "not implemented",
    "linux.resources.rdma": "not implemented",
    "linux.resources.unified": "not implemented",
    "linux.resources.memory.useHierarchy": "not implemented",
    "linux.resources.memory.checkBeforeUpdate": "not implemented",
    "linux.resources.cpu.realtimeRuntime": "not implemented",
    "linux.resources.cpu.realtimePeriod": "not implemented",
    "linux.resources.cpu.idle": "not implemented",
    "linux.resources.cpu.burst": "not implemented",
    "linux.seccomp.listenerPath": "seccomp user notification is not implemented",
    "linux.seccomp.listenerMetadata": "seccomp user notification is not implemented",
    "mounts.uidMappings": "id-mapped mounts are not implemented",
    "mounts.gidMappings": "id-mapped mounts are not implemented",
}


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {0x0A: "\\n", 0x09: "\\t"}
_MAX_MESSAGE = 600


class ConfigError(StockadeError):
    """config.json asks for something wrong or unsupported (exit status 2). The message
    quotes the bundle's own text: it is kept to one line of bounded length (control
    characters escaped), whatever that text holds."""

    def __init__(self, message: str) -> None:
        message = message.translate(_CONTROL)
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + "... (cut)"
        super().__init__(message)


def load(bundle: str) -> dict[str, Any]:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, encoding="utf-8") as fh:
            cfg = json.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"bundle {bundle}: no config.json") from exc
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    validate(cfg)
    return strip_nulls(cfg)


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def validate(cfg: object) -> list[str]:
    """Raise ConfigError on bad input; return the properties the spec does not define
    (ignored: one warning each)."""
    if not isinstance(cfg, dict):
        raise ConfigError("config.json: the top level must be an object")
    version = cfg.get("ociVersion")
    if not isinstance(version, str) or not version:
        raise ConfigError("config.json: ociVersion is missing")
    major = version.split(".", 1)[0]
    if not (major.isascii() and major.isdigit()) or int(major) != SUPPORTED_MAJOR:
        raise ConfigError(f"config.json: ociVersion {version}: unsupported major version "
                          f"(stockade implements {SUPPORTED_MAJOR}.x)")
    for key in ("root", "process"):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(f"config.json: {key} is missing or not an object")
    if not isinstance(cfg["root"].get("path"), str) or not cfg["root"]["path"]:
        raise ConfigError("config.json: root.path is missing")
    unknown: list[str] = []
    _walk(cfg, KNOWN, "", unknown)
    return unknown


def _walk(value: Any, known: Any, where: str, unknown: list[str]) -> None:
    if value is None:
        return
    if isinstance(known, _Leaf):
        if not known.test(value):
            raise ConfigError(f"config.json: {where}: found {_kind(value)}, expected "
                              f"{known.expected}")
        if known.item is not None and isinstance(value, list):
            for i, item in enumerate(value):
                _walk(item, known.item, f"{where}[{i}]", unknown)
        elif known.item is not None and isinstance(value, dict):
            for key, item in value.items():
                _walk(key, known.item, f"{where} (a key)", unknown)
                _walk(item, known.item, f"{where}.{key}", unknown)
        return
    if "*" in known:
        if not isinstance(value, list):
            raise ConfigError(f"config.json: {where} must be a list")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise ConfigError(f"config.json: {where}[{i}] must be an object")
            _walk(item, known["*"], f"{where}[{i}]", unknown)
        return
    if not isinstance(value, dict):
        raise ConfigError(f"config.json: {where} must be an object")
    for key, sub in value.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            bare = _bare(path)
            if bare not in UNSUPPORTED:
                unknown.append(path)  # the spec: ignored, not an error
            elif not _asks_nothing(sub):
                raise ConfigError(f"config.json: {path}: not supported by stockade "
                                  f"({UNSUPPORTED[bare]})")
            continue
        _walk(sub, known[key], path, unknown)


def _asks_nothing(value: object) -> bool:
    """An empty value, or an object/list of them: docker sends `blockIO: {weight: 0}`
    (0: unset, as runc reads it) when no weight was asked for."""
    if isinstance(value, dict):
        return all(_asks_nothing(v) for v in value.values())
    if isinstance(value, list):
        return all(_asks_nothing(v) for v in value)
    return value in ("", None, 0)


def _kind(value: object) -> str:
    """What a JSON value is, for a message (never the value itself: it may be huge)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer" if _MIN_INT <= value <= _MAX_INT else "an integer out of range"
    if isinstance(value, str):
        return "a string" if _is_text(value) else "a string with a NUL or a lone surrogate"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "an object"
    return "a number" if isinstance(value, float) else type(value).__name__


def _bare(path: str) -> str:
    """`linux.resources.devices[2].x` -> `linux.resources.devices.x`."""
    out = []
    for part in path.split("."):
        out.append(part.split("[", 1)[0])
    return ".".join(out)


def load_object(path: str, flag: str, what: str) -> dict[str, Any]:
    """A JSON object named on the command line (`-`: standard input), e.g. exec's
    --process or update's --resources. ConfigError naming the flag otherwise."""
    import sys

    try:
        if path == "-":
            data = json.load(sys.stdin)
        else:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{flag} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{flag} {path}: expected a JSON object ({what})")
    return data
