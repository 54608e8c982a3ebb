"""What a filter's arches imply: byte order, argument width, multiplexed socket calls."""

from __future__ import annotations

import sys

from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts
from stockade.linux.syscall_table import ARCH_TOKENS
from stockade.policy import model as m

# Arches whose filters compare only the low 32 bits of each argument: the 32-bit arches,
# and the ILP32 ABIs on 64-bit kernels (x32, mips n32), where libseccomp — and so runc
# and Docker — treat every argument as 32 bits wide. On those, a policy's conditions
# are judged on the low word, which is all the filter can see.
ARGS_32BIT = frozenset({"x86", "arm", "mips", "mipsel", "ppc", "s390", "parisc",
                        "x32", "mips64n32", "mipsel64n32"})

# An arch token without __AUDIT_ARCH_LE (linux/audit.h) is a big-endian arch.
BIG_ENDIAN = frozenset(a for a, token in ARCH_TOKENS.items() if not token & 0x40000000)

# arches where libseccomp maps socket calls (and SysV IPC) onto a multiplexer syscall
MULTIPLEXED = frozenset({"x86", "s390", "s390x", "ppc", "ppc64", "ppc64le", "mips", "mipsel"})


def bpf_arches(policy: m.Policy, host: HostFacts) -> tuple[str, ...]:
    """The policy's arches a BPF program for this host can hold: one program has one byte
    order (libseccomp refuses to mix them, and a kernel never presents the other)."""
    big = host.arch in BIG_ENDIAN
    arches = tuple(a for a in policy.syscalls.arches if (a in BIG_ENDIAN) == big)
    if not arches:
        raise StockadeError(
            f"none of the policy's arches ({', '.join(policy.syscalls.arches)}) can run on a "
            f"{host.arch} host; add `native` to syscalls.arches or compile with --arch")
    return arches


def bpf_buildable(host: HostFacts) -> bool:
    """libseccomp here writes a program in this machine's byte order only (and the checks
    that read it back assume so): a host of the other byte order needs its own machine."""
    return (host.arch in BIG_ENDIAN) == (sys.byteorder == "big")
