"""Recording -> the tightest policy document that lets the workload do what it did.

Argument conditions are inferred only where they are cheap for seccomp and safe to
guess from a few samples: `socket`/`socketpair` by address family, `clone` by "no
namespace flags" (or the exact flags seen), `personality` and `ioctl` by the exact
values seen. Everything else is allowed by name. `clone3` passes its flags in memory
that seccomp cannot read, so it gets ENOSYS and libc falls back to `clone`, whose flags
the filter checks (Docker's default does the same).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stockade.learn.fold import fold_reads, fold_writes
from stockade.learn.recording import Recording
from stockade.linux.consts import ANY_NEW_NAMESPACE

AF_NAMES = {1: "unix", 2: "inet", 10: "inet6", 16: "netlink", 17: "packet"}
SOCK_TYPES = {1: "tcp", 2: "udp", 3: "raw", 5: "tcp"}  # stream, dgram, raw, seqpacket
INT_MASK = 0xFFFFFFFF  # int arguments: the upper half of the register is not the caller's
# Always allowed: the kernel itself issues it after a signal interrupts a sleeping call
# (a run that was never interrupted has no record of it).
ALWAYS = ("restart_syscall",)
# Capabilities a syscall pattern exercises (best effort: no kernel hook sees cap checks).
CAP_BY_SYSCALL = {
    "chown": "CHOWN", "fchown": "CHOWN", "lchown": "CHOWN", "fchownat": "CHOWN",
    "setuid": "SETUID", "setreuid": "SETUID", "setresuid": "SETUID", "setfsuid": "SETUID",
    "setgid": "SETGID", "setregid": "SETGID", "setresgid": "SETGID", "setfsgid": "SETGID",
    "setgroups": "SETGID", "mknod": "MKNOD", "mknodat": "MKNOD", "chroot": "SYS_CHROOT",
}


@dataclass(frozen=True)
class Learned:
    arches: tuple[str, ...]
    allow: tuple[str, ...]
    rules: tuple[dict[str, Any], ...]
    read: tuple[str, ...]
    write: tuple[str, ...]
    exec: tuple[str, ...]
    sockets: tuple[str, ...]  # network.allow entries
    bind: tuple[int, ...]
    remote: bool  # connected somewhere that is not loopback
    caps: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    peers: tuple[tuple[str, int], ...] = ()  # IPv4 (address, port): network.egress proposals
    remote_v6: bool = False  # connected to a non-loopback IPv6 address (private is IPv4)


def learn(rec: Recording, native: str, *, fresh_mounts: Iterable[str] = (), root: str = "/") -> Learned:
    """root: where the workload's / was (--rootfs), to look at its files afterwards."""
    warnings: list[str] = []
    names = {n for _, n in rec.syscalls} | set(ALWAYS)
    arches = sorted({a for a, _ in rec.syscalls} | {native}, key=lambda a: (a != native, a))
    values: dict[tuple[str, int], set[int]] = {}
    for name, index, value in rec.values:
        values.setdefault((name, index), set()).add(value)
    rules: list[dict[str, Any]] = []
    conditioned = {"socket", "socketpair", "clone", "personality", "ioctl", "clone3"}
    for name in ("socket", "socketpair"):
        if name in names:
            for fam in sorted(values.get((name, 0), set())):
                rules.append(_rule(name, [_masked(0, INT_MASK, fam & INT_MASK)]))
    if "clone" in names or "clone3" in names:
        # clone3 gets ENOSYS below, so its callers (glibc's pthread_create, posix_spawn)
        # fall back to clone: allow that without namespace flags even if never seen
        flags = values.get(("clone", 0), set())
        if any(f & ANY_NEW_NAMESPACE == 0 for f in flags) or not flags or "clone3" in names:
            rules.append(_rule("clone", [_masked(0, ANY_NEW_NAMESPACE, 0)]))
        for f in sorted(f for f in flags if f & ANY_NEW_NAMESPACE):
            rules.append(_rule("clone", [{"index": 0, "op": "eq", "value": f}]))
            warnings.append(f"clone with namespace flags {f:#x}: allowed for exactly these flags")
    if "clone3" in names:
        rules.append({"syscalls": ["clone3"], "action": "enosys",
                      "comment": "flags are out of seccomp's reach: libc falls back to clone"})
        if rec.clone3_ns:
            warnings.append("clone3 asked for new namespaces; under the learned policy it "
                            "gets ENOSYS and the fallback clone must carry the same flags")
    for name, index in (("personality", 0), ("ioctl", 1)):
        if name in names:
            for v in sorted(values.get((name, index), set())):
                rules.append(_rule(name, [{"index": index, "op": "eq", "value": v}]))
    allow = sorted(names - conditioned)
    written = [(p, _created(_at(root, p), p, rec)) for k, p in rec.paths if k == "w"]
    write = fold_writes(written, fresh_mounts)
    exec_paths = sorted({p for k, p in rec.paths if k == "x"})
    exec_all = sorted(set(exec_paths) | set(_interpreters(exec_paths, root)))
    read = fold_reads([p for k, p in rec.paths if k == "r"], covered=[*write, *exec_all])
    sockets: set[str] = set()
    for name in ("socket", "socketpair"):
        fams = {f & INT_MASK for f in values.get((name, 0), set())}
        types = {t & 0xF for t in values.get((name, 1), set())}
        for fam in fams:
            fam_name = AF_NAMES.get(fam)
            if fam_name is None:
                warnings.append(f"socket family {fam} has no name in network.allow; "
                                "the seccomp rule for it is kept")
                continue
            if fam_name in ("inet", "inet6"):
                sockets.update(f"{fam_name}:{SOCK_TYPES[t]}" for t in types if t in SOCK_TYPES)
            else:
                sockets.add(fam_name)
    bind = sorted({port for call, fam, port, _ in rec.sockaddrs if call == "bind" and fam in (2, 10) and port})
    if any(call == "bind" and port == 0 and fam in (2, 10) for call, fam, port, _ in rec.sockaddrs):
        warnings.append("the workload bound port 0 (any free port): network.bind cannot say "
                        "that, so binding is left unrestricted")
        bind = []
    remote = any(call == "connect" and not loop for call, fam, _, loop in rec.sockaddrs if fam in (2, 10))
    remote_v6 = any(call == "connect" and not loop for call, fam, _, loop in rec.sockaddrs if fam == 10)
    caps = {c for n, c in CAP_BY_SYSCALL.items() if n in names}
    if any(p < 1024 for p in bind):
        caps.add("NET_BIND_SERVICE")
    if {f & INT_MASK for f in values.get(("socket", 0), set())} & {17} or \
            {t & 0xF for t in values.get(("socket", 1), set())} & {3}:
        caps.add("NET_RAW")
    if rec.unknown:
        warnings.append("syscalls this libseccomp has no name for (left to `unknown`): "
                        + ", ".join(rec.unknown))
    return Learned(tuple(arches), tuple(allow), tuple(rules), tuple(read), tuple(write),
                   tuple(exec_all), tuple(sorted(sockets)), tuple(bind), remote,
                   tuple(sorted(caps)), tuple(warnings), tuple(sorted(rec.peers)), remote_v6)


def _rule(name: str, args: list[dict[str, int | str]]) -> dict[str, Any]:
    # clone's flags are argument 0 on every arch this recorder runs on (x86_64, aarch64)
    return {"syscalls": [name], "action": "allow", "args": args}


def _masked(index: int, mask: int, value: int) -> dict[str, int | str]:
    return {"index": index, "op": "masked_eq", "mask": mask, "value": value}


def _at(root: str, path: str) -> str:
    return path if root in ("", "/") else os.path.join(root, path.lstrip("/"))


def _created(host_path: str, path: str, rec: Recording) -> bool:
    """A write to a path that is gone or new: treat it as created (fold to its directory)."""
    return not os.path.exists(host_path) or os.path.isdir(host_path) and ("r", path) not in rec.paths


def _interpreters(paths: Iterable[str], root: str = "/") -> list[str]:
    """The ELF interpreter (PT_INTERP) or `#!` interpreter of each executed file: the
    kernel opens them for execve, and Landlock's execute right covers them too."""
    out: list[str] = []
    for path in paths:
        try:
            with open(_at(root, path), "rb") as fh:
                head = fh.read(4096)
                if head.startswith(b"#!"):
                    line = head[2:].split(b"\n", 1)[0].strip().split()
                    if line:
                        out.append(os.fsdecode(line[0]))
                elif head.startswith(b"\x7fELF") and head[4] == 2:  # 64-bit
                    out += _pt_interp(fh, head)
        except OSError:
            continue
    return out


def _pt_interp(fh: Any, head: bytes) -> list[str]:
    endian = "<" if head[5] == 1 else ">"
    phoff, = struct.unpack_from(endian + "Q", head, 0x20)
    phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
    for i in range(phnum):
        fh.seek(phoff + i * phentsize)
        ph = fh.read(phentsize)
        p_type, = struct.unpack_from(endian + "I", ph, 0)
        if p_type == 3:  # PT_INTERP
            off, = struct.unpack_from(endian + "Q", ph, 8)
            size, = struct.unpack_from(endian + "Q", ph, 32)
            fh.seek(off)
            return [os.fsdecode(fh.read(size).rstrip(b"\0"))]
    return []
