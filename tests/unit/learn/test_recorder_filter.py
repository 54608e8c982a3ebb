"""The recorder's filter, run through the BPF interpreter."""

from __future__ import annotations

from stockade.learn.recorder_filter import recorder_program
from stockade.linux.syscall_table import AUDIT_ARCH, syscall_table
from stockade.seccomp import bpf

NOTIF, ALLOW = bpf.SECCOMP_RET_USER_NOTIF, bpf.SECCOMP_RET_ALLOW


def _ret(prog: bytes, name: str, args: tuple[int, ...] = (), arch: str = "x86_64") -> int:
    nr = syscall_table().number(arch, name)
    assert nr is not None
    return bpf.run(bpf.decode(prog), bpf.seccomp_data(nr, AUDIT_ARCH[arch], args))


def test_everything_notifies_but_the_handoff() -> None:
    prog = recorder_program("x86_64", 1000, 0x4040)
    assert _ret(prog, "read") == NOTIF
    assert _ret(prog, "sendmsg", (1000, 0, 0x4040)) == ALLOW
    assert _ret(prog, "sendmsg", (1000, 0, 0)) == NOTIF  # other flags: the workload's own
    assert _ret(prog, "sendmsg", (3, 0, 0x4040)) == NOTIF
    assert _ret(prog, "sendmsg", (1000 | 1 << 32, 0, 0x4040)) == NOTIF
    assert _ret(prog, "read", arch="x86") == NOTIF  # other arches always stop


def test_skip_list_passes_known_syscalls() -> None:
    names = [n for n in sorted(syscall_table().by_arch["x86_64"]) if n != "openat"]
    prog = recorder_program("x86_64", 1000, 0x4040, skip=names)  # long: jumps stay in range
    assert _ret(prog, "read") == ALLOW
    assert _ret(prog, "openat") == NOTIF
