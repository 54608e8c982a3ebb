"""The executor's set-up steps in C (src/stockade/executor/steps), each driven by a small
C program and compared with its Python twin in runner/ on the same input: the same
outcome, the same status bytes, the same exit codes. No root needed (Landlock with
no_new_privs, the init as a child subreaper, a pty from the host's devpts); the
namespace-wide settings need root: tests/integration/runner/test_executor_steps_ns.py."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.linux import syscalls as L
from stockade.profiles.landlock import FS_BY_ABI, NEWEST_KNOWN_ABI, POLICY_FS, READ, WRITE, Scope
from stockade.runner.codes import EXIT_CODES
from tests.unit.executor_steps.build import compile_driver


@pytest.fixture(scope="module")
def bins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("executor_steps")
    for name in ("landlock_driver", "init_driver", "lsm_driver", "tty_driver"):
        compile_driver(name, out)
    return out


def _python(script: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, check=False, timeout=60, **kw)  # type: ignore[call-overload]


# --- Landlock --------------------------------------------------------------------------

LANDLOCK_TWIN = """
import os, sys
from stockade.linux import syscalls as L
from stockade.runner import landlock
from stockade.runner.plan import LandlockPlan
abi, fs, scoped, scope_on = int(sys.argv[1]), int(sys.argv[2], 0), int(sys.argv[3], 0), sys.argv[4]
args = sys.argv[5:]
i, paths, extra = 0, [], []
while args[i] != "--":
    (paths if args[i] == "rule" else extra).append((args[i + 1], int(args[i + 2], 0)))
    i += 3
plan = LandlockPlan(mode="required", abi=abi, handled_fs=fs, paths=tuple(paths), scoped=scoped)
L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
try:
    notes = landlock.apply(plan, tuple(extra), scoped=scope_on == "1")
except OSError as exc:
    print(f"failed landlock {exc.errno}")
    sys.exit(119)
print(f"skipped {len(notes)}")
tries = args[i + 1:]
for op, target in zip(tries[::2], tries[1::2]):
    try:
        if op == "signal":
            os.kill(int(target), 0)
        else:
            os.close(os.open(target, os.O_WRONLY if op == "write" else os.O_RDONLY))
        print(f"{op} {target} ok")
    except OSError as exc:
        print(f"{op} {target} errno {exc.errno}")
"""


def _landlock_both(bins: Path, args: list[str]) -> tuple[subprocess.CompletedProcess[str], ...]:
    c = subprocess.run([str(bins / "landlock_driver"), *args], capture_output=True, text=True,
                       check=False, timeout=60)
    py = _python(LANDLOCK_TWIN, *args)
    assert py.stderr == "", py.stderr
    return c, py


@pytest.fixture
def abi() -> int:
    host = L.landlock_abi()
    if host <= 0:
        pytest.skip("Landlock is not available on this kernel (ABI 0)")
    return min(host, NEWEST_KNOWN_ABI)


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


def test_landlock_denies_and_allows_as_the_python_runner(bins: Path, abi: int, tree: Path) -> None:
    outside = subprocess.Popen(["sleep", "60"])  # a process outside the new domain
    try:
        args = [*_ruleset_args(abi, tree, "1"),
                "read", str(tree / "allowed" / "f"), "read", str(tree / "denied" / "f"),
                "write", str(tree / "allowed" / "f"), "write", str(tree / "rw_file"),
                "read", str(tree / "rw_file"), "signal", str(outside.pid)]
        c, py = _landlock_both(bins, args)
    finally:
        outside.kill()
        outside.wait()
    assert c.returncode == py.returncode == 0, (c.stdout, c.stderr, py.stdout)
    assert c.stdout == py.stdout
    lines = c.stdout.splitlines()
    assert lines[0] == "skipped 1"
    assert lines[1] == f"read {tree}/allowed/f ok"
    assert lines[2] == f"read {tree}/denied/f errno {errno.EACCES}"  # really denied
    assert lines[3] == f"write {tree}/allowed/f errno {errno.EACCES}"  # read-only rule
    assert lines[4:6] == [f"write {tree}/rw_file ok", f"read {tree}/rw_file ok"]
    # ABI 6: signals to outside the domain are scoped (a process of the sandbox cannot
    # signal the host's); earlier ABIs cannot say it
    assert lines[6] == (f"signal {outside.pid} errno {errno.EPERM}" if abi >= 6
                        else f"signal {outside.pid} ok")


def test_landlock_unscoped_for_a_joining_process(bins: Path, abi: int, tree: Path) -> None:
    if abi < 6:
        pytest.skip(f"Landlock ABI {abi} has no scoping (needs 6)")
    outside = subprocess.Popen(["sleep", "60"])
    try:
        c, py = _landlock_both(bins, [*_ruleset_args(abi, tree, "0"), "signal", str(outside.pid)])
    finally:
        outside.kill()
        outside.wait()
    assert c.stdout == py.stdout == f"skipped 1\nsignal {outside.pid} ok\n"


def test_landlock_kernel_refusal_fails_the_step_as_python(bins: Path, abi: int,
                                                          tree: Path) -> None:
    handled = int(POLICY_FS) & int(FS_BY_ABI[abi])
    args = [str(abi), hex(handled), "0", "1",
            "rule", str(tree / "allowed"), hex(1 << 40),  # a right the ruleset does not handle
            "--", "read", str(tree / "denied" / "f")]
    c, py = _landlock_both(bins, args)
    assert c.stdout == py.stdout == f"failed landlock {errno.EINVAL}\n"
    assert c.returncode == py.returncode == EXIT_CODES["landlock"]


# --- the tiny init ---------------------------------------------------------------------

INIT_TWIN = """
import os, sys
from stockade.linux import syscalls as L
from stockade.runner import child
mode, status_w = sys.argv[1], int(sys.argv[2])
L.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
L.sigmask(L.SIG_BLOCK, child.ALL_SIGNALS)
pid = os.fork()
if pid == 0:
    L.default_signal_handlers(child.ALL_SIGNALS)
    L.sigmask(L.SIG_SETMASK, ())
    if mode == "wait":
        os.write(1, b"r")
        while True:
            L._csignal.pause()
    if mode == "orphan":
        gc = os.fork()
        if gc == 0:
            os._exit(0)
        os.waitid(os.P_PID, gc, os.WEXITED | os.WNOWAIT)
    os._exit(3)
os.close(1)
real_exit = os._exit
def check_then_exit(code):
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        os.write(2, b"no-children\\n")
    real_exit(code)
os._exit = check_then_exit
child._reap(pid, status_w)
"""


def _run_init(cmd: list[str], mode: str) -> tuple[bytes, int, str]:
    r, w = os.pipe()
    try:
        proc = subprocess.Popen([*cmd, mode, str(w)], pass_fds=(w,), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
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
    ("wait", b"s%d" % signal.SIGTERM, 128 + signal.SIGTERM),
    ("orphan", b"e3", 3),
])
def test_init_reports_like_python_reap(bins: Path, mode: str, status: bytes, code: int) -> None:
    c = _run_init([str(bins / "init_driver")], mode)
    py = _run_init([sys.executable, "-c", INIT_TWIN], mode)
    assert c == py == (status, code, "no-children\n")


# --- LSM exec label --------------------------------------------------------------------

LSM_TWIN = """
import sys
from stockade.runner import lsm
from stockade.runner.plan import LsmPlan
aa, se = (None if a == "-" else a for a in sys.argv[1:3])
try:
    lsm.apply(LsmPlan(apparmor_profile=aa, selinux_label=se))
except lsm.LsmError as exc:
    print(f"failed\\tlsm\\t{exc}")
    sys.exit(115)
print("ok")
"""


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


@pytest.mark.parametrize(("aa", "se"), [("confined", "-"), ("-", "system_u:system_r:container_t:s0")])
def test_lsm_label_on_this_kernel_as_python(bins: Path, aa: str, se: str) -> None:
    """The real /proc: without AppArmor/SELinux active (here) both refuse the same way;
    with one active (the LSM lab) both succeed or fail alike."""
    done = subprocess.run([str(bins / "lsm_driver"), "/proc", aa, se], capture_output=True,
                          text=True, check=False, timeout=60)
    py = _python(LSM_TWIN, aa, se)
    c_out = done.stdout.split("\t")
    c_line = "\t".join(c_out[:2] + c_out[3:]) if c_out[0] == "failed" else done.stdout
    assert (c_line, done.returncode) == (py.stdout, py.returncode), (done.stdout, py.stdout)
    if not set(L.lsm_active_ids() or ()) & {L.LSM_ID_APPARMOR, L.LSM_ID_SELINUX}:
        assert done.returncode == EXIT_CODES["lsm"]


def test_lsm_label_none_is_a_no_op(bins: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(bins / "lsm_driver"), str(tmp_path), "-", "-"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert (done.stdout, done.returncode) == ("ok\n", 0)


# --- the OCI terminal ------------------------------------------------------------------


TTY_TWIN = """
import fcntl, os, struct, sys, termios, types
from stockade.runner import child
child._session(types.SimpleNamespace(console_size=(int(sys.argv[2]), int(sys.argv[3]))),
               types.SimpleNamespace(tty_slave=-1, tty_sock=int(sys.argv[1])))
rows, cols = struct.unpack("HHHH", fcntl.ioctl(1, termios.TIOCGWINSZ, bytes(8)))[:2]
try:
    os.close(os.open("/dev/tty", os.O_RDWR))
    ctty = 1
except OSError:
    ctty = 0
tty = int(all(os.isatty(fd) for fd in (0, 1, 2)))
os.write(1, f"hello {rows} {cols} tty={tty} ctty={ctty}\\n".encode())
"""


def _terminal_line(cmd: list[str]) -> bytes:
    """Run cmd SOCK_FD 33 101 (the console size), take the pty master it sends, return
    what it wrote on the terminal."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = subprocess.Popen([*cmd, str(theirs.fileno()), "33", "101"],
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


def test_pty_master_sent_slave_is_the_terminal_as_python(bins: Path) -> None:
    if not os.path.exists("/dev/pts/ptmx"):
        pytest.skip("no devpts at /dev/pts")
    c = _terminal_line([str(bins / "tty_driver")])
    py = _terminal_line([sys.executable, "-c", TTY_TWIN])
    assert c == py == b"hello 33 101 tty=1 ctty=1"
