"""A policy action <-> the 32-bit value a seccomp filter returns for it."""

from __future__ import annotations

from types import MappingProxyType

from stockade.policy import model as m
from stockade.seccomp import bpf

# kernel return values for each action kind (ERRNO adds its errno in the low 16 bits)
_RET = MappingProxyType({
    m.ActionKind.ALLOW: bpf.SECCOMP_RET_ALLOW,
    m.ActionKind.LOG: bpf.SECCOMP_RET_LOG,
    m.ActionKind.KILL_PROCESS: bpf.SECCOMP_RET_KILL_PROCESS,
    m.ActionKind.KILL_THREAD: bpf.SECCOMP_RET_KILL_THREAD,
    m.ActionKind.TRAP: bpf.SECCOMP_RET_TRAP,
    m.ActionKind.NOTIFY: bpf.SECCOMP_RET_USER_NOTIF,
})


def action_ret(action: m.Action) -> int:
    """The 32-bit value the filter returns for an action."""
    if action.kind is m.ActionKind.ERRNO:
        return bpf.SECCOMP_RET_ERRNO | (action.errno & bpf.SECCOMP_RET_DATA)
    return _RET[action.kind]


def ret_action(ret: int) -> m.Action:
    """Inverse of action_ret (for reading BPF results)."""
    full = ret & bpf.SECCOMP_RET_ACTION_FULL
    if full == bpf.SECCOMP_RET_ERRNO:
        return m.Action(m.ActionKind.ERRNO, ret & bpf.SECCOMP_RET_DATA)
    for kind, value in _RET.items():
        if full == value:
            return m.Action(kind)
    if full == bpf.SECCOMP_RET_TRACE:
        return m.Action(m.ActionKind.ERRNO, 38)  # no tracer: the kernel fails with ENOSYS
    return m.Action(m.ActionKind.KILL_PROCESS)
