"""The default view (issue 16): without --rootfs/--image the sandbox sees a jail, not the
host: /usr and an /etc allow-list read-only, fresh /proc /dev /tmp, nothing else unless
the policy exposes it; `--dry-run` shows it; `--rootfs /` still asks for the host's tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_root

CLI = [sys.executable, "-m", "stockade", "run"]
HOST_ONLY = ("/home", "/root", "/var/lib/docker", "/boot", "/var")


def _run(*args: str, policy: str = "strict") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--policy", policy, *args], capture_output=True, text=True,
                          timeout=60)


def _policy(tmp_path: Path, body: str, base: str = "strict") -> str:
    path = tmp_path / "p.yaml"
    path.write_text(f"stockade: 1\nname: p\nextends: [{base}]\n{body}")
    return str(path)


@pytest.mark.parametrize("policy", ["strict", "default"])
def test_host_directories_are_not_in_the_view(policy: str) -> None:
    require_root()
    present = [p for p in HOST_ONLY if os.path.exists(p)]
    assert "/root" in present  # the attack: these exist on the host
    script = "; ".join(f"test -e {p} && echo SEEN {p}" for p in present)
    proc = _run("--", "/bin/sh", "-c", f"{script}; cat /etc/shadow; ls /; exit 0", policy=policy)
    assert proc.returncode == 0, proc.stderr
    assert "SEEN" not in proc.stdout
    assert "root:" not in proc.stdout  # no password hashes
    assert "cat: /etc/shadow: No such file or directory" in proc.stderr
    assert sorted(proc.stdout.split()) == sorted(
        ["bin", "dev", "etc", "lib", "lib64", "proc", "run", "sbin", "tmp", "usr"]
        + (["sys"] if policy == "default" else []))  # strict: filesystem.deny [/sys]


def test_system_is_there_and_read_only() -> None:
    require_root()
    proc = _run("--", "/bin/sh", "-c", "python3 -c 'print(6*7)'; id -un; "
                "touch /usr/x /etc/x /x 2>&1; echo ok > /tmp/t && cat /tmp/t")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["42", "root"]  # libraries, /etc/passwd
    assert sum("Read-only file system" in line for line in lines) == 3
    assert lines[-1] == "ok"  # the private /tmp is writable


def test_ssl_private_keys_masked_and_hosts_generated() -> None:
    require_root()
    proc = _run("--hostname", "jailed", "--", "/bin/sh", "-c",
                "ls -A /etc/ssl/private | wc -l; cat /etc/hosts /etc/hostname")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "0"
    assert "127.0.1.1\tjailed" in out and out[-1] == "jailed"
    assert os.uname().nodename not in proc.stdout


def test_dry_run_shows_the_view() -> None:
    proc = _run("--dry-run", "--", "/bin/true")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "rootfs      a fresh tmpfs (jail, read-only)" in text
    assert "mount       bind      /usr <- /usr ro" in text
    assert "mount       bind      /etc/passwd <- /etc/passwd ro  # /etc allow-list" in text
    assert "/etc/shadow <-" not in text and "host / read-only" not in text


def test_expose_shows_a_host_path_read_only(tmp_path: Path) -> None:
    require_root()
    shown = tmp_path / "shown"
    shown.mkdir()
    (shown / "f").write_text("data")
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    policy = _policy(tmp_path, f"filesystem:\n  expose: [{shown}]\n")
    proc = subprocess.run([*CLI, "--policy", policy, "--", "/bin/sh", "-c",
                           f"cat {shown}/f; echo; echo x > {shown}/g; test -e {hidden} || "
                           "echo HIDDEN"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["data", "HIDDEN"]
    assert "Read-only file system" in proc.stderr
    assert not (shown / "g").exists()


def test_read_only_under_a_tmpfs_is_refused(tmp_path: Path) -> None:
    # It used to vanish silently under the preset's /tmp (a writable path there is bound).
    policy = _policy(tmp_path, "filesystem:\n  read_only: [/tmp/inputs]\n")
    proc = subprocess.run([*CLI, "--policy", policy, "--", "/bin/true"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "filesystem.read_only /tmp/inputs: under the tmpfs /tmp" in proc.stderr
    assert "filesystem.expose" in proc.stderr


def test_expose_of_a_missing_path_is_refused(tmp_path: Path) -> None:
    policy = _policy(tmp_path, f"filesystem:\n  expose: [{tmp_path}/missing]\n")
    proc = subprocess.run([*CLI, "--policy", policy, "--dry-run", "--", "/bin/true"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"filesystem.expose {tmp_path}/missing: no such file" in proc.stderr


def test_rootfs_slash_still_shows_the_host_tree() -> None:
    require_root()
    proc = _run("--rootfs", "/", "--", "/bin/sh", "-c", "test -d /root && echo HOST; "
                "test -s /etc/shadow || echo MASKED")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["HOST", "MASKED"]
