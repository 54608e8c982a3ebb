"""The libseccomp builder process (issue 13.5): killing a compile with SIGKILL left its
forked builder spinning for good, reparented to init. It now dies with its parent, and
stops by itself at the time limit even while the parent cannot act."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# A compile whose builder spins in Python where libseccomp would spin in C (the fork,
# the prctl and the limits are the real ones); the builder writes its pid first.
COMPILE = textwrap.dedent("""
    import os, sys
    from stockade.policy.loader import load_policy
    from stockade.seccomp import forked_build
    from stockade.seccomp.filter import compile_filter
    from stockade.linux.hostfacts import HostFacts

    def spin(*args, **kwargs):
        with open(sys.argv[1] + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        while True:
            pass

    forked_build.libseccomp_filter = spin
    policy = load_policy("strict")
    compile_filter(policy, HostFacts(arch="x86_64", kernel=(6, 18), cap_last_cap=40, landlock_abi=7))
""")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is gone for this purpose)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


Start = Callable[[str], tuple["subprocess.Popen[bytes]", int]]


@pytest.fixture
def compiling(tmp_path: Path) -> Iterator[Start]:
    """start(limit) -> (the compile process, its builder's pid) once the builder spins."""

    def start(timeout: str) -> tuple[subprocess.Popen[bytes], int]:
        pidfile = tmp_path / f"builder-{timeout}"
        env = {**os.environ, "STOCKADE_LIBSECCOMP_TIMEOUT": timeout}
        proc = subprocess.Popen([sys.executable, "-c", COMPILE, str(pidfile)], env=env)
        started.append(proc)
        while not pidfile.exists():
            assert proc.poll() is None, "the compile ended before its builder started"
            time.sleep(0.05)
        builder = int(pidfile.read_text())
        builders.append(builder)
        return proc, builder

    started: list[subprocess.Popen[bytes]] = []
    builders: list[int] = []
    yield start
    for proc in started:
        proc.kill()
        proc.wait()
    for builder in builders:  # never leave a spinning process behind, even on failure
        if alive(builder):
            os.kill(builder, signal.SIGKILL)


def test_builder_dies_with_a_sigkilled_compile(compiling: Start) -> None:
    proc, builder = compiling("600")  # the limit is far away: only the parent's death ends it
    assert alive(builder)
    proc.kill()
    proc.wait()
    assert wait_gone(builder, 30), "the builder outlived its SIGKILLed compile"


def test_builder_stops_itself_at_the_limit_while_its_parent_cannot(compiling: Start) -> None:
    proc, builder = compiling("1")
    proc.send_signal(signal.SIGSTOP)  # the parent's own timer cannot fire now
    try:
        assert wait_gone(builder, 30), "the builder ran past its own time limit"
        assert proc.poll() is None  # the parent is still there: the builder ended itself
    finally:
        proc.send_signal(signal.SIGCONT)


def test_a_hung_build_is_a_one_line_error(tmp_path: Path) -> None:
    """The parent side: the time limit gives the usual refusal, and no builder is left."""
    env = {**os.environ, "STOCKADE_LIBSECCOMP_TIMEOUT": "1"}
    pidfile = tmp_path / "builder"
    done = subprocess.run([sys.executable, "-c", COMPILE, str(pidfile)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "did not finish building the filter within 1 s" in done.stderr
    assert not alive(int(pidfile.read_text()))
