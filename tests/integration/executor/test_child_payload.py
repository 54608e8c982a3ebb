"""The executor's payload steps (executor/child.c), driven directly with a run document.

`oci exec`'s mode ("exec", a `join` with nothing to join) runs only the payload's steps
in the caller's own namespaces: no root is built, so these tests need no bundle and the
container's process is this test's child (the executor clones it with CLONE_PARENT).
What they pin down is what runner/child.py did: one error line "step<TAB>message" and the
step's exit code, the gate, startContainer hooks (state on stdin, exit status, timeout),
the learner's seccomp listener handed over the socket, the pty made inside with its
size, Landlock with the writable binds' extra rules and without scoping.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root

pytestmark = pytest.mark.root
GOLDEN = Path(__file__).parents[2] / "data" / "plans" / "minimal.json"
ALLOW_ALL = "060000000000ff7f"  # BPF_RET|BPF_K SECCOMP_RET_ALLOW
LANDLOCK_WRITE_FILE = 1 << 1
LANDLOCK_SCOPE_SIGNAL = 1 << 1


@pytest.fixture
def executor(executor_test_build: str) -> str:
    require_root()
    return executor_test_build  # the tests' build: STOCKADE_TEST_FAULT


@dataclass
class Outcome:
    status: int  # the container process's exit code (128+signal when killed)
    err: bytes  # what it wrote on the error pipe
    created: bytes  # what it wrote on the created pipe before the gate
    stderr: str


def document(argv: list[str], **keys: Any) -> dict[str, Any]:
    """A run document from the golden plan: oci exec's mode, nothing to join."""
    doc: dict[str, Any] = json.loads(GOLDEN.read_text())
    doc["process"].update(argv=argv, cwd="/", home_of_uid=None)
    doc.update(exec_mode="exec", init=False, join={"cgroup_procs": [], "namespaces": []})
    for key, value in keys.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key].update(value)
        else:
            doc[key] = value
    return doc


def run(executor: str, doc: dict[str, Any], tmp_path: Path, *, state: bytes = b"",
        start: bool = True, extra_fds: dict[str, int] | None = None,
        env: dict[str, str] | None = None) -> Outcome:
    """Start the executor on doc, release the gate with `state` (start) and wait."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    created_r, created_w = os.pipe2(os.O_CLOEXEC)
    gate_r, gate_w = os.pipe2(os.O_CLOEXEC)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    plan_fd = os.memfd_create("plan")
    fds = {"report": report_w, "err": err_w, "sync": -1, "status": -1, "created": created_w,
           "gate": gate_r, "tty_slave": -1, "tty_socket": -1, "listener": -1, "trees": [],
           **(extra_fds or {})}
    os.write(plan_fd, json.dumps({**doc, "fds": fds}).encode())
    theirs = [plan_fd, report_w, err_w, created_w, gate_r,
              *(fd for fd in (extra_fds or {}).values() if fd >= 0)]
    stderr = tmp_path / "stderr"
    with stderr.open("w") as errfile:
        exe = subprocess.run([executor, "--executor", str(plan_fd)], pass_fds=theirs,
                             stderr=errfile, env={**os.environ, **(env or {})}, check=False)
    for fd in (plan_fd, report_w, err_w, created_w, gate_r):
        os.close(fd)
    report = os.read(report_r, 64)
    os.close(report_r)
    assert exe.returncode == 0 and report.startswith(b"pid\t"), stderr.read_text()
    pid = int(report.split(b"\t")[1])  # the report's last line: pid<TAB>N
    created = os.read(created_r, 1)
    if start and created:
        os.write(gate_w, b"s" + struct.pack("<Q", len(state)) + state)
    os.close(gate_w)
    os.close(created_r)
    _, wstatus = os.waitpid(pid, 0)  # CLONE_PARENT: our child, not the executor's
    err = b""
    while chunk := os.read(err_r, 4096):
        err += chunk
    os.close(err_r)
    return Outcome(os.waitstatus_to_exitcode(wstatus) if os.WIFEXITED(wstatus)
                   else 128 + os.WTERMSIG(wstatus), err, created, stderr.read_text())


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ran"
    yield path


def test_the_payload_runs_after_the_gate(executor: str, tmp_path: Path, marker: Path) -> None:
    out = run(executor, document(["/bin/sh", "-c", f"touch {marker}"]), tmp_path)
    assert (out.status, out.err, out.created) == (0, b"", b"c")
    assert marker.exists()


def test_a_gate_closed_without_start_never_runs_the_payload(executor: str, tmp_path: Path,
                                                             marker: Path) -> None:
    out = run(executor, document(["/bin/sh", "-c", f"touch {marker}"]), tmp_path, start=False)
    assert out.created == b"c" and out.status == 122 and not marker.exists()


def test_a_failed_step_is_one_line_with_its_exit_code(executor: str, tmp_path: Path) -> None:
    doc = document(["/bin/true"])
    doc["process"]["cwd"] = "/nonexistent-stockade-cwd"
    out = run(executor, doc, tmp_path)
    assert out.status == 120 and out.created == b""
    assert out.err == (b"hygiene\tworking directory /nonexistent-stockade-cwd (resolved "
                       b"inside the root): No such file or directory\n")


def test_a_missing_command_is_reported_before_the_gate(executor: str, tmp_path: Path) -> None:
    out = run(executor, document(["no-such-command-stockade"]), tmp_path)
    assert (out.status, out.created) == (127, b"")
    assert out.err == b"exec\tno-such-command-stockade: command not found\n"


def test_an_injected_fault_names_its_step(executor: str, tmp_path: Path, marker: Path) -> None:
    for step, code in (("landlock", 119), ("seccomp", 121), ("capabilities", 117)):
        out = run(executor, document(["/bin/sh", "-c", f"touch {marker}"]), tmp_path,
                  env={"STOCKADE_TEST_FAULT": step})
        assert out.status == code, step
        assert out.err == f"{step}\tfault injected (test)\n".encode()
        assert not marker.exists()


def test_start_hooks_get_the_state_and_stop_the_payload_when_they_fail(
        executor: str, tmp_path: Path, marker: Path) -> None:
    seen = tmp_path / "state"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {seen}"], "env": [], "timeout": None}
    payload = ["/bin/sh", "-c", f"touch {marker}"]
    out = run(executor, document(payload, hooks={"start": [hook]}), tmp_path, state=b'{"id":"x"}')
    assert out.status == 0 and seen.read_bytes() == b'{"id":"x"}' and marker.exists()
    marker.unlink()
    failing = {**hook, "args": ["sh", "-c", "exit 3"]}
    out = run(executor, document(payload, hooks={"start": [hook, failing]}), tmp_path)
    assert out.status == 122 and not marker.exists()
    assert "stockade: hooks.startContainer[1] /bin/sh: exit status 3\n" in out.stderr


def test_a_start_hook_past_its_timeout_is_killed(executor: str, tmp_path: Path,
                                                 marker: Path) -> None:
    slow = {"path": "/bin/sleep", "args": ["sleep", "60"], "env": [], "timeout": 1}
    out = run(executor, document(["/bin/sh", "-c", f"touch {marker}"], hooks={"start": [slow]}),
              tmp_path)
    assert out.status == 122 and not marker.exists()
    assert "stockade: hooks.startContainer[0] /bin/sleep: timed out\n" in out.stderr


def test_a_hooks_environment_is_its_own(executor: str, tmp_path: Path) -> None:
    seen = tmp_path / "env"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"env > {seen}"],
            "env": ["A=1", "NOEQUALS", "A=2", "B=3"], "timeout": 5}
    out = run(executor, document(["/bin/true"], hooks={"start": [hook]}), tmp_path)
    assert out.status == 0
    lines = set(seen.read_text().splitlines()) - {"PWD=/", "SHLVL=1", "_=/usr/bin/env"}
    assert {"A=2", "B=3"} <= lines and "A=1" not in lines and "NOEQUALS" not in lines


def _recv_fd(sock: socket.socket) -> tuple[bytes, int]:
    fds = array.array("i")
    msg, anc, _, _ = sock.recvmsg(1, socket.CMSG_LEN(fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:fds.itemsize])
    assert len(fds) == 1, (msg, anc)
    return msg, fds[0]


def test_the_listener_of_the_last_filter_reaches_the_runtime(executor: str,
                                                             tmp_path: Path) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    doc = document(["/bin/true"], seccomp={"filters": [ALLOW_ALL, ALLOW_ALL], "listener": True})
    with ours:
        out = run(executor, doc, tmp_path, extra_fds={"listener": theirs.fileno()})
        theirs.close()
        assert (out.status, out.err) == (0, b"")
        msg, fd = _recv_fd(ours)
    try:
        assert msg == b"L"
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:seccomp notify"
    finally:
        os.close(fd)


def test_a_listener_without_its_socket_fails_the_seccomp_step(executor: str,
                                                              tmp_path: Path) -> None:
    doc = document(["/bin/true"], seccomp={"filters": [ALLOW_ALL], "listener": True})
    out = run(executor, doc, tmp_path)
    assert out.status == 121 and out.err.startswith(b"seccomp\t")


def test_the_pty_is_made_inside_with_its_size(executor: str, tmp_path: Path) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    doc = document(["/bin/sh", "-c", "stty size; test -t 0 && echo tty"],
                   tty={"console_size": [31, 97]})
    with ours:
        out = run(executor, doc, tmp_path, extra_fds={"tty_socket": theirs.fileno()})
        theirs.close()
        msg, master = _recv_fd(ours)
    try:
        assert (out.status, out.err, msg) == (0, b"", b"m")
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the slave's last holder is gone
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert seen.split() == [b"31", b"97", b"tty"]


def _landlock_abi() -> int:
    from stockade.linux.syscalls import landlock_abi

    return landlock_abi()


def test_landlock_rules_and_the_extra_rules_of_writable_binds(executor: str,
                                                              tmp_path: Path) -> None:
    abi = _landlock_abi()
    if abi < 1:
        pytest.skip("Landlock is not enabled in this kernel")
    target = tmp_path / "w" / "file"
    target.parent.mkdir()
    target.write_text("before")
    ruleset = {"mode": "required", "abi": abi, "handled_fs": LANDLOCK_WRITE_FILE,
               "handled_net": 0, "scoped": 0, "paths": [], "extra": [], "ports": []}
    payload = ["/bin/sh", "-c", f"echo after > {target}"]
    out = run(executor, document(payload, landlock=ruleset), tmp_path)
    assert out.status != 0 and target.read_text() == "before"  # no rule grants the write
    granted = {**ruleset, "extra": [[str(target.parent), LANDLOCK_WRITE_FILE],
                                    ["/nonexistent-stockade-rule", LANDLOCK_WRITE_FILE]]}
    out = run(executor, document(payload, landlock=granted), tmp_path)
    assert out.status == 0 and target.read_text() == "after\n"  # a missing path is skipped


def test_oci_exec_is_not_scoped_away_from_the_sandbox_it_joins(executor: str,
                                                               tmp_path: Path) -> None:
    abi = _landlock_abi()
    if abi < 6:
        pytest.skip("Landlock scopes need ABI 6")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        ruleset = {"mode": "required", "abi": abi, "handled_fs": LANDLOCK_WRITE_FILE, "handled_net": 0,
                   "scoped": LANDLOCK_SCOPE_SIGNAL, "paths": [], "extra": [], "ports": []}
        # a process outside the new domain: a scoped domain could not signal it
        out = run(executor, document(["/bin/kill", "-0", str(sleeper.pid)],
                                     landlock=ruleset), tmp_path)
        assert out.status == 0, out.stderr
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()
