"""Docker / OCI seccomp profile -> stockade policy document.

Docker's `includes`/`excludes` become `when`/`unless`: includes.caps = every cap kept,
excludes.caps = any cap kept, includes.arches = the arch, minKernel = min_kernel.
Names this libseccomp does not know are dropped with a warning, as Docker and runc do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stockade.errors import Location, PolicyError
from stockade.policy.vocab.errnos import errno_name
from stockade.policy.vocab.syscalls import canonical_arch, syscall_table

_ACTIONS = {
    "SCMP_ACT_ALLOW": "allow", "SCMP_ACT_KILL": "kill-thread", "SCMP_ACT_KILL_THREAD": "kill-thread",
    "SCMP_ACT_KILL_PROCESS": "kill", "SCMP_ACT_TRAP": "trap", "SCMP_ACT_LOG": "log",
    "SCMP_ACT_NOTIFY": "notify", "SCMP_ACT_ERRNO": "errno", "SCMP_ACT_TRACE": "errno",
}
_OPS = {"SCMP_CMP_EQ": "eq", "SCMP_CMP_NE": "ne", "SCMP_CMP_LT": "lt", "SCMP_CMP_LE": "le",
        "SCMP_CMP_GT": "gt", "SCMP_CMP_GE": "ge", "SCMP_CMP_MASKED_EQ": "masked_eq"}


@dataclass(frozen=True)
class Imported:
    document: dict[str, Any]
    warnings: tuple[str, ...]


def _action(name: str, errno_ret: int | None, default_errno: int, where: Location) -> str:
    if name not in _ACTIONS:
        raise PolicyError(where, "unknown seccomp action", found=repr(name), expected="SCMP_ACT_*")
    act = _ACTIONS[name]
    if act == "errno":
        n = errno_ret if errno_ret is not None else default_errno
        return "enosys" if n == 38 else f"errno:{errno_name(n)}"
    return act


def _cond(block: dict[str, Any] | None, where: Location) -> dict[str, Any] | None:
    if not block:
        return None
    out: dict[str, Any] = {}
    if block.get("arches"):
        arches = []
        for a in block["arches"]:
            c = canonical_arch(a)
            if c is None:
                raise PolicyError(where, "unknown architecture in includes/excludes", found=repr(a))
            arches.append(c)
        out["arch"] = sorted(set(arches))
    if block.get("caps"):
        out["caps"] = sorted(c.upper().removeprefix("CAP_") for c in block["caps"])
    if block.get("minKernel"):
        out["min_kernel"] = str(block["minKernel"])
    return out or None


def import_profile(data: Any, *, file: str, name: str = "imported") -> Imported:
    where = Location(file)
    if not isinstance(data, dict):
        raise PolicyError(where, "not a seccomp profile", found=type(data).__name__,
                          expected="a JSON object with defaultAction and syscalls")
    if "linux" in data and isinstance(data["linux"], dict):  # a whole OCI config.json
        data = data["linux"].get("seccomp") or {}
    if "defaultAction" not in data:
        raise PolicyError(where, "not a seccomp profile", found="no defaultAction",
                          expected="Docker/OCI seccomp JSON")
    known = syscall_table().all_names
    warnings: list[str] = []
    default_errno = int(data.get("defaultErrnoRet") or 1)
    default = _action(data["defaultAction"], data.get("defaultErrnoRet"), 1, where)
    arches: list[str] = []
    for entry in data.get("archMap") or []:
        for a in [entry.get("architecture"), *(entry.get("subArchitectures") or [])]:
            c = canonical_arch(a or "")
            if c and c not in arches:
                arches.append(c)
    for a in data.get("architectures") or []:
        c = canonical_arch(a)
        if c and c not in arches:
            arches.append(c)
    allow: list[str] = []
    deny: list[str] = []
    rules: list[dict[str, Any]] = []
    for i, entry in enumerate(data.get("syscalls") or []):
        ewhere = Location(file, 0, 0, f"syscalls[{i}]")
        names = list(entry.get("names") or ([entry["name"]] if entry.get("name") else []))
        kept_names = [n for n in names if n in known]
        for n in names:
            if n not in known:
                warnings.append(f"syscalls[{i}]: {n!r} is unknown to this libseccomp; dropped (it falls to `unknown`)")
        if not kept_names:
            continue
        action = _action(entry.get("action", ""), entry.get("errnoRet"), default_errno, ewhere)
        args = []
        for a in entry.get("args") or []:
            op = _OPS.get(a.get("op", ""))
            if op is None:
                raise PolicyError(ewhere, "unknown comparison", found=repr(a.get("op")), expected="SCMP_CMP_*")
            arg: dict[str, Any] = {"index": a["index"], "op": op}
            if op == "masked_eq":
                arg["mask"] = a["value"]
                arg["value"] = a.get("valueTwo", 0)
            else:
                arg["value"] = a["value"]
            args.append(arg)
        when = _cond(entry.get("includes"), ewhere)
        unless = _cond(entry.get("excludes"), ewhere)
        if not args and when is None and unless is None:
            if action == "allow":
                allow += [n for n in kept_names if n not in allow]
                continue
            if action == "errno:EPERM":
                deny += [n for n in kept_names if n not in deny]
                continue
        rule: dict[str, Any] = {"syscalls": kept_names, "action": action}
        if args:
            rule["args"] = args
        if when:
            rule["when"] = when
        if unless:
            rule["unless"] = unless
        if entry.get("comment"):
            rule["comment"] = str(entry["comment"])
        rules.append(rule)
    syscalls: dict[str, Any] = {"default": default, "unknown": "enosys"}
    if arches:
        syscalls["arches"] = arches
    syscalls["allow"] = allow
    if deny:
        syscalls["deny"] = deny
    syscalls["rules"] = rules
    doc = {"stockade": 1, "name": name, "description": f"imported from {file}", "syscalls": syscalls}
    return Imported(doc, tuple(warnings))


def import_file(path: str, *, name: str = "imported") -> Imported:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise PolicyError(Location(path), "no such file") from None
    except json.JSONDecodeError as exc:
        raise PolicyError(Location(path, exc.lineno, exc.colno), "malformed JSON", found=exc.msg,
                          expected="a Docker/OCI seccomp profile") from None
    return import_profile(data, file=path, name=name)
