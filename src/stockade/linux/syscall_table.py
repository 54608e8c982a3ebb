"""Syscall names and numbers per architecture, read from libseccomp itself.

libseccomp has no "list all" call, so each arch's number ranges are walked once with
seccomp_syscall_resolve_num_arch and the result is cached on disk, keyed by the
libseccomp version (a different libseccomp may know different syscalls).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from stockade.linux import libseccomp

# libseccomp arch name -> SCMP_ARCH_* token value (== AUDIT_ARCH_* except x32/mips n32 quirks)
_EM = {"386": 3, "MIPS": 8, "PARISC": 15, "PPC": 20, "PPC64": 21, "S390": 22, "ARM": 40,
       "X86_64": 62, "AARCH64": 183, "RISCV": 243}
_B64, _LE, _N32 = 0x80000000, 0x40000000, 0x20000000

ARCH_TOKENS: dict[str, int] = {
    "x86_64": _EM["X86_64"] | _B64 | _LE,
    "x86": _EM["386"] | _LE,
    "x32": _EM["X86_64"] | _LE,
    "aarch64": _EM["AARCH64"] | _B64 | _LE,
    "arm": _EM["ARM"] | _LE,
    "riscv64": _EM["RISCV"] | _B64 | _LE,
    "s390x": _EM["S390"] | _B64,
    "s390": _EM["S390"],
    "ppc64le": _EM["PPC64"] | _B64 | _LE,
    "ppc64": _EM["PPC64"] | _B64,
    "ppc": _EM["PPC"],
    "mips": _EM["MIPS"],
    "mipsel": _EM["MIPS"] | _LE,
    "mips64": _EM["MIPS"] | _B64,
    "mipsel64": _EM["MIPS"] | _B64 | _LE,
    "mips64n32": _EM["MIPS"] | _B64 | _N32,
    "mipsel64n32": _EM["MIPS"] | _B64 | _LE | _N32,
    "parisc": _EM["PARISC"],
    "parisc64": _EM["PARISC"] | _B64,
}

# The value the kernel puts in seccomp_data.arch (x32 shares x86_64's; its syscalls set bit 30).
AUDIT_ARCH: dict[str, int] = {**ARCH_TOKENS, "x32": ARCH_TOKENS["x86_64"]}
X32_SYSCALL_BIT = 0x40000000

# Other spellings people use (Docker/OCI names, uname -m, Go's GOARCH).
ARCH_ALIASES: dict[str, str] = {
    "amd64": "x86_64", "i386": "x86", "i686": "x86", "386": "x86", "arm64": "aarch64",
    "armhf": "arm", "armel": "arm", "ppc64el": "ppc64le", "mips64le": "mipsel64",
    "mipsle": "mipsel", "mips64n32le": "mipsel64n32", "mips64le_n32": "mipsel64n32",
    "armv7l": "arm", "armv6l": "arm",
}
# ... and the other way: Go's GOARCH, as OCI image platforms and runc's seccomp includes
# spell an arch (the same word where it has no entry here).
GOARCH: dict[str, str] = {
    "x86_64": "amd64", "x86": "386", "aarch64": "arm64", "mipsel": "mipsle",
    "mipsel64": "mips64le",
}

# Number ranges to walk per arch family: (start, count).
_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "x32": ((X32_SYSCALL_BIT, 1024),),
    "arm": ((0, 1024), (0x0F0000, 16)),
    "mips": ((4000, 1024),),
    "mipsel": ((4000, 1024),),
    "mips64": ((5000, 1024),),
    "mipsel64": ((5000, 1024),),
    "mips64n32": ((6000, 1024),),
    "mipsel64n32": ((6000, 1024),),
}
_DEFAULT_RANGES = ((0, 1024),)


def _walk(arch: str) -> dict[str, int]:
    token = ARCH_TOKENS[arch]
    table: dict[str, int] = {}
    for start, count in _RANGES.get(arch, _DEFAULT_RANGES):
        for nr in range(start, start + count):
            name = libseccomp.name_of(token, nr)
            if name is not None:
                table.setdefault(name, nr)
    return table


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stockade" / f"syscalls-libseccomp-{libseccomp.version()}.json"


@dataclass(frozen=True, eq=False)
class SyscallTable:
    """name -> number, per arch, exactly as the installed libseccomp knows them."""

    by_arch: Mapping[str, Mapping[str, int]]

    @property
    def all_names(self) -> frozenset[str]:
        return _all_names()

    def number(self, arch: str, name: str) -> int | None:
        return self.by_arch[arch].get(name)

    def name(self, arch: str, nr: int) -> str | None:
        return _reverse(arch).get(nr)

    def max_number(self, arch: str) -> int:
        return max(self.by_arch[arch].values())


@cache
def _all_names() -> frozenset[str]:
    return frozenset(n for table in syscall_table().by_arch.values() for n in table)


@cache
def _reverse(arch: str) -> dict[int, str]:
    return {nr: name for name, nr in syscall_table().by_arch[arch].items()}


@cache
def syscall_table() -> SyscallTable:
    path = _cache_path()
    try:
        data = json.loads(path.read_text())
        if set(data) == set(ARCH_TOKENS):
            return SyscallTable(by_arch=data)
    except (OSError, ValueError):
        pass
    data = {arch: _walk(arch) for arch in ARCH_TOKENS}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home is fine: we just walk again next time
    return SyscallTable(by_arch=data)


def canonical_arch(name: str) -> str | None:
    name = name.lower().removeprefix("scmp_arch_")
    name = ARCH_ALIASES.get(name, name)
    return name if name in ARCH_TOKENS else None


@cache
def native_arch() -> str:
    return canonical_arch(os.uname().machine) or "x86_64"
