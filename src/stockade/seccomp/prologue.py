"""The ENOSYS prologue: syscalls newer than the policy's vocabulary fail with ENOSYS.

Like runc's patchbpf, a few instructions before libseccomp's program answer a syscall
number above the highest one known for its arch, so programs fall back to an older call
instead of failing with EPERM. Shared by our own filter and the runc-like reference build.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stockade.linux.syscall_table import AUDIT_ARCH, X32_SYSCALL_BIT, syscall_table
from stockade.seccomp.bpf import (
    BPF_ABS,
    BPF_JA,
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JMP,
    BPF_K,
    BPF_LD,
    BPF_RET,
    BPF_W,
    Assembler,
    Insn,
)


@dataclass(frozen=True)
class UnknownRange:
    """For one audit arch: syscall numbers above `max_known` are unknown to the policy."""

    audit_arch: int
    max_known: int
    # x86_64 only: numbers with bit 30 set are x32 syscalls; None = leave them to the filter
    x32_max_known: int | None = None
    x32_present: bool = False


def enosys_prologue(ranges: Sequence[UnknownRange], unknown_ret: int) -> list[Insn]:
    """Instructions to put before the main filter: unknown (too new) syscalls -> `unknown_ret`.

    Only `arch` and `nr` are read, so the kernel's per-syscall action cache still applies.
    """
    asm = Assembler()
    asm.stmt(BPF_LD | BPF_W | BPF_ABS, 4)
    for i, r in enumerate(ranges):
        asm.jump(BPF_JMP | BPF_JEQ | BPF_K, r.audit_arch, None, f"next{i}")
        asm.stmt(BPF_LD | BPF_W | BPF_ABS, 0)
        if r.x32_present or r.x32_max_known is not None:
            x32 = f"x32_{i}" if r.x32_max_known is not None else "main"
            asm.jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, x32, None)
        asm.jump(BPF_JMP | BPF_JGT | BPF_K, r.max_known, "unknown", "main")
        if r.x32_max_known is not None:
            asm.label(f"x32_{i}")
            asm.jump(BPF_JMP | BPF_JGT | BPF_K, X32_SYSCALL_BIT + r.x32_max_known, "unknown", "main")
        asm.label(f"next{i}")
    asm.stmt(BPF_JMP | BPF_JA, 0, target="main")
    asm.label("unknown")
    asm.stmt(BPF_RET | BPF_K, unknown_ret)
    asm.label("main")
    return asm.resolve()


def unknown_ranges(arches: Iterable[str]) -> list[UnknownRange]:
    """Per audit arch, the highest syscall number the vocabulary knows. x86_64 and x32
    share one audit arch (x32 numbers have bit 30 set), so they make one range."""
    table = syscall_table()
    arches = list(arches)
    out: list[UnknownRange] = []
    seen_audit: set[int] = set()
    for arch in arches:
        audit = AUDIT_ARCH[arch]
        if audit in seen_audit:
            continue
        seen_audit.add(audit)
        if arch in ("x86_64", "x32"):
            has64, has32 = "x86_64" in arches, "x32" in arches
            max64 = table.max_number("x86_64") if has64 else X32_SYSCALL_BIT - 1
            x32max = table.max_number("x32") - X32_SYSCALL_BIT if has32 else None
            out.append(UnknownRange(audit, max64, x32max, x32_present=True))
        else:
            out.append(UnknownRange(audit, table.max_number(arch)))
    return out
