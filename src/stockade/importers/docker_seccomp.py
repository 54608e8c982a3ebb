"""Docker / OCI seccomp profile -> stockade policy document.

Docker's `includes`/`excludes` become `when`/`unless`: includes.caps = every cap kept,
excludes.caps = any cap kept, includes.arches = the arch, minKernel = min_kernel.
Names this libseccomp does not know are dropped with a warning, as Docker and runc do.
`SCMP_ACT_TRACE` becomes `enosys`: no tracer is attached, so the kernel answers ENOSYS.
Every arch of `archMap` (and `architectures`) is kept: the policy serves any host, where
`seccomp.runc_build` takes only the host's own entry, as moby does when it loads one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from stockade.errors import Location, PolicyError
from stockade.importers.json_input import JsonShape, check_shape, read_json
from stockade.linux.syscall_table import canonical_arch, syscall_table
from stockade.policy.names import capability
from stockade.policy.source import KeyPath, format_path
from stockade.seccomp.names import ACTION_NAMES, OP_OF_NAME, json_action

# The profile's shape: the OCI runtime-spec's LinuxSeccomp plus moby's additions
# (archMap, name, comment, includes/excludes), with the spec's types and ranges.
U64 = Annotated[int, Field(ge=0, le=0xFFFFFFFFFFFFFFFF)]
# errno 0 (a faked success) has no word in the policy language: refused, not changed
Errno = Annotated[int, Field(ge=1, le=4095)]


class SeccompArg(JsonShape):
    index: Annotated[int, Field(ge=0, le=5, description="syscall argument 0..5")]
    value: U64
    valueTwo: U64 = 0
    op: str


class SeccompFilter(JsonShape):
    caps: list[str] | None = None
    arches: list[str] | None = None
    minKernel: str | None = None


class SeccompSyscall(JsonShape):
    names: list[str] | None = None
    name: str | None = None
    action: str
    errnoRet: Errno | None = None
    args: list[SeccompArg] | None = None
    includes: SeccompFilter | None = None
    excludes: SeccompFilter | None = None
    comment: str | None = None


class SeccompArch(JsonShape):
    architecture: str
    subArchitectures: list[str] | None = None


class SeccompProfile(JsonShape):
    defaultAction: str
    defaultErrnoRet: Errno | None = None
    architectures: list[str] | None = None
    archMap: list[SeccompArch] | None = None
    syscalls: list[SeccompSyscall] | None = None


@dataclass(frozen=True)
class Imported:
    document: dict[str, Any]
    warnings: tuple[str, ...]


def _action(name: str, errno_ret: int | None, default_errno: int, where: Location) -> str:
    if name not in ACTION_NAMES:
        raise PolicyError(where, "unknown seccomp action", found=repr(name), expected="SCMP_ACT_*")
    return str(json_action(name, errno_ret, default_errno))


def _cond(block: SeccompFilter | None, file: str, at: KeyPath) -> dict[str, Any] | None:
    """includes/excludes as when/unless; capabilities and the kernel version read as the
    policy reads them."""
    from stockade.policy.merge.syscalls import parse_kernel

    if block is None:
        return None
    out: dict[str, Any] = {}
    if block.arches:
        arches = []
        for i, a in enumerate(block.arches):
            c = canonical_arch(a)
            if c is None:  # not policy.names.architecture: "native" and "all" are no words here
                raise PolicyError(_at(file, *at, "arches", i), "unknown architecture in includes/excludes",
                                  found=repr(a), expected="a SCMP_ARCH_* or Go architecture name")
            arches.append(c)
        out["arch"] = sorted(set(arches))
    if block.caps:
        out["caps"] = sorted({capability(c, _at(file, *at, "caps", i)).removeprefix("CAP_")
                              for i, c in enumerate(block.caps)})
    if block.minKernel:
        parse_kernel(block.minKernel, _at(file, *at, "minKernel"))
        out["min_kernel"] = block.minKernel
    return out or None


def _at(file: str, *path: str | int) -> Location:
    return Location(file, key_path=format_path(path))


def import_profile(data: Any, *, file: str, name: str = "imported", at: KeyPath = ()) -> Imported:
    """`data`, found at key path `at` of `file` (`()`: the whole file), as a policy."""
    if isinstance(data, dict) and isinstance(data.get("linux"), dict):  # a whole OCI config.json
        at = (*at, "linux", "seccomp")
        data = data["linux"].get("seccomp") or {}
    if not isinstance(data, dict) or "defaultAction" not in data:
        raise PolicyError(_at(file, *at), "not a seccomp profile",
                          found=type(data).__name__ if not isinstance(data, dict) else "no defaultAction",
                          expected="a Docker/OCI seccomp JSON object with defaultAction and syscalls")
    profile = check_shape(data, SeccompProfile, file, at)
    known = syscall_table().all_names
    warnings: list[str] = []
    default_errno = profile.defaultErrnoRet or 1
    default = _action(profile.defaultAction, profile.defaultErrnoRet, 1, _at(file, *at, "defaultAction"))
    arches: list[str] = []
    for entry in profile.archMap or []:
        for arch in [entry.architecture, *(entry.subArchitectures or [])]:
            c = canonical_arch(arch)
            if c and c not in arches:
                arches.append(c)
    for arch in profile.architectures or []:
        c = canonical_arch(arch)
        if c and c not in arches:
            arches.append(c)
    allow: list[str] = []
    deny: list[str] = []
    rules: list[dict[str, Any]] = []
    for i, sc in enumerate(profile.syscalls or []):
        here = (*at, "syscalls", i)
        names = list(sc.names or ([sc.name] if sc.name else []))
        kept_names = list(dict.fromkeys(n for n in names if n in known))
        for n in names:
            if n not in known:
                warnings.append(f"{format_path(here)}: {n!r} is unknown to this libseccomp; dropped "
                                "(it falls to `unknown`)")
        if not kept_names:
            continue
        action = _action(sc.action, sc.errnoRet, default_errno, _at(file, *here, "action"))
        args = []
        seen_index: set[int] = set()
        for j, a in enumerate(sc.args or []):
            arg_op = OP_OF_NAME.get(a.op)
            if arg_op is None:
                raise PolicyError(_at(file, *here, "args", j, "op"), "unknown comparison",
                                  found=repr(a.op), expected="SCMP_CMP_*")
            if a.index in seen_index:
                raise PolicyError(_at(file, *here, "args", j, "index"),
                                  "two conditions on the same argument in one rule",
                                  found=f"index {a.index} twice", expected="one condition per index")
            seen_index.add(a.index)
            op = arg_op.value
            arg: dict[str, Any] = {"index": a.index, "op": op}
            if op == "masked_eq":
                arg["mask"] = a.value
                arg["value"] = a.valueTwo
            else:
                arg["value"] = a.value
            args.append(arg)
        when = _cond(sc.includes, file, (*here, "includes"))
        unless = _cond(sc.excludes, file, (*here, "excludes"))
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
        if sc.comment:
            rule["comment"] = sc.comment
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
    return import_profile(read_json(path, "a Docker/OCI seccomp profile (JSON)"), file=path, name=name)
