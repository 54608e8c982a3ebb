"""The executor's set-up steps in C (src/stockade/executor/steps), each driven by a small
C program (tests/unit/executor_steps) and checked against the outcome the step must
have: what is denied and allowed, the status bytes, the exit codes, the report line. No
root needed (Landlock with no_new_privs, the init as a child subreaper, a pty from the
host's devpts); the namespace-wide settings need root:
tests/integration/runner/test_executor_steps_ns.py."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from stockade.linux import host
from stockade.profiles.landlock import FS_BY_ABI, NEWEST_KNOWN_ABI, POLICY_FS, READ, WRITE, Scope
from stockade.runner.codes import EXIT_CODES
from tests.unit.executor_steps.build import compile_driver


@pytest.fixture(scope="module")
def bins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("executor_steps")
    for name in ("landlock_driver", "init_driver", "lsm_driver", "tty_driver"):
        compile_driver(name, out)
    return out


# --- Landlock --------------------------------------------------------------------------

def _landlock(bins: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / "landlock_driver"), *args], capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.fixture
def abi() -> int:
    host_abi = host.landlock_abi()
    if host_abi <= 0:
        pytest.skip("Landlock is not available on this kernel (ABI 0)")
    return min(host_abi, NEWEST_KNOWN_ABI)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for d in ("allowed", "denied"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "f").write_text("x")
    (tmp_path / "rw_file").write_text("x")
    return tmp_path


def _ruleset_args(abi: int, tree: Path, scope_on: str) -> list[str]:
    handled = int(POLICY_FS) & int(FS_BY_ABI[abi])
    scoped = int(Scope.SIGNAL | Scope.ABSTRACT_UNIX_SOCKET) if abi >= 6 else 0
    return [str(abi), hex(handled), str(scoped), scope_on,
            "rule", str(tree / "allowed"), hex(int(READ)),
            "rule", str(tree / "missing"), hex(int(READ)),  # not in this root: skipped
            # a directory's rights on a file: narrowed to the file rights, else EINVAL
            "extra", str(tree / "rw_file"), hex(int(READ | WRITE)),
            "--"]


def test_landlock_denies_and_allows_per_rule(bins: Path, abi: int, tree: Path) -> None:
    outside = subprocess.Popen(["sleep", "60"])  # a process outside the new domain
    try:
        args = [*_ruleset_args(abi, tree, "1"),
                "read", str(tree / "allowed" / "f"), "read", str(tree / "denied" / "f"),
                "write", str(tree / "allowed" / "f"), "write", str(tree / "rw_file"),
                "read", str(tree / "rw_file"), "signal", str(outside.pid)]
        done = _landlock(bins, args)
    finally:
        outside.kill()
        outside.wait()
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.splitlines() == [
        "skipped 1",  # the rule on a path missing from this root
        f"read {tree}/allowed/f ok",
        f"read {tree}/denied/f errno {errno.EACCES}",  # no rule: really denied
        f"write {tree}/allowed/f errno {errno.EACCES}",  # a read-only rule
        f"write {tree}/rw_file ok",  # the extra rule, narrowed to a file's rights
        f"read {tree}/rw_file ok",
        # ABI 6: signals to outside the domain are scoped (a process of the sandbox
        # cannot signal the host's); earlier ABIs cannot say it
        f"signal {outside.pid} errno {errno.EPERM}" if abi >= 6 else f"signal {outside.pid} ok",
    ]


def test_landlock_unscoped_for_a_joining_process(bins: Path, abi: int, tree: Path) -> None:
    if abi < 6:
        pytest.skip(f"Landlock ABI {abi} has no scoping (needs 6)")
    outside = subprocess.Popen(["sleep", "60"])
    try:
        done = _landlock(bins, [*_ruleset_args(abi, tree, "0"), "signal", str(outside.pid)])
    finally:
        outside.kill()
        outside.wait()
    assert (done.stdout, done.returncode) == (f"skipped 1\nsignal {outside.pid} ok\n", 0)


def test_landlock_kernel_refusal_fails_the_step(bins: Path, abi: int, tree: Path) -> None:
    """The kernel's EINVAL on a rule is the step's failure, with its exit code: nothing
    after it runs (the read below is never tried)."""
    handled = int(POLICY_FS) & int(FS_BY_ABI[abi])
    args = [str(abi), hex(handled), "0", "1",
            "rule", str(tree / "allowed"), hex(1 << 40),  # a right the ruleset does not handle
            "--", "read", str(tree / "denied" / "f")]
    done = _landlock(bins, args)
    assert done.stdout == f"failed landlock {errno.EINVAL}\n"
    assert done.returncode == EXIT_CODES["landlock"]


# --- the tiny init ---------------------------------------------------------------------


def _run_init(driver: Path, mode: str) -> tuple[bytes, int, str]:
    r, w = os.pipe()
    try:
        proc = subprocess.Popen([str(driver), mode, str(w)], pass_fds=(w,),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(w)
        w = -1
        if mode == "wait":
            assert proc.stdout is not None
            assert proc.stdout.read(1) == b"r"  # the payload runs: signals are blocked
            proc.send_signal(signal.SIGTERM)  # to the init: it must forward it
        _, err = proc.communicate(timeout=60)
        status = os.read(r, 64)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    return status, proc.returncode, err.decode()


@pytest.mark.parametrize(("mode", "status", "code"), [
    ("exit3", b"e3", 3),
    ("wait", b"s%d" % signal.SIGTERM, 128 + signal.SIGTERM),  # forwarded, then reported
    ("orphan", b"e3", 3),  # the payload's orphan reaped too: no child left behind
])
def test_init_reports_status_and_exits_as_the_payload(bins: Path, mode: str, status: bytes,
                                                       code: int) -> None:
    assert _run_init(bins / "init_driver", mode) == (status, code, "no-children\n")


# --- LSM exec label --------------------------------------------------------------------


def test_lsm_label_refuses_a_fake_proc(bins: Path, tmp_path: Path) -> None:
    """CVE-2019-16884 class: a /proc that is not procfs must not swallow the label."""
    attr = tmp_path / "thread-self" / "attr"
    attr.mkdir(parents=True)
    (attr / "exec").write_text("")
    (attr / "apparmor").mkdir()
    (attr / "apparmor" / "exec").write_text("")
    for aa, se in (("confined", "-"), ("-", "system_u:system_r:container_t:s0")):
        done = subprocess.run([str(bins / "lsm_driver"), str(tmp_path), aa, se],
                              capture_output=True, text=True, check=False, timeout=60)
        assert done.stdout == "failed\tlsm\t0\t/proc is not procfs\n"
        assert done.returncode == EXIT_CODES["lsm"]
    assert (attr / "exec").read_text() == "" and (attr / "apparmor" / "exec").read_text() == ""


@pytest.mark.parametrize(("aa", "se", "what", "name"), [
    ("confined", "-", "apparmor exec", "confined"),
    ("-", "system_u:system_r:container_t:s0", "selinux exec", "system_u:system_r:container_t:s0"),
])
def test_lsm_label_on_this_kernel(bins: Path, aa: str, se: str, what: str, name: str) -> None:
    """The real /proc passes the procfs checks, so the kernel answers the write. Without
    AppArmor/SELinux active (here) it refuses every exec label (EINVAL) and the step
    fails with its code; with one active (the LSM lab) the label is taken, or the
    refusal is the kernel's, named after the label."""
    done = subprocess.run([str(bins / "lsm_driver"), "/proc", aa, se], capture_output=True,
                          text=True, check=False, timeout=60)
    if not {"apparmor", "selinux"} & set(host.active_lsms()):
        assert done.stdout == (f"failed\tlsm\t{errno.EINVAL}\t{what} {name}: "
                               f"{os.strerror(errno.EINVAL)}\n")
        assert done.returncode == EXIT_CODES["lsm"]
        return
    if done.returncode == 0:
        assert done.stdout == "ok\n"
        return
    step, err, message = done.stdout.rstrip("\n").split("\t")[1:]
    assert (step, done.returncode) == ("lsm", EXIT_CODES["lsm"]), done.stdout
    assert int(err) > 0 and message == f"{what} {name}: {os.strerror(int(err))}", done.stdout


def test_lsm_label_none_is_a_no_op(bins: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(bins / "lsm_driver"), str(tmp_path), "-", "-"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert (done.stdout, done.returncode) == ("ok\n", 0)


# --- the OCI terminal ------------------------------------------------------------------


def _terminal_line(driver: Path) -> bytes:
    """Run DRIVER SOCK_FD 33 101 (the console size), take the pty master it sends, return
    what it wrote on the terminal."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = subprocess.Popen([str(driver), str(theirs.fileno()), "33", "101"],
                            pass_fds=(theirs.fileno(),), stderr=subprocess.PIPE)
    theirs.close()
    try:
        msg, fds, _, _ = socket.recv_fds(ours, 1, 1)
        assert msg == b"m" and len(fds) == 1, "no pty master on the console socket"
        master = fds[0]
        out = b""
        while b"\n" not in out:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, "no output on the pty master"
            try:
                chunk = os.read(master, 256)
            except OSError:  # EIO: the slave side is closed
                break
            if not chunk:
                break
            out += chunk
        # the master stays open until the end: closing it would hang up the session
        _, err = proc.communicate(timeout=60)
        os.close(master)
    finally:
        ours.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return out.strip()


def test_pty_master_sent_slave_is_the_terminal(bins: Path) -> None:
    """The master arrives on the console socket; the slave is stdin/stdout/stderr and the
    controlling terminal, at the console size asked for."""
    if not os.path.exists("/dev/pts/ptmx"):
        pytest.skip("no devpts at /dev/pts")
    assert _terminal_line(bins / "tty_driver") == b"hello 33 101 tty=1 ctty=1"
