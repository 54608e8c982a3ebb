"""Building: a Docker/OCI seccomp JSON -> the BPF program moby and runc would load
(libseccomp, binary tree, runc's ENOSYS stub). `stockade oci` loads it for a bundle's
own linux.seccomp; `learn.compare` and the tests compare stockade's filters with it.

Moby resolves includes/excludes against the container's capabilities, the host's arch
(GOARCH) and kernel; runc then adds each rule through libseccomp. Names libseccomp does
not know are skipped, as runc does.
"""

from __future__ import annotations

import os
from typing import Any

import pyseccomp

from stockade.linux.syscall_table import ARCH_TOKENS, GOARCH, canonical_arch, syscall_table
from stockade.policy.model import kernel_version
from stockade.policy.vocab.capabilities import DOCKER_DEFAULT_CAPS
from stockade.seccomp import bpf
from stockade.seccomp.build import export_bpf
from stockade.seccomp.prologue import enosys_prologue, unknown_ranges

# Its own tables of libseccomp's names, not the ones `docker_json` writes with: this is
# the independent reading the tests compare stockade's JSON against.
_ACT = {
    "SCMP_ACT_ALLOW": bpf.SECCOMP_RET_ALLOW, "SCMP_ACT_LOG": bpf.SECCOMP_RET_LOG,
    "SCMP_ACT_KILL": bpf.SECCOMP_RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD": bpf.SECCOMP_RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": bpf.SECCOMP_RET_KILL_PROCESS, "SCMP_ACT_TRAP": bpf.SECCOMP_RET_TRAP,
    "SCMP_ACT_NOTIFY": bpf.SECCOMP_RET_USER_NOTIF,
}
_OP = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}


def _ret(action: str, errno_ret: int | None, default_errno: int) -> int:
    if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        n = errno_ret if errno_ret is not None else default_errno
        base = bpf.SECCOMP_RET_ERRNO if action == "SCMP_ACT_ERRNO" else bpf.SECCOMP_RET_TRACE
        return base | (n & 0xFFFF)
    return _ACT[action]


def profile_arches(profile: dict[str, Any], native: str) -> list[str]:
    """The arches moby loads the profile for on a `native` host: `architectures`, else
    only the native arch's `archMap` entry (the importer keeps every entry instead: a
    policy serves any host)."""
    if profile.get("architectures"):
        out = [canonical_arch(a) for a in profile["architectures"]]
        return [a for a in out if a]
    for entry in profile.get("archMap") or []:
        if canonical_arch(entry.get("architecture", "")) == native:
            subs = [canonical_arch(s) for s in entry.get("subArchitectures") or []]
            return [native, *[s for s in subs if s]]
    return [native]


def _included(entry: dict[str, Any], caps: frozenset[str], native: str, kernel: tuple[int, int]) -> bool:
    """Moby's reading of includes/excludes, written out here rather than through
    `policy.model.Condition`: the importer turns them into Conditions, and the tests compare
    the two, so only the version grammar (`kernel_version`) is shared."""
    inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
    goarch = {GOARCH.get(native, native), native}
    if inc.get("arches") and not goarch & set(inc["arches"]):
        return False
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if inc.get("minKernel") and kernel < kernel_version(str(inc["minKernel"])):
        return False
    if exc.get("arches") and goarch & set(exc["arches"]):
        return False
    return not (exc.get("caps") and any(c in caps for c in exc["caps"]))


def compile_docker_profile(
    profile: dict[str, Any],
    *,
    caps: frozenset[str] = frozenset(DOCKER_DEFAULT_CAPS),
    native: str = "x86_64",
    kernel: tuple[int, int] = (6, 1),
    arches: list[str] | None = None,
    enosys_stub: bool = True,
) -> bytes:
    """The BPF program runc would load for this profile (with runc's ENOSYS stub)."""
    default_errno = int(profile.get("defaultErrnoRet") or 1)
    default = _ret(profile["defaultAction"], profile.get("defaultErrnoRet"), 1)
    flt = pyseccomp.SyscallFilter(default)
    chosen = arches or profile_arches(profile, native)
    sys_native = pyseccomp.system_arch()
    for a in chosen:
        if ARCH_TOKENS[a] != sys_native:
            flt.add_arch(ARCH_TOKENS[a])
    if ARCH_TOKENS[native] != sys_native or native not in chosen:
        flt.remove_arch(sys_native)
    flt.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)
    known = syscall_table().all_names
    for entry in profile.get("syscalls") or []:
        if not _included(entry, caps, native, kernel):
            continue
        ret = _ret(entry["action"], entry.get("errnoRet"), default_errno)
        if ret == default:
            continue
        args = []
        for a in entry.get("args") or []:
            args.append(pyseccomp.Arg(a["index"], _OP[a["op"]], a["value"], a.get("valueTwo", 0)))
        for name in entry.get("names") or []:
            if name not in known:
                continue
            try:
                flt.add_rule(ret, name, *args)
            except OSError:
                continue  # not on these arches (runc ignores these too)
    program = export_bpf(flt)
    if not enosys_stub:
        return program
    # runc's patchbpf: syscalls above the profile's highest known number get ENOSYS.
    stub = enosys_prologue(unknown_ranges(chosen), bpf.SECCOMP_RET_ERRNO | 38)
    return bpf.encode(stub) + program


def load_json(path: str) -> dict[str, Any]:
    import json

    with open(os.fspath(path), encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data

