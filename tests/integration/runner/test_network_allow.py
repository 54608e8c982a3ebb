"""`network.allow` grants what it lists within the mode (issue 16): under strict, whose
syscall rules deny socket() but AF_UNIX, `allow: [unix, "inet:tcp"]` with mode loopback
lets an HTTP server on loopback work; what it does not list still fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require_root

CLI = [sys.executable, "-m", "stockade", "run"]
CLIENT = """
import socket, time, urllib.request
for _ in range(100):
    try:
        print(urllib.request.urlopen('http://127.0.0.1:8765/', timeout=5).status)
        break
    except OSError:
        time.sleep(0.05)
for family, kind in ((socket.AF_INET6, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM)):
    try:
        socket.socket(family, kind)
        print('OPENED')
    except OSError as exc:
        print(exc.errno)
"""


def _policy(tmp_path: Path, allow: str) -> str:
    path = tmp_path / "web.yaml"
    path.write_text(f"stockade: 1\nname: web\nextends: [strict]\n"
                    f"network:\n  mode: loopback\n  allow: {allow}\n")
    return str(path)


def _serve(policy: str) -> subprocess.CompletedProcess[str]:
    script = ("cd /usr/share && python3 -m http.server 8765 --bind 127.0.0.1 "
              ">/dev/null 2>&1 & python3 -c \"$CLIENT\"")
    return subprocess.run([*CLI, "--policy", policy, "-e", f"CLIENT={CLIENT}", "--", "/bin/sh",
                           "-c", script], capture_output=True, text=True, timeout=120)


def test_listed_family_is_granted(tmp_path: Path) -> None:
    require_root()
    proc = _serve(_policy(tmp_path, '[unix, "inet:tcp"]'))
    assert proc.returncode == 0, proc.stderr
    # 200 from the server; inet6 and udp: EPERM (strict's deny of socket() still decides)
    assert proc.stdout.split() == ["200", "1", "1"]


def test_without_allow_strict_refuses_inet(tmp_path: Path) -> None:
    require_root()
    proc = subprocess.run([*CLI, "--policy", "strict", "--", "python3", "-c",
                           "import socket\ntry:\n socket.socket()\nexcept OSError as e:\n"
                           " print(e.errno)"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1"]


def test_explain_names_the_deciding_rule(tmp_path: Path) -> None:
    policy = _policy(tmp_path, '[unix, "inet:tcp"]')
    explain = [sys.executable, "-m", "stockade", "explain", policy, "socket", "--args"]
    granted = subprocess.run([*explain, "2,1,0"], capture_output=True, text=True, timeout=60)
    assert granted.returncode == 0, granted.stderr
    assert "decision: allow" in granted.stdout
    assert f"why:      network.allow [unix, inet:tcp] at {policy}:6:" in granted.stdout
    assert "agrees" in granted.stdout
    default = tmp_path / "d.yaml"
    default.write_text("stockade: 1\nname: d\nextends: [default]\n"
                       "network:\n  mode: loopback\n  allow: [unix]\n")
    refused = subprocess.run([sys.executable, "-m", "stockade", "explain", str(default),
                              "socket", "--args", "2,1,0"], capture_output=True, text=True,
                             timeout=60)
    assert "decision: errno:EAFNOSUPPORT" in refused.stdout
    assert "is not listed (EAFNOSUPPORT)" in refused.stdout
    assert "syscalls.default" not in refused.stdout
