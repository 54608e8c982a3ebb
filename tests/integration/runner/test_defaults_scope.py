"""Issue 13.9, defaults that opened more than users assume, on the real kernel as root:

- `network: host` reached the host's abstract unix sockets, and a sandbox without a pid
  namespace could signal host processes: Landlock's scopes (ABI 6) now close both;
- `--rootfs /` showed the host's /run: it is the host-root mode, /run hidden;
- a set-up killed by the memory limit said "internal" (or that the payload was OOM
  killed), `pids: 1` said "exec-permission": both now name the limit.

Each test shows the opening (the same attack with the protection off, or on the host)
before it shows the fix.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.api import run
from stockade.errors import RunnerError
from stockade.linux import syscalls as L
from stockade.policy.model import Landlock, Lsm, Policy, User
from tests.conftest import require_root
from tests.integration.runner.conftest import with_resources

pytestmark = pytest.mark.root
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
PY = sys.executable if sys.executable.startswith("/usr/") else "/usr/bin/python3"
CONNECTED, REFUSED_EPERM, REFUSED_OTHER = 0, 10, 11
# The payload: connect to an abstract unix socket, the outcome as the exit status.
CONNECT = (
    "import errno, socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1].replace('@', '\\0', 1))\n"
    "except OSError as e:\n"
    f"    sys.exit({REFUSED_EPERM} if e.errno == errno.EPERM else {REFUSED_OTHER})\n"
)


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


def require_scoping() -> None:
    if L.landlock_abi() < 6:
        pytest.skip(f"Landlock ABI {L.landlock_abi()} has no scoping (needs 6, Linux 6.12)")


def policy_file(tmp_path: Path, network: str) -> str:
    path = tmp_path / f"host-net-{len(list(tmp_path.iterdir()))}.yaml"  # one file each
    path.write_text(f"stockade: 1\nname: host-net\nextends: [default]\nnetwork: {network}\n")
    return str(path)


@pytest.fixture
def host_abstract_socket() -> Iterator[str]:
    """A host process's abstract socket, listening (the sandbox's target)."""
    name = f"@stockade-test-{os.getpid()}-{os.urandom(4).hex()}"
    with socket.socket(socket.AF_UNIX) as srv:
        srv.bind(name.replace("@", "\0", 1))
        srv.listen(4)
        yield name


def test_host_network_cannot_reach_host_abstract_sockets(tmp_path: Path,
                                                         host_abstract_socket: str,
                                                         leak_check: None) -> None:
    require_scoping()
    argv = [PY, "-c", CONNECT, host_abstract_socket]
    # The opening: the host's network namespace holds the host's abstract sockets, and
    # a policy that grants them explicitly reaches them.
    granted = policy_file(tmp_path, "{mode: host, host_abstract_sockets: true}")
    assert run(argv, policy=granted, env=ENV).exit_code == CONNECTED
    # The default with network host: scoped by Landlock, EPERM.
    default = policy_file(tmp_path, "{mode: host}")
    assert run(argv, policy=default, env=ENV).exit_code == REFUSED_EPERM


def test_abstract_sockets_inside_the_sandbox_still_work(tmp_path: Path) -> None:
    require_scoping()
    script = (
        "import socket, sys\n"
        "name = '\\0stockade-inside-' + str(__import__('os').getpid())\n"
        "srv = socket.socket(socket.AF_UNIX); srv.bind(name); srv.listen(1)\n"
        "cli = socket.socket(socket.AF_UNIX); cli.connect(name)\n"
        "conn, _ = srv.accept(); cli.sendall(b'ok')\n"
        "sys.exit(0 if conn.recv(2) == b'ok' else 3)\n"
    )
    res = run([PY, "-c", script], policy=policy_file(tmp_path, "{mode: host}"), env=ENV)
    assert res.exit_code == 0


def _no_pid_ns(policy: Policy, landlock: str) -> Policy:
    """Root without a pid or user namespace: only Landlock stands between the payload
    and the host's root-owned processes (same uid, CAP_KILL kept)."""
    return dataclasses.replace(
        policy, namespaces=frozenset({"mount", "uts", "ipc", "net", "cgroup"}),
        user=User(map="host"), lsm=Lsm(landlock=Landlock(landlock)),
        digest=f"{policy.digest}-nopidns-{landlock}")


def _kill(pid: int, policy: Policy) -> int:
    script = f"import os, sys\ntry:\n    os.kill({pid}, 15)\nexcept PermissionError:\n    sys.exit(10)\n"
    return run([PY, "-c", script], policy=policy, env=ENV).exit_code


def _gone(proc: subprocess.Popen[bytes]) -> bool:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_sandbox_cannot_signal_a_host_process(default_policy: Policy, leak_check: None) -> None:
    require_scoping()
    victim = subprocess.Popen(["sleep", "60"])
    try:
        # The opening: without Landlock, the payload kills the host's process.
        assert _kill(victim.pid, _no_pid_ns(default_policy, "off")) == 0
        assert _gone(victim)
        victim = subprocess.Popen(["sleep", "60"])
        # Scoped: EPERM, and the host process lives on.
        assert _kill(victim.pid, _no_pid_ns(default_policy, "best-effort")) == 10
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_signals_inside_the_sandbox_still_work(default_policy: Policy) -> None:
    require_scoping()
    res = run(["/bin/sh", "-c", "sleep 30 & kill $! && wait $!; [ $? -eq 143 ]"],
                       policy=_no_pid_ns(default_policy, "best-effort"), env=ENV)
    assert res.exit_code == 0


def test_rootfs_slash_hides_the_hosts_run(leak_check: None) -> None:
    if not os.listdir("/run"):
        pytest.skip("the host's /run is empty: nothing to hide")
    marker = "stockade-test-" + os.urandom(4).hex()
    Path("/run", marker).mkdir()
    try:
        probe = ["/bin/sh", "-c", f"[ ! -e /run/{marker} ] && [ -z \"$(ls -A /run)$(ls -A /tmp)\" ]"]
        assert run(probe, env=ENV).exit_code == 0  # the host-root mode
        assert run(probe, rootfs="/", env=ENV).exit_code == 0
        link = Path("/tmp") / marker
        link.symlink_to("/")
        try:
            assert run(probe, rootfs=str(link), env=ENV).exit_code == 0
        finally:
            link.unlink()
    finally:
        Path("/run", marker).rmdir()


def test_oom_during_set_up_names_the_memory_limit(default_policy: Policy,
                                                  leak_check: None) -> None:
    # below what the executor's own set-up takes (its pages, the new root's tmpfs)
    pol = with_resources(default_policy, memory=64 << 10, swap=0)
    with pytest.raises(RunnerError) as info:
        run(["/bin/true"], policy=pol, env=ENV)
    assert info.value.step == "cgroups" and info.value.exit_code == 111
    assert "memory limit (64 KiB) was reached during set-up" in info.value.message
    assert "internal" not in str(info.value)


def test_oom_in_the_payload_is_still_the_payloads(default_policy: Policy) -> None:
    pol = with_resources(default_policy, memory=16 << 20, swap=0)
    res = run([PY, "-c", "x = bytearray(200 << 20)"], policy=pol, env=ENV)
    assert res.oom_killed and res.exit_code == 137


@pytest.mark.parametrize("init", [True, False])
def test_pids_one_names_the_pids_limit(default_policy: Policy, init: bool,
                                       leak_check: None) -> None:
    pol = with_resources(default_policy, pids=1)
    if not init:  # the payload alone fits in one pid
        assert run(["/bin/true"], policy=pol, env=ENV, init=False).exit_code == 0
        return
    with pytest.raises(RunnerError) as info:
        run(["/bin/true"], policy=pol, env=ENV)
    assert info.value.step == "cgroups" and info.value.exit_code == 111
    assert "pids limit (1) does not leave room for the payload" in info.value.message
    assert "needs at least 2" in info.value.message


def test_pids_one_with_a_tty_names_the_pids_limit(default_policy: Policy) -> None:
    # --tty: the init forks the payload instead of posix_spawn (the other start path).
    pol = with_resources(default_policy, pids=1)
    with pytest.raises(RunnerError) as info:
        run(["/bin/true"], policy=pol, env=ENV, tty=True)
    assert info.value.step == "cgroups" and "pids limit (1)" in info.value.message


def test_ordinary_runs_still_run_on_both_start_paths() -> None:
    # The EXECUTING marker: posix_spawn by the init, and the payload alone (no init).
    assert run(["/bin/sh", "-c", "exit 7"], env=ENV).exit_code == 7
    assert run(["/bin/sh", "-c", "exit 7"], env=ENV, init=False).exit_code == 7
