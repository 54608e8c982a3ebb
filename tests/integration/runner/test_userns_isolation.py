"""Issue 13, on the real kernel as root: every sandbox root started mapped to the same
host uid (2000000000) in a user namespace owned by root, so one sandbox could use up the
per-user counts of all (128 inotify instances: EMFILE in every other sandbox and for the
host's root) and, without a pid namespace, stop another sandbox's payload.

Each sandbox now holds its own id range of the pool, in a user namespace it owns. The
sandboxes run through the CLI with a private pool (outside the default one, so these
attacks never touch another run's sandboxes) and a private lock directory; everything is
checked from outside, in /proc.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.runner.idalloc import ids_in_use
from tests.conftest import require_root

pytestmark = pytest.mark.root
SIZE = 65536
START = 2_140_000_000  # a private pool: above the default one (2000000000-2134217727)
RANGES = 4
PYTHON = "/usr/bin/python3"  # the payloads run on the host's root, read-only
NS_GET_OWNER_UID = 0xB704  # _IO(NSIO, 0x4)
WAIT_S = 30

HOLD = "echo ready; read line"  # a payload that runs until its stdin says so

EXHAUST = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while libc.inotify_init1(0) >= 0:
    n += 1
print("held", n, ctypes.get_errno(), flush=True)
sys.stdin.readline()
"""

ONE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
print("got", fd, 0 if fd >= 0 else ctypes.get_errno(), flush=True)
"""

# No pid namespace, so the host's processes are visible; CAP_KILL kept, Landlock off:
# only the user namespaces stand between it and another sandbox.
NO_PID_NS = """\
stockade: 1
name: no-pid-ns
syscalls: {default: allow}
capabilities: {drop: [ALL], add: [KILL]}
namespaces: [user, mount, net, ipc, uts, cgroup]
user: {uid: 0, gid: 0, map: auto}
lsm: {landlock: {mode: "off"}}
"""


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k.startswith(("STOCKADE_CACHE", "PYTHON"))}
    e.update(PATH="/usr/sbin:/usr/bin:/sbin:/bin", STOCKADE_STATE_DIR=str(tmp_path / "state"),
             STOCKADE_ID_POOL=f"{START}:{RANGES * SIZE}")
    return e


@pytest.fixture
def sandboxes() -> Iterator[list[subprocess.Popen[str]]]:
    """Started runners: ended (stdin closed, then killed) whatever the test did."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.stdin.close()  # type: ignore[union-attr]
            try:
                p.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start(started: list[subprocess.Popen[str]], env: dict[str, str], argv: list[str],
          policy: str = "default") -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-m", "stockade", "run", "--policy", policy,
                          "--", *argv], env=env, text=True, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started.append(p)
    return p


def line(p: subprocess.Popen[str]) -> str:
    """The payload's next line; fails (with the runner's error) if none comes."""
    assert p.stdout is not None
    ready, _, _ = select.select([p.stdout], [], [], WAIT_S)
    got = p.stdout.readline() if ready else ""
    if not got:
        p.kill()
        _, err = p.communicate()
        pytest.fail(f"no line from the sandbox (rc {p.returncode}): {err.strip()}")
    return got.strip()


def end(p: subprocess.Popen[str]) -> int:
    assert p.stdin is not None
    p.stdin.write("done\n")
    p.stdin.close()
    return p.wait(WAIT_S)


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""


def sandboxed(p: subprocess.Popen[str]) -> list[int]:
    """The runner's descendants in another user namespace: the sandbox's processes."""
    ours = os.readlink("/proc/self/ns/user")
    found = []
    for pid in descendants(p.pid):
        try:
            if os.readlink(f"/proc/{pid}/ns/user") != ours:
                found.append(pid)
        except OSError:
            continue
    assert found, "the sandbox has no process in a user namespace"
    return found


def host_range(pid: int) -> tuple[int, int, int]:
    """(first host uid, count, owner's host uid) of pid's user namespace, from outside."""
    inside, outside, count = (int(x) for x in Path(f"/proc/{pid}/uid_map").read_text().split())
    assert inside == 0
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
    try:
        owner = int.from_bytes(fcntl.ioctl(fd, NS_GET_OWNER_UID, bytes(4)), "little")
    finally:
        os.close(fd)
    return outside, count, owner


def status_field(pid: int, field: str) -> str:
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith(field + ":"):
            return text.split(":", 1)[1].strip()
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def lock_state(state_dir: Path, base: int) -> tuple[bool, str]:
    """(locked by someone, the file's text) of a range's lock file."""
    path = state_dir / "idpool" / f"{base}.lock"
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = False
        except BlockingIOError:
            locked = True
        return locked, path.read_text()
    finally:
        os.close(fd)


def wait_until_gone(lo: int, hi: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while ids_in_use(lo, hi):
        assert time.monotonic() < deadline, f"processes with ids in {lo}-{hi - 1} stay"
        time.sleep(0.05)


def cgroups_of(runner: int) -> list[str]:
    """The runner's run cgroups (named after its pid) in every hierarchy."""
    found = []
    for base, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(base) == "stockade":
            found += [os.path.join(base, d) for d in dirs if d.startswith(f"{runner}-")]
            dirs[:] = []
    return found


def remove_cgroups_of(runner: int) -> None:
    """A SIGKILLed runner leaves its (emptied) run cgroup: removed here."""
    for path in cgroups_of(runner):
        os.rmdir(path)


def test_concurrent_sandboxes_own_disjoint_ranges(env: dict[str, str], tmp_path: Path,
                                                  sandboxes: list[subprocess.Popen[str]]) -> None:
    a = start(sandboxes, env, ["/bin/sh", "-c", HOLD])
    b = start(sandboxes, env, ["/bin/sh", "-c", HOLD])
    assert line(a) == line(b) == "ready"
    ranges = set()
    for p in (a, b):
        seen = {host_range(pid) for pid in sandboxed(p)}
        assert len(seen) == 1  # init and payload: one namespace
        base, count, owner = seen.pop()
        assert count == SIZE and owner == base  # the namespace is owned by its own range
        assert base >= START and base + count <= START + RANGES * SIZE
        for pid in sandboxed(p):
            assert int(status_field(pid, "Uid").split()[0]) == base  # root inside = base
        ranges.add(base)
        assert lock_state(tmp_path / "state", base)[0]  # held while the sandbox runs
    assert ranges == {START, START + SIZE}  # disjoint: the first two ranges
    assert end(a) == 0 and end(b) == 0
    for base in ranges:
        assert lock_state(tmp_path / "state", base) == (False, "")  # released at exit


def test_inotify_exhaustion_stays_in_its_own_sandbox(env: dict[str, str],
                                                     sandboxes: list[subprocess.Popen[str]]) -> None:
    if not os.access(PYTHON, os.X_OK):
        pytest.skip(f"{PYTHON} is needed inside the sandbox (host root view)")
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    if limit > 1000:
        pytest.skip(f"fs.inotify.max_user_instances is {limit}: EMFILE would be the fd limit's")
    a = start(sandboxes, env, [PYTHON, "-c", EXHAUST])
    held, n, err = line(a).split()
    assert (held, int(n), int(err)) == ("held", limit, errno.EMFILE)  # A used up its budget
    b = subprocess.run([sys.executable, "-m", "stockade", "run", "--policy", "strict",
                        "--", PYTHON, "-c", ONE], env=env, text=True, capture_output=True,
                       timeout=WAIT_S)
    assert b.returncode == 0, b.stderr
    got, fd, err = b.stdout.split()
    assert got == "got" and int(fd) >= 0 and int(err) == 0, b.stdout  # was EMFILE
    libc = ctypes.CDLL(None, use_errno=True)
    host_fd = libc.inotify_init1(0)  # the host's root kept its own budget too
    assert host_fd >= 0, os.strerror(ctypes.get_errno())
    os.close(host_fd)
    assert end(a) == 0


def test_sandbox_without_pid_namespace_cannot_stop_another(
        env: dict[str, str], tmp_path: Path, sandboxes: list[subprocess.Popen[str]]) -> None:
    b = start(sandboxes, env, ["/bin/sh", "-c", HOLD])
    assert line(b) == "ready"
    payload = next(pid for pid in sandboxed(b) if Path(f"/proc/{pid}/comm").read_text() == "sh\n")
    policy = tmp_path / "no-pid-ns.yaml"
    policy.write_text(NO_PID_NS)
    a = subprocess.run([sys.executable, "-m", "stockade", "run", "--policy", str(policy),
                        "--", "/bin/sh", "-c",
                        f"test -d /proc/{payload} && kill -STOP {payload}; echo rc=$?"],
                       env=env, text=True, capture_output=True, timeout=WAIT_S)
    assert a.returncode == 0, a.stderr
    assert a.stdout.strip() == "rc=1"  # it saw the payload, and kill failed
    assert "not permitted" in a.stderr.lower()  # EPERM (was allowed: the same host uid)
    assert status_field(payload, "State").startswith("S")  # not T (stopped)
    assert end(b) == 0


def test_runner_killed_frees_its_range(env: dict[str, str], tmp_path: Path,
                                       sandboxes: list[subprocess.Popen[str]]) -> None:
    a = start(sandboxes, env, ["/bin/sh", "-c", HOLD])
    assert line(a) == "ready"
    init = min(sandboxed(a))
    base = host_range(init)[0]
    runner = int(Path(f"/proc/{init}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert base == START and lock_state(tmp_path / "state", base)[0]
    os.kill(runner, signal.SIGKILL)  # no release: the kernel drops the lock
    try:
        wait_until_gone(base, base + SIZE)  # the init dies with its runner, and the rest
        locked, text = lock_state(tmp_path / "state", base)
        assert not locked and text.strip() == str(runner)  # left as "in use by <pid>"
        again = subprocess.run([sys.executable, "-m", "stockade", "run", "--", "/bin/cat",
                                "/proc/self/uid_map"], env=env, text=True, capture_output=True,
                               timeout=WAIT_S)
        assert again.returncode == 0, again.stderr
        assert again.stdout.split()[1] == str(START)  # the same range, taken again
    finally:
        a.wait(WAIT_S)
        remove_cgroups_of(runner)


def test_range_with_processes_of_a_killed_runner_is_skipped(
        env: dict[str, str], tmp_path: Path, sandboxes: list[subprocess.Popen[str]]) -> None:
    """No pid namespace: a payload's child outlives a SIGKILLed runner, with ids of the
    range; the range stays out of use until it is gone."""
    policy = tmp_path / "no-pid-ns.yaml"
    policy.write_text(NO_PID_NS)
    a = start(sandboxes, env, ["/bin/sh", "-c",
                               "sleep 600 </dev/null >/dev/null 2>&1 & echo ready; read line"],
              policy=str(policy))
    assert line(a) == "ready"
    # The shell's background child may not have exec'd sleep yet when "ready" arrives.
    deadline = time.monotonic() + WAIT_S
    while True:
        pids = sandboxed(a)
        sleeping = [p for p in pids if _comm(p) == "sleep\n"]
        if sleeping:
            break
        assert time.monotonic() < deadline, "the payload's sleep never started"
        time.sleep(0.02)
    stray = sleeping[0]
    runner = min(int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
                 for p in pids)
    os.kill(runner, signal.SIGKILL)
    try:
        a.wait(WAIT_S)
        assert ids_in_use(START, START + SIZE)  # the stray keeps range 0's ids
        again = subprocess.run([sys.executable, "-m", "stockade", "run", "--", "/bin/cat",
                                "/proc/self/uid_map"], env=env, text=True, capture_output=True,
                               timeout=WAIT_S)
        assert again.returncode == 0, again.stderr
        assert again.stdout.split()[1] == str(START + SIZE)  # not the stray's range
    finally:
        os.kill(stray, signal.SIGKILL)
        wait_until_gone(START, START + SIZE)
        remove_cgroups_of(runner)


def test_exhausted_pool_fails_closed(env: dict[str, str], tmp_path: Path,
                                     sandboxes: list[subprocess.Popen[str]]) -> None:
    env = dict(env, STOCKADE_ID_POOL=f"{START}:{SIZE}")  # one range
    a = start(sandboxes, env, ["/bin/sh", "-c", HOLD])
    assert line(a) == "ready"
    b = subprocess.Popen([sys.executable, "-m", "stockade", "run", "--", "/bin/echo", "RAN"],
                         env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = b.communicate(timeout=WAIT_S)
    assert b.returncode == 113  # the runner's idmap code
    assert "RAN" not in out
    err = err.strip()
    assert "id pool exhausted" in err and "(1 held by running sandboxes" in err
    assert "\n" not in err and "Traceback" not in err
    assert cgroups_of(b.pid) == []  # it failed before creating anything
    assert end(a) == 0
    c = subprocess.run([sys.executable, "-m", "stockade", "run", "--", "/bin/echo", "RAN"],
                       env=env, text=True, capture_output=True, timeout=WAIT_S)
    assert c.returncode == 0 and c.stdout.strip() == "RAN", c.stderr  # free again


def test_the_runner_gets_its_own_credentials_back() -> None:
    """The namespace is created as its owner by the executor (its own process: the
    effective uid changes there only): a service calling stockade.run() keeps its
    credentials, its core dumps and its parent-death signal."""
    from stockade.linux import syscalls as L

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a scratch process: its credentials are the test subject
        code = 1
        try:
            os.close(r)
            L.prctl(L.PR_SET_PDEATHSIG, signal.SIGTERM)
            L.prctl(L.PR_SET_DUMPABLE, 1)
            caps = L.capget()
            from stockade.api import run

            result = run(["/bin/true"])
            os.write(w, json.dumps({
                "exit": result.exit_code, "ids": os.getresuid(), "caps_kept": L.capget() == caps,
                "dumpable": L.prctl(L.PR_GET_DUMPABLE), "deathsig": L.pdeathsig()}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as fh:
        got = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, got
    assert json.loads(got) == {"exit": 0, "ids": [0, 0, 0], "caps_kept": True, "dumpable": 1,
                               "deathsig": signal.SIGTERM}
