"""The compiled filter on the real kernel: a child loads it and makes real syscalls."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from stockade.linux.hostfacts import HostFacts
from stockade.linux.syscalls import prctl, seccomp_set_filter
from stockade.policy.loader import load_policy
from stockade.seccomp.filter import compile_bpf

PR_SET_NO_NEW_PRIVS = 38
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def raw(nr: int, *args: int) -> int:
    """A raw syscall: returns -errno on failure."""
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    return -ctypes.get_errno() if rc == -1 else rc


def in_filtered_child(bpf: bytes, probe: Callable[[], int]) -> tuple[int | None, int | None]:
    """Fork, load the filter (no_new_privs first, as an unprivileged task must), run probe.
    Returns (probe result, None) or (None, killing signal)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 0
        try:
            os.close(r)
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            seccomp_set_filter(bpf)
            result = probe()
            os.write(w, str(result).encode())
        except BaseException:  # noqa: BLE001 - a child must never unwind into pytest
            code = 3
        os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 64):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    assert os.WEXITSTATUS(status) == 0, "child failed before the probe"
    return int(data), None


@pytest.fixture(scope="module")
def host() -> HostFacts:
    h = HostFacts.detect()
    if h.arch != "x86_64":
        pytest.skip("syscall numbers below are x86_64's")
    return h


NR = {"getpid": 39, "uname": 63, "personality": 135, "mkdirat": 258, "ptrace": 101, "unshare": 272,
      "socket": 41, "clone": 56}


def policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_denied_allowed_and_unknown_syscalls(tmp_path: Path, host: HostFacts) -> None:
    bpf = compile_bpf(load_policy(policy(tmp_path, """\
        stockade: 1
        name: k
        extends: [default]
        syscalls:
          deny: [ptrace, uname]
          rules:
            - {syscalls: [mkdirat], action: "errno:EXDEV"}
            - {syscalls: [socket], action: "errno:EAFNOSUPPORT", args: [{index: 0, op: eq, value: AF_PACKET}]}
        """)), host)
    pid_result, _ = in_filtered_child(bpf, lambda: raw(NR["getpid"]))
    assert pid_result is not None and pid_result > 0  # allowed: a real pid
    assert in_filtered_child(bpf, lambda: raw(NR["uname"], 0)) == (-errno.EPERM, None)
    assert in_filtered_child(bpf, lambda: raw(NR["ptrace"], 0, 0, 0, 0)) == (-errno.EPERM, None)
    assert in_filtered_child(bpf, lambda: raw(NR["mkdirat"], 0, 0, 0)) == (-errno.EXDEV, None)
    assert in_filtered_child(bpf, lambda: raw(NR["socket"], 17, 3, 0)) == (-errno.EAFNOSUPPORT, None)
    # a syscall number newer than the policy's vocabulary: ENOSYS, not EPERM
    assert in_filtered_child(bpf, lambda: raw(470)) == (-errno.ENOSYS, None)
    # personality: Docker's default allows only listed values
    assert in_filtered_child(bpf, lambda: raw(NR["personality"], 0xFFFFFFFF))[0] is not None
    assert in_filtered_child(bpf, lambda: raw(NR["personality"], 0x0040000)) == (-errno.EPERM, None)


def test_kill_actions_kill(tmp_path: Path, host: HostFacts) -> None:
    bpf = compile_bpf(load_policy(policy(tmp_path, """\
        stockade: 1
        name: kill
        extends: [default]
        syscalls:
          rules:
            - {syscalls: [uname], action: kill}
            - {syscalls: [getppid], action: trap}
        """)), host)
    assert in_filtered_child(bpf, lambda: raw(NR["uname"], 0)) == (None, signal.SIGSYS)
    assert in_filtered_child(bpf, lambda: raw(110)) == (None, signal.SIGSYS)  # getppid -> SIGSYS via trap


def test_strict_blocks_namespace_creation_but_not_threads(host: HostFacts) -> None:
    bpf = compile_bpf(load_policy("strict"), host)
    CLONE_NEWUSER = 0x10000000
    assert in_filtered_child(bpf, lambda: raw(NR["unshare"], CLONE_NEWUSER)) == (-errno.EPERM, None)
    # clone(CLONE_NEWUSER | SIGCHLD): refused before any child exists
    assert in_filtered_child(bpf, lambda: raw(NR["clone"], CLONE_NEWUSER | 17, 0, 0, 0, 0)) == (-errno.EPERM, None)
    # clone3 gets ENOSYS so that libc falls back to clone, whose flags seccomp can read
    assert in_filtered_child(bpf, lambda: raw(435, 0, 0)) == (-errno.ENOSYS, None)

    def fork_and_reap() -> int:
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    assert in_filtered_child(bpf, fork_and_reap) == (7, None)


def test_strict_denies_io_uring_and_userfaultfd_like_default(host: HostFacts) -> None:
    """Issue 13.4: @system-service let io_uring and userfaultfd through `strict`, which
    Docker's profile (`default`) denies. Unfiltered, io_uring_setup(1, NULL) fails with
    EFAULT (it reads its params): EPERM can only come from the filter."""
    io_uring_setup, userfaultfd = 425, 323
    assert raw(io_uring_setup, 1, 0) == -errno.EFAULT
    for preset in ("strict", "default"):
        bpf = compile_bpf(load_policy(preset), host)
        assert in_filtered_child(bpf, lambda: raw(io_uring_setup, 1, 0)) == (-errno.EPERM, None), preset
        assert in_filtered_child(bpf, lambda: raw(userfaultfd, 0)) == (-errno.EPERM, None), preset
