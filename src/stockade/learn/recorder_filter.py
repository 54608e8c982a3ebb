"""The recorder's seccomp program: every syscall stops for the learner, with two exceptions.

1. `sendmsg(listener_sock, ..., LISTENER_SEND_FLAGS)`: the payload hands its listener fd
   to the learner with it (the executor, seccomp.listener); nobody could answer a
   notification for that call yet. The socket is close-on-exec, so after execve that
   exact call can only be made on a file the workload itself opened as that number with
   those exact flags.
2. `skip`: syscalls an earlier run (`--append`) already recorded and whose arguments and
   paths teach nothing more. They stay in the policy, so nothing the program does is
   missing from it; they just cost no round trip any more.

Other arches (a 32-bit program on x86_64) always notify: the recorder sees their arch.
"""

from __future__ import annotations

from collections.abc import Iterable

from stockade.linux.syscall_table import AUDIT_ARCH, syscall_table
from stockade.seccomp import bpf

_LD_W_ABS = bpf.BPF_LD | bpf.BPF_W | bpf.BPF_ABS
_JEQ = bpf.BPF_JMP | bpf.BPF_JEQ | bpf.BPF_K
_RET = bpf.BPF_RET | bpf.BPF_K


def _arg_lo(index: int) -> int:
    return 16 + 8 * index  # little endian: the low word first


def recorder_program(native: str, listener_sock: int, send_flags: int,
                     skip: Iterable[str] = ()) -> bytes:
    table = syscall_table()
    asm = bpf.Assembler()
    asm.stmt(_LD_W_ABS, 4)
    asm.jump(_JEQ, AUDIT_ARCH[native], "native", None)
    asm.stmt(_RET, bpf.SECCOMP_RET_USER_NOTIF)  # inline: the end may be out of jump range
    asm.label("native")
    asm.stmt(_LD_W_ABS, 0)
    for nr in sorted({n for s in skip if (n := table.number(native, s)) is not None}):
        # an inline return per entry: BPF's conditional jumps reach 255 instructions only
        asm.jump(_JEQ, nr, None, f"skip{nr}")
        asm.stmt(_RET, bpf.SECCOMP_RET_ALLOW)
        asm.label(f"skip{nr}")
    sendmsg = table.number(native, "sendmsg")
    if sendmsg is not None:
        asm.jump(_JEQ, sendmsg, None, "notify")
        for off, value in ((_arg_lo(0), listener_sock), (_arg_lo(0) + 4, 0),
                           (_arg_lo(2), send_flags), (_arg_lo(2) + 4, 0)):
            asm.stmt(_LD_W_ABS, off)
            asm.jump(_JEQ, value, None, "notify")
        asm.stmt(bpf.BPF_JMP | bpf.BPF_JA, 0, target="allow")
    asm.label("notify")
    asm.stmt(_RET, bpf.SECCOMP_RET_USER_NOTIF)
    asm.label("allow")
    asm.stmt(_RET, bpf.SECCOMP_RET_ALLOW)
    return bpf.encode(asm.resolve())
