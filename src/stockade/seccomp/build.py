"""Building: planned rules -> a BPF program, through libseccomp (pyseccomp).

libseccomp is imported only here and in the Docker/OCI checks that replay runc: a
process that only loads a cached program never pays for it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import pyseccomp

from stockade.errors import StockadeError
from stockade.linux.syscall_table import ARCH_TOKENS
from stockade.policy import model as m
from stockade.seccomp import bpf
from stockade.seccomp.actions import action_ret
from stockade.seccomp.arches import MULTIPLEXED
from stockade.seccomp.rules import ArchPlan, ordered

# libseccomp's enum scmp_compare
LIBSECCOMP_OP = MappingProxyType({
    m.ArgOp.NE: 1, m.ArgOp.LT: 2, m.ArgOp.LE: 3, m.ArgOp.EQ: 4, m.ArgOp.GE: 5, m.ArgOp.GT: 6,
    m.ArgOp.MASKED_EQ: 7,
})


def libseccomp_filter(plans: Iterable[ArchPlan], default: m.Action,
                      lossy: set[tuple[str, str]] | None = None) -> object:
    """Every arch's plan as one libseccomp filter; the rules a multiplexed arch had to
    drop are added to `lossy` as (arch, syscall)."""
    lossy = set() if lossy is None else lossy
    merged = None
    for plan in plans:
        flt = arch_filter(default, plan.arch)
        flt.set_attr(pyseccomp.Attr.ACT_BADARCH, bpf.SECCOMP_RET_KILL_PROCESS)
        flt.set_attr(pyseccomp.Attr.CTL_NNP, 0)  # the runner sets no_new_privs itself
        flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)  # binary tree: O(log n) syscall lookup
        for rule in ordered(plan.rules):
            args = [pyseccomp.Arg(c.index, LIBSECCOMP_OP[c.op],
                                  c.mask if c.op is m.ArgOp.MASKED_EQ else c.value,
                                  c.value if c.op is m.ArgOp.MASKED_EQ else 0)
                    for c in rule.args]
            try:
                flt.add_rule(action_ret(rule.action), rule.syscall, *args)
            except OSError as exc:
                if exc.errno == errno.EEXIST and args and plan.arch in MULTIPLEXED:
                    # libseccomp also writes socket()/ipc rules onto the multiplexed
                    # socketcall()/ipc(), where argument checks cannot survive, so two
                    # different checks collide there; this arch keeps the stricter one.
                    lossy.add((plan.arch, rule.syscall))
                    continue
                raise Refused(f"libseccomp refused the rule for {rule.syscall!r} on "
                              f"{plan.arch}: {exc.strerror}", rule.syscall) from None
        if merged is None:
            merged = flt
        else:
            merged.merge(flt)
    assert merged is not None
    return merged


def arch_filter(default: m.Action, arch: str) -> Any:
    """An empty libseccomp filter for `arch` alone. The native arch goes before the other
    comes in: libseccomp refuses (EDOM) a filter holding two byte orders even for a moment."""
    flt = pyseccomp.SyscallFilter(action_ret(default))
    native = pyseccomp.system_arch()
    token = ARCH_TOKENS[arch]
    if token != native:
        flt.remove_arch(native)
        flt.add_arch(token)
    return flt


class Refused(StockadeError):
    """libseccomp refused a rule of `syscall` (e.g. EEXIST for two overlapping rules it
    reads as the same): that syscall is rebuilt with its rules cut apart."""

    def __init__(self, message: str, syscall: str) -> None:
        super().__init__(message)
        self.syscall = syscall


def export_bpf(flt: object) -> bytes:
    """The filter's BPF program (libseccomp writes it to a file descriptor only)."""
    fd = os.memfd_create("stockade-bpf", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "rb") as reader, open(fd, "wb", closefd=False) as writer:
            flt.export_bpf(writer)  # type: ignore[attr-defined]
            writer.flush()
            reader.seek(0)
            return reader.read()
    finally:
        os.close(fd)
