"""Proof of completeness: learn real programs, re-run them under the learned policy with
`default: kill` (they succeed), and show that what they never did is denied."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_root, require_tool
from tests.integration.learn._learn import assert_never_made_is_killed, learn, run

SIGSYS_EXIT = 128 + 31

PY_SCRIPT = """
import hashlib, json, os
data = {"n": list(range(50))}
with open("/tmp/out.json", "w") as fh:
    json.dump(data, fh)
with open("/tmp/out.json") as fh:
    back = json.load(fh)
print(hashlib.sha256(json.dumps(back).encode()).hexdigest()[:12], len(os.listdir("/tmp")))
"""

HTTP_SCRIPT = """
import http.server, os, socket, urllib.request
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"hello from the sandbox"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    srv = http.server.HTTPServer(("127.0.0.1", 8123), H)
    os.write(w, b"r")
    srv.handle_request()
    os._exit(0)
os.close(w)
os.read(r, 1)
print(urllib.request.urlopen("http://127.0.0.1:8123/", timeout=5).read().decode())
os.waitpid(pid, 0)
"""


def _python() -> str:
    # the system interpreter itself: a pyenv shim is a script under /root, hidden inside
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(path).exists():
            return path
    pytest.skip("no system python3")


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


def _learn_ok(tmp_path: Path, argv: list[str], runs: int = 1) -> Path:
    out = tmp_path / "learned.yaml"
    for i in range(runs):
        res = learn(out, argv, *(["--append"] if i else []))
        assert res.returncode == 0, res.stderr
    return out


def _rerun_ok(policy: Path, argv: list[str], expect: str) -> None:
    res = run(policy, argv)
    assert res.returncode == 0, (res.returncode, res.stderr)
    assert expect in res.stdout
    assert_never_made_is_killed(policy)


def test_busybox_applets(tmp_path: Path) -> None:
    bb = require_tool("busybox")
    argv = [bb, "sh", "-c", "echo hello > /tmp/a; cat /tmp/a; ls -l / > /dev/null; "
            "busybox wc -l /etc/passwd; busybox sort /etc/passwd | busybox head -n 1"]
    policy = _learn_ok(tmp_path, argv)
    doc = yaml.safe_load(policy.read_text())
    assert "/tmp" in doc["filesystem"]["writable"]
    assert "/bin/busybox" in doc["filesystem"]["exec"] or bb in doc["filesystem"]["exec"]
    _rerun_ok(policy, argv, "hello")
    # a syscall the workload never made: mkdir -> killed by the filter (SIGSYS)
    res = run(policy, [bb, "sh", "-c", "echo hello; mkdir /tmp/x"])
    assert res.returncode == SIGSYS_EXIT, res.stderr


def test_python_script(tmp_path: Path) -> None:
    py = _python()
    argv = [py, "-I", "-c", PY_SCRIPT]
    policy = _learn_ok(tmp_path, argv)
    _rerun_ok(policy, argv, "")
    res = run(policy, [py, "-I", "-c", PY_SCRIPT + "\nos.sync()\n"])
    assert res.returncode == SIGSYS_EXIT, res.stderr


def test_http_server_and_client_on_loopback(tmp_path: Path) -> None:
    py = _python()
    argv = [py, "-I", "-c", HTTP_SCRIPT]
    policy = _learn_ok(tmp_path, argv, runs=2)  # two runs merged: --append
    doc = yaml.safe_load(policy.read_text())
    assert doc["network"]["mode"] == "loopback"
    assert "inet:tcp" in doc["network"]["allow"]
    assert doc["network"]["bind"] == [8123]
    assert "(merged: 2 runs)" in doc["description"]
    _rerun_ok(policy, argv, "hello from the sandbox")
    # an AF_INET6 socket was never made: the socket() rule refuses it
    res = run(policy, [py, "-I", "-c", "import socket; socket.socket(socket.AF_INET6)"])
    assert res.returncode == SIGSYS_EXIT, res.stderr


def test_tar_with_gzip(tmp_path: Path) -> None:
    tar = require_tool("tar")
    require_tool("gzip")
    argv = ["/bin/sh", "-c", "mkdir -p /tmp/d && echo payload > /tmp/d/f && "
            f"{tar} -czf /tmp/a.tgz -C /tmp d && {tar} -tzf /tmp/a.tgz"]
    policy = _learn_ok(tmp_path, argv)
    doc = yaml.safe_load(policy.read_text())
    assert any(p.endswith("/gzip") for p in doc["filesystem"]["exec"])
    _rerun_ok(policy, argv, "d/f")


def test_gzip(tmp_path: Path) -> None:
    gz = require_tool("gzip")
    argv = ["/bin/sh", "-c", f"echo data > /tmp/g && {gz} -9 /tmp/g && {gz} -dc /tmp/g.gz"]
    policy = _learn_ok(tmp_path, argv)
    _rerun_ok(policy, argv, "data")


def test_sqlite3(tmp_path: Path) -> None:
    if shutil.which("sqlite3") is None:
        pytest.skip("sqlite3 is not installed")
    argv = ["sqlite3", "/tmp/db", "create table t(x); insert into t values (42); select x from t;"]
    policy = _learn_ok(tmp_path, argv)
    _rerun_ok(policy, argv, "42")
