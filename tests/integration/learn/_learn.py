"""Helpers: learn a workload with the real CLI, re-run it under the learned policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stockade.linux.hostfacts import HostFacts
from stockade.linux.syscall_table import native_arch, syscall_table
from stockade.policy.loader import load_policy
from stockade.policy.model import ActionKind
from stockade.seccomp.check import evaluate
from stockade.seccomp.filter import compile_filter

PY = sys.executable
# Never made by any workload here; the learned filter must refuse them.
NEVER = ("ptrace", "mount", "reboot", "kexec_load", "init_module", "bpf")


def stockade(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run([PY, "-m", "stockade", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def learn(out: Path, argv: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    return stockade("learn", "-o", str(out), *extra, "--", *argv)


def run(policy: Path, argv: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    return stockade("run", "--policy", str(policy), *extra, "--", *argv)


def assert_never_made_is_killed(policy: Path) -> None:
    """The compiled filter (not the text) kills syscalls the workload never made."""
    p = load_policy(str(policy))
    assert str(p.syscalls.default) == "kill"
    arch = native_arch()
    host = HostFacts.detect()
    prog = compile_filter(p, host).program
    for name in NEVER:
        nr = syscall_table().number(arch, name)
        assert nr is not None
        assert evaluate(prog, arch, nr).kind is ActionKind.KILL_PROCESS, name
