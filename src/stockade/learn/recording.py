"""What one recording run saw, as names (the recorder itself deals in numbers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stockade.linux.syscall_table import AUDIT_ARCH, X32_SYSCALL_BIT, syscall_table


@dataclass(frozen=True)
class Recording:
    syscalls: frozenset[tuple[str, str]]  # (arch, syscall name)
    values: frozenset[tuple[str, int, int]]  # (syscall, arg index, value) on the native arch
    paths: frozenset[tuple[str, str]]  # (r|w|x, absolute path as the workload saw it)
    sockaddrs: frozenset[tuple[str, int, int, bool]]  # (bind|connect, family, port, loopback)
    clone3_ns: bool = False  # clone3 asked for a namespace
    started: bool = False  # the payload reached execve under the filter
    unknown: tuple[str, ...] = ()  # "arch:nr" the vocabulary has no name for
    tasks: int = 0
    notifications: int = 0
    peers: frozenset[tuple[str, int]] = frozenset()  # IPv4 (address, port) connected to

    @staticmethod
    def from_json(data: dict[str, Any], native: str) -> Recording:
        table = syscall_table()
        by_audit: dict[int, str] = {}
        for arch, token in AUDIT_ARCH.items():
            if arch != "x32":
                by_audit.setdefault(token, arch)
        by_audit[AUDIT_ARCH[native]] = native
        seen: set[tuple[str, str]] = set()
        unknown: list[str] = []
        for audit, nr in data.get("syscalls", []):
            arch = by_audit.get(audit, f"{audit:#x}")
            if arch == "x86_64" and nr & X32_SYSCALL_BIT:
                arch = "x32"
            name = table.name(arch, nr) if arch in table.by_arch else None
            if name is None:
                unknown.append(f"{arch}:{nr}")
            else:
                seen.add((arch, name))
        return Recording(
            syscalls=frozenset(seen),
            values=frozenset((n, i, v) for n, i, v in data.get("values", [])),
            paths=frozenset((k, p) for k, p in data.get("paths", [])),
            sockaddrs=frozenset((c, f, p, bool(lo)) for c, f, p, lo in data.get("sockaddrs", [])),
            clone3_ns=bool(data.get("clone3_ns")), started=bool(data.get("started")),
            unknown=tuple(sorted(unknown)), tasks=int(data.get("tasks", 0)),
            notifications=int(data.get("notifications", 0)),
            peers=frozenset((str(a), int(p)) for a, p in data.get("peers", [])),
        )
