"""Bad input and vanishing targets: an exit-2 message or `error` findings, never a
traceback and never a pass."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from stockade.audit import engine, probe
from stockade.cli import main
from tests.conftest import Dockerd, require_root

from ._helpers import audit_host, errors


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stockade", "audit", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_pid_that_does_not_exist() -> None:
    proc = _run_cli("--pid", "999999999")
    assert proc.returncode == 2
    assert "no process 999999999" in proc.stderr and "Traceback" not in proc.stderr


def test_docker_socket_absent() -> None:
    proc = _run_cli("--docker", "x", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 2
    assert "Docker API" in proc.stderr and "Traceback" not in proc.stderr


def test_docker_host_tcp_is_refused_clearly() -> None:
    proc = _run_cli("--docker", "x", env={"DOCKER_HOST": "tcp://127.0.0.1:2375"})
    assert proc.returncode == 2 and "only unix://" in proc.stderr


@pytest.fixture
def garbage_socket() -> Iterator[str]:
    d = tempfile.mkdtemp()
    path = os.path.join(d, "docker.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{garbage!")
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield path
    stop.set()
    t.join()
    srv.close()
    os.unlink(path)
    os.rmdir(d)


def test_docker_socket_answering_garbage(garbage_socket: str) -> None:
    proc = _run_cli("--docker", "x", env={"DOCKER_HOST": f"unix://{garbage_socket}"})
    assert proc.returncode == 2
    assert "not JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_runc_state_missing_and_corrupt(tmp_path: object) -> None:
    root = tempfile.mkdtemp()
    os.makedirs(f"{root}/bad")
    with open(f"{root}/bad/state.json", "w") as fh:
        fh.write("{not json")
    assert main(["audit", "--runc", "nope", "--runc-root", root]) == 2
    assert main(["audit", "--runc", "bad", "--runc-root", root]) == 2
    assert main(["audit", "--stockade", "nope", "--stockade-root", root]) == 2


def test_bad_fail_on() -> None:
    assert main(["audit", "--self", "--fail-on", "severe"]) == 2


def test_target_exits_mid_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies between the snapshot and the probes: exit 2, never a pass."""
    require_root()
    victim = subprocess.Popen(["sleep", "30"])
    real = probe.run_probes

    def kill_then_probe(view, probes, **kw):  # type: ignore[no-untyped-def]
        victim.kill()
        victim.wait()
        return real(view, probes, **kw)

    monkeypatch.setattr(engine, "run_probes", kill_then_probe)
    try:
        rc = main(["audit", "--pid", str(victim.pid)])
    finally:
        victim.kill()
        victim.wait()
    assert rc == 2


def test_join_failure_reports_errors_never_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the container's confinement cannot be reproduced, probe-decided rows are `error`."""
    require_root()
    victim = subprocess.Popen(["sleep", "30"])

    def refuse(view):  # type: ignore[no-untyped-def]
        raise probe.JoinError("setns mnt: Operation not permitted")

    monkeypatch.setattr(probe, "plan_join", refuse)
    try:
        rc, doc = audit_host("--pid", str(victim.pid))
    finally:
        victim.kill()
        victim.wait()
    errs = errors(doc)
    assert rc == 1
    assert any(e.startswith("USERNS-CREATE") for e in errs)
    assert any(e.startswith("DEV-BLOCK") for e in errs)
    passed = set(doc["audits"][0]["passed"])
    assert not passed & {"USERNS-CREATE", "DEV-BLOCK", "PROCSYS-CORE-PATTERN", "RUNC-LEAKED-FD",
                         "MASKED-PATHS-MISSING", "KEYRING-SHARED", "DEV-MEM-KMSG"}


def test_unprivileged_auditor_gets_errors_not_passes() -> None:
    """No permission to look into another user's process: no traceback, no pass for probes."""
    require_root()
    victim = subprocess.Popen(["sleep", "30"])
    # import first: this interpreter lives under /root, which nobody cannot read
    # warm every import first (one harmless run): this interpreter lives under /root, which
    # nobody cannot read, and the CLI imports lazily
    code = ("import os,sys,io,contextlib,json,encodings.idna; from stockade.cli import main; "
            "import stockade.audit.engine, stockade.audit.report.jsonfmt, stockade.audit.fix, "
            "stockade.audit.targets, stockade.linux.hostfacts, stockade.cli.audit; "
            "f=io.StringIO(); c=contextlib.redirect_stdout(f); c.__enter__(); "
            "main(['audit','--list-checks']); c.__exit__(None,None,None); "
            "os.setgroups([]); os.setgid(65534); os.setuid(65534); "
            f"sys.exit(main(['audit','--pid','{victim.pid}','--format','json']))")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              cwd="/")
    finally:
        victim.kill()
        victim.wait()
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (1, 2)
    if proc.returncode == 1:
        import json
        doc = json.loads(proc.stdout)
        assert "DEV-BLOCK" not in doc["audits"][0]["passed"]


def test_paused_container_errors_without_hanging(dockerd: Dockerd) -> None:
    """A paused (frozen) container cannot take a ptrace stop: no hang, probe rows are errors."""
    name = "stockade-audit-paused"
    dockerd.docker("rm", "-f", name, check=False)
    dockerd.docker("run", "-d", "--name", name, dockerd.image, "sleep", "600")
    try:
        dockerd.docker("pause", name)
        start = time.monotonic()
        rc, doc = audit_host("--docker", name, env={"DOCKER_HOST": dockerd.host})
        assert time.monotonic() - start < 10
        assert rc == 1
        assert any("paused" in e for e in errors(doc))
        assert "USERNS-CREATE" not in doc["audits"][0]["passed"]
    finally:
        dockerd.docker("unpause", name, check=False)
        dockerd.docker("rm", "-f", name, check=False)
