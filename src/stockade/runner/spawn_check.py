"""Can the init start the payload with posix_spawn (vfork + execve, no Python in the child)?

The fast way to start the payload: the init applies every inherited step to itself
(capabilities, no_new_privs, Landlock, rlimits, and the seccomp filter last), then
posix_spawn()s the command. No fork of the Python interpreter: no copy of its page
tables, no page fault per page the child touches, no teardown of its memory at execve.
The init then lives under the payload's filter and limits, so this is chosen at compile
time only when it cannot change what the payload gets or break the init:

- no_new_privs (without it the payload drops capabilities after seccomp: its own steps);
- no AppArmor/SELinux exec label (written by the task that execs);
- no rlimit the init itself could trip over (address space, data, stack, nproc);
- the filter allows every syscall posix_spawn and the init make afterwards (checked by
  running the compiled BPF on them, for this host's architecture).

Otherwise the payload is a fork of the init that does its last steps itself.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from stockade.linux.consts import CLONE_VFORK, CLONE_VM

if TYPE_CHECKING:
    from collections.abc import Callable

    from stockade.policy.model import Action, ActionKind

# rlimits that would bind the init's own interpreter, or its one fork.
_INIT_RLIMITS = frozenset({"as", "data", "stack", "nproc"})

SIGCHLD = 17
PROT_RW = 0x3
MAP_PRIVATE_ANON_STACK = 0x2 | 0x20 | 0x20000

# (syscall, args): must be allowed. posix_spawn: mmap/munmap of the child's stack,
# clone(CLONE_VM|CLONE_VFORK), and in the child rt_sigaction/rt_sigprocmask, setsid,
# execve (exit_group when it fails); then the init: wait, forward, report, exit.
_MUST_ALLOW: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("mmap", (0, 1 << 16, PROT_RW, MAP_PRIVATE_ANON_STACK, 0xFFFFFFFF, 0)),
    ("munmap", ()),
    ("clone", (CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0)),
    ("rt_sigaction", ()),
    ("rt_sigprocmask", ()),
    ("setsid", ()),
    ("execve", ()),
    ("exit_group", ()),
    ("exit", ()),
    ("close", ()),
    ("write", ()),
    ("wait4", ()),
    ("rt_sigtimedwait", ()),
    ("kill", ()),
    ("getpid", ()),
    ("brk", ()),
)
# Must not kill: glibc falls back or ignores an error here (clone3 only on ENOSYS).
_MAY_FAIL = ("madvise", "mprotect", "prlimit64", "getrlimit")


def spawn_blockers(no_new_privs: bool, has_lsm_label: bool, rlimit_names: list[str],
                   bpf: bytes, arch: str) -> list[str]:
    """Why the payload cannot be posix_spawn()ed by the init; empty: it can. (A second
    filter, from an OCI overlay, is ruled out per run: runner.plan.spawns.)"""
    why: list[str] = []
    if not no_new_privs:
        why.append("no_new_privileges is false")
    if has_lsm_label:
        why.append("an LSM exec label is set")
    bound = sorted(_INIT_RLIMITS.intersection(rlimit_names))
    if bound:
        why.append("rlimits " + ", ".join(bound))
    if not bpf:
        why.append("no seccomp filter")
    if why:
        return why
    from stockade.linux.syscall_table import syscall_table
    from stockade.policy import model as m
    from stockade.seccomp.bpf import BpfError
    from stockade.seccomp.check import evaluate

    table = syscall_table()
    fatal = (m.ActionKind.KILL_PROCESS, m.ActionKind.KILL_THREAD, m.ActionKind.TRAP,
             m.ActionKind.NOTIFY)

    def verdict(name: str, args: tuple[int, ...] = ()) -> m.Action | None:
        nr = table.number(arch, name)
        return None if nr is None else evaluate(bpf, arch, nr, args)

    try:
        _check_filter(verdict, why, fatal)
    except BpfError as exc:  # the kernel will refuse it when it is loaded (fail closed)
        return [f"the filter cannot be evaluated: {exc}"]
    return why


def _check_filter(verdict: Callable[..., Action | None], why: list[str],
                  fatal: tuple[ActionKind, ...]) -> None:
    from stockade.policy.model import ActionKind

    for name, args in _MUST_ALLOW:
        act = verdict(name, args)
        if act is not None and not act.is_allow:
            why.append(f"the filter does not allow {name} ({act})")
    act = verdict("clone3")
    if act is not None and not act.is_allow and not (
            act.kind is ActionKind.ERRNO and act.errno == errno.ENOSYS):
        why.append(f"the filter answers clone3 with {act} (glibc falls back only on ENOSYS)")
    for name in _MAY_FAIL:
        act = verdict(name)
        if act is not None and act.kind in fatal:
            why.append(f"the filter kills on {name}")
