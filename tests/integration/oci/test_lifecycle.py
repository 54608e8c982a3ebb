"""The lifecycle against the spec: creating -> created -> running -> stopped, and its errors."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.oci import conftest
from tests.integration.oci.conftest import Bundles, leftovers, oci

LOOP = ["sh", "-c", "trap 'exit 3' TERM USR1; touch /dev/shm/ready; "
        "while :; do sleep 0.05; done"]


@pytest.fixture(params=["python", "frontend"], autouse=True)
def front_end(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every lifecycle test twice: through `stockade oci` and through the compiled front
    end (which does start/kill/delete itself and hands the rest to `stockade oci`)."""
    if request.param == "frontend":
        monkeypatch.setattr(conftest, "STOCKADE", [request.getfixturevalue("frontend_bin")])
    return str(request.param)


def _wait_ready(root: Path, cid: str, timeout: float = 10.0) -> None:
    """Until the shell has installed its trap (PID 1 ignores signals it has no handler
    for), seen from the host through the container's root."""
    pid = _state(root, cid)["pid"]
    marker = Path(f"/proc/{pid}/root/dev/shm/ready")
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert time.monotonic() < deadline, "the container never became ready"
        time.sleep(0.01)


def _bundle(bundles: Bundles, args: list[str]) -> Path:
    cfg = bundles.config()
    cfg["process"]["args"] = args
    return bundles.make(cfg)


def _state(root: Path, cid: str) -> dict[str, Any]:
    r = oci(root, "state", cid)
    assert r.returncode == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def _wait_status(root: Path, cid: str, want: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _state(root, cid)["status"] == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} never became {want}: {_state(root, cid)}")


def test_transitions(bundles: Bundles, oci_root: Path, tmp_path: Path) -> None:
    b = _bundle(bundles, LOOP)
    pidfile = tmp_path / "pid"
    r = oci(oci_root, "create", "--bundle", str(b), "--pid-file", str(pidfile), "t1")
    assert r.returncode == 0, r.stderr
    st = _state(oci_root, "t1")
    assert st["status"] == "created" and st["id"] == "t1" and st["ociVersion"].startswith("1.")
    assert st["pid"] == int(pidfile.read_text()) and st["bundle"] == str(b)
    assert Path(f"/proc/{st['pid']}").exists()
    assert oci(oci_root, "start", "t1").returncode == 0
    assert _state(oci_root, "t1")["status"] == "running"
    r = oci(oci_root, "start", "t1")
    assert r.returncode != 0 and "not created" in r.stderr
    assert oci(oci_root, "kill", "t1", "KILL").returncode == 0
    _wait_status(oci_root, "t1", "stopped")
    assert _state(oci_root, "t1")["pid"] == 0
    r = oci(oci_root, "kill", "t1")
    assert r.returncode != 0 and "not running" in r.stderr
    assert oci(oci_root, "delete", "t1").returncode == 0
    r = oci(oci_root, "state", "t1")
    assert r.returncode != 0 and "does not exist" in r.stderr
    assert not leftovers("t1")


@pytest.mark.parametrize("form", ["TERM", "SIGTERM", "15", "usr1", str(int(signal.SIGUSR1)),
                                  ""])
def test_kill_signal_forms(form: str, bundles: Bundles, oci_root: Path) -> None:
    b = _bundle(bundles, LOOP)
    assert oci(oci_root, "create", "--bundle", str(b), "k1").returncode == 0
    assert oci(oci_root, "start", "k1").returncode == 0
    _wait_ready(oci_root, "k1")
    args = ["kill", "k1"] + ([form] if form else [])
    r = oci(oci_root, *args)
    assert r.returncode == 0, r.stderr
    _wait_status(oci_root, "k1", "stopped")
    assert oci(oci_root, "delete", "k1").returncode == 0


def test_bad_signal(bundles: Bundles, oci_root: Path) -> None:
    b = _bundle(bundles, LOOP)
    assert oci(oci_root, "create", "--bundle", str(b), "k2").returncode == 0
    for bad in ("SIGNOPE", "99", "0"):
        r = oci(oci_root, "kill", "k2", bad)
        assert r.returncode != 0 and "signal" in r.stderr
    assert _state(oci_root, "k2")["status"] == "created"
    assert oci(oci_root, "delete", "--force", "k2").returncode == 0


def test_delete_running_needs_force(bundles: Bundles, oci_root: Path) -> None:
    b = _bundle(bundles, LOOP)
    assert oci(oci_root, "run", "--detach", "--bundle", str(b), "d1").returncode == 0
    assert _state(oci_root, "d1")["status"] == "running"
    r = oci(oci_root, "delete", "d1")
    assert r.returncode != 0 and "--force" in r.stderr
    assert _state(oci_root, "d1")["status"] == "running"  # no effect on the container
    pid = _state(oci_root, "d1")["pid"]
    assert oci(oci_root, "delete", "--force", "d1").returncode == 0
    assert not Path(f"/proc/{pid}/stat").exists() or \
        Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    assert oci(oci_root, "state", "d1").returncode != 0
    assert not (oci_root / "stockade" / "d1").exists()
    assert not leftovers("d1")


def test_two_containers(bundles: Bundles, oci_root: Path) -> None:
    b = _bundle(bundles, LOOP)
    for cid in ("two-a", "two-b"):
        assert oci(oci_root, "create", "--bundle", str(b), cid).returncode == 0
    assert oci(oci_root, "start", "two-b").returncode == 0
    listed = json.loads(oci(oci_root, "list", "--format", "json").stdout)
    assert {(c["id"], c["status"]) for c in listed} == {("two-a", "created"),
                                                       ("two-b", "running")}
    assert oci(oci_root, "list", "-q").stdout.split() == ["two-a", "two-b"]
    pids = {c["pid"] for c in listed}
    assert len(pids) == 2
    for cid in ("two-a", "two-b"):
        assert oci(oci_root, "delete", "--force", cid).returncode == 0
    assert oci(oci_root, "list", "-q").stdout == ""


def test_exits_before_start(bundles: Bundles, oci_root: Path) -> None:
    """Killed while created: stopped, and start refuses (the payload never runs)."""
    b = _bundle(bundles, ["sh", "-c", "echo ran > /dev/shm/x"])
    assert oci(oci_root, "create", "--bundle", str(b), "e1").returncode == 0
    pid = _state(oci_root, "e1")["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait_status(oci_root, "e1", "stopped")
    r = oci(oci_root, "start", "e1")
    assert r.returncode != 0 and "not created" in r.stderr
    assert oci(oci_root, "delete", "e1").returncode == 0


def test_run_exit_status_and_cleanup(bundles: Bundles, oci_root: Path) -> None:
    b = _bundle(bundles, ["sh", "-c", "echo hello; exit 7"])
    r = oci(oci_root, "run", "--bundle", str(b), "r1")
    assert r.returncode == 7 and r.stdout == "hello\n"
    assert oci(oci_root, "state", "r1").returncode != 0
    b = _bundle(bundles, ["sh", "-c", "exec true"])
    assert oci(oci_root, "run", "--bundle", str(b), "r2").returncode == 0
    assert not leftovers("r1") and not leftovers("r2")


def test_duplicate_and_odd_ids(bundles: Bundles, oci_root: Path) -> None:
    b = _bundle(bundles, LOOP)
    assert oci(oci_root, "create", "--bundle", str(b), "dup").returncode == 0
    r = oci(oci_root, "create", "--bundle", str(b), "dup")
    assert r.returncode != 0 and "already exists" in r.stderr
    assert _state(oci_root, "dup")["status"] == "created"  # the first one is untouched
    for bad in ("../x", "a/b", "..", "a b", "x" * 2000, "-"[:0] or "é"):
        r = oci(oci_root, "create", "--bundle", str(b), bad)
        assert r.returncode != 0 and "invalid container id" in r.stderr, bad
    assert oci(oci_root, "list", "-q").stdout.split() == ["dup"]
    assert oci(oci_root, "delete", "--force", "dup").returncode == 0


def test_start_missing(oci_root: Path) -> None:
    r = oci(oci_root, "start", "nope")
    assert r.returncode != 0 and "does not exist" in r.stderr
    assert oci(oci_root, "delete", "--force", "nope").returncode == 0  # runc's behaviour


def test_state_survives_runtime(bundles: Bundles, oci_root: Path) -> None:
    """A detached container is managed by later invocations with only --root shared."""
    b = _bundle(bundles, LOOP)
    assert oci(oci_root, "run", "--detach", "--bundle", str(b), "s1").returncode == 0
    st = _state(oci_root, "s1")
    assert st["status"] == "running"
    assert Path(f"/proc/{st['pid']}").exists()
    # The container is not a child of any stockade process: its parent is the reaper.
    ppid = int(Path(f"/proc/{st['pid']}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert ppid != os.getpid()
    assert oci(oci_root, "kill", "s1", "9").returncode == 0
    _wait_status(oci_root, "s1", "stopped")
    assert oci(oci_root, "delete", "s1").returncode == 0


def test_console_socket(bundles: Bundles, oci_root: Path, tmp_path: Path) -> None:
    """terminal: true sends the pty master to --console-socket (runc's protocol)."""
    import socket

    cfg = bundles.config()
    cfg["process"]["terminal"] = True
    cfg["process"]["args"] = ["sh", "-c", "test -t 0 && test -t 1 && echo isatty; tty; "
                              "stty size; echo done"]
    cfg["process"]["consoleSize"] = {"height": 31, "width": 97}
    b = bundles.make(cfg)
    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    r = oci(oci_root, "create", "--bundle", str(b), "--console-socket", path, "tty1")
    assert r.returncode == 0, r.stderr
    conn, _ = srv.accept()
    _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    conn.close()
    srv.close()
    assert len(fds) == 1
    assert oci(oci_root, "start", "tty1").returncode == 0
    out = b""
    deadline = time.monotonic() + 5
    while b"done" not in out and time.monotonic() < deadline:
        try:
            out += os.read(fds[0], 4096)
        except OSError:
            break
    os.close(fds[0])
    assert b"isatty" in out and b"done" in out
    assert b"/dev/pts/0" in out  # allocated in the container's own devpts, as runc does
    assert b"31 97" in out  # consoleSize
    oci(oci_root, "delete", "--force", "tty1")


def test_terminal_without_console_socket(bundles: Bundles, oci_root: Path) -> None:
    cfg = bundles.config()
    cfg["process"]["terminal"] = True
    b = bundles.make(cfg)
    r = oci(oci_root, "create", "--bundle", str(b), "tty2")
    assert r.returncode != 0 and "console-socket" in r.stderr
    assert oci(oci_root, "state", "tty2").returncode != 0


def test_kill_all_and_cgroups_path(bundles: Bundles, oci_root: Path) -> None:
    """linux.cgroupsPath is honoured; kill --all reaches every process of the cgroup."""
    cfg = bundles.config()
    cfg["process"]["args"] = ["sh", "-c", "sleep 1000 & sleep 1000 & touch /dev/shm/ready; wait"]
    cfg["linux"]["cgroupsPath"] = "/stockade-oci-test/ka1"
    cfg["linux"]["resources"]["pids"] = {"limit": 50}
    b = bundles.make(cfg)
    assert oci(oci_root, "run", "--detach", "--bundle", str(b), "ka1").returncode == 0
    _wait_ready(oci_root, "ka1")
    cg = Path("/sys/fs/cgroup/pids/stockade-oci-test/ka1")
    assert (cg / "pids.max").read_text().strip() == "50"
    assert len((cg / "cgroup.procs").read_text().split()) == 3
    assert oci(oci_root, "kill", "--all", "ka1", "KILL").returncode == 0
    _wait_status(oci_root, "ka1", "stopped")
    deadline = time.monotonic() + 5
    while (cg / "cgroup.procs").read_text().split() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (cg / "cgroup.procs").read_text().split()
    assert oci(oci_root, "delete", "ka1").returncode == 0
    assert not cg.exists()
    for ctl in ("memory", "pids", "cpu", "cpuacct", "devices"):
        parent = Path(f"/sys/fs/cgroup/{ctl}/stockade-oci-test")
        if parent.exists():
            parent.rmdir()


def test_join_network_namespace_by_path(bundles: Bundles, oci_root: Path) -> None:
    b = _bundle(bundles, LOOP)
    assert oci(oci_root, "create", "--bundle", str(b), "ns-a").returncode == 0
    pid_a = _state(oci_root, "ns-a")["pid"]
    cfg = bundles.config()
    cfg["process"]["args"] = ["readlink", "/proc/self/ns/net"]
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                  if n["type"] != "network"]
    cfg["linux"]["namespaces"].append({"type": "network", "path": f"/proc/{pid_a}/ns/net"})
    r = oci(oci_root, "run", "--bundle", str(bundles.make(cfg)), "ns-b")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.readlink(f"/proc/{pid_a}/ns/net")
    assert r.stdout.strip() != os.readlink("/proc/self/ns/net")
    assert oci(oci_root, "delete", "--force", "ns-a").returncode == 0
