"""learn's bad input: failing, missing and killed workloads still give a policy (with a
warning and exit 1); nothing useful to write gives exit 2 and leaves no file behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stockade.policy.loader import load_policy
from tests.conftest import require_root
from tests.integration.learn._learn import learn, stockade

SH = "/bin/sh"


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


def _no_temp(directory: Path) -> None:
    assert not list(directory.glob(".stockade-*")), "a temporary file was left behind"


def test_failing_command_still_writes(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    res = learn(out, [SH, "-c", "echo x > /tmp/f; exit 3"])
    assert res.returncode == 1
    assert "exited with status 3" in res.stderr
    load_policy(str(out))
    assert "/tmp" in yaml.safe_load(out.read_text())["filesystem"]["writable"]
    _no_temp(tmp_path)


def test_command_not_found_still_writes(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    res = learn(out, ["/no/such/program"])
    assert res.returncode == 1
    assert "never ran" in res.stderr and "not found" in res.stderr
    p = load_policy(str(out))
    assert str(p.syscalls.default) == "kill"


def test_killed_by_signal_still_writes(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    res = learn(out, [SH, "-c", "kill -9 $$"])
    assert res.returncode == 1
    assert "killed by signal 9" in res.stderr
    assert "kill" in load_policy(str(out)).syscalls.allow


def test_threads_and_children_are_recorded(tmp_path: Path) -> None:
    """Completeness: a grandchild's and a thread's syscalls are in the policy."""
    out = tmp_path / "p.yaml"
    script = ("import os, threading\n"
              "t = threading.Thread(target=lambda: os.getpriority(os.PRIO_PROCESS, 0))\n"
              "t.start(); t.join()\n"
              "if os.fork() == 0:\n"
              "    if os.fork() == 0:\n"
              "        os.getpgid(0); os._exit(0)\n"
              "    os.wait(); os._exit(0)\n"
              "os.wait()\n")
    res = learn(out, ["/usr/bin/python3", "-I", "-S", "-c", script])
    assert res.returncode == 0, res.stderr
    allow = load_policy(str(out)).syscalls.allow
    assert "getpriority" in allow and "getpgid" in allow
    # pthread_create used clone3 while learning; under the policy it falls back to clone
    res = stockade("run", "--policy", str(out), "--", "/usr/bin/python3", "-I", "-S", "-c", script)
    assert res.returncode == 0, res.stderr


def test_no_partial_files(tmp_path: Path) -> None:
    res = learn(tmp_path / "missing-dir" / "p.yaml", [SH, "-c", "true"])
    assert res.returncode == 2
    not_policy = tmp_path / "notes.yaml"
    not_policy.write_text("just: text\n")
    res = learn(not_policy, [SH, "-c", "true"], "--append")
    assert res.returncode == 2
    assert not_policy.read_text() == "just: text\n"
    res = stockade("learn", "-o", str(tmp_path / "p.yaml"))
    assert res.returncode == 2
    assert not (tmp_path / "p.yaml").exists()
    _no_temp(tmp_path)


def test_rootfs(tmp_path: Path, busybox_rootfs: Path) -> None:
    out = tmp_path / "p.yaml"
    argv = ["/bin/sh", "-c", "echo inside > /tmp/x; cat /tmp/x"]
    res = learn(out, argv, "--rootfs", str(busybox_rootfs))
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load(out.read_text())["filesystem"]["exec"] == ["/bin/sh"]
    res = stockade("run", "--rootfs", str(busybox_rootfs), "--policy", str(out), "--", *argv)
    assert res.returncode == 0 and "inside" in res.stdout, res.stderr


def test_extends_a_base_policy(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("stockade: 1\nname: base\nsyscalls:\n  default: kill\n  allow: [read, write]\n"
                    "network: {mode: none}\n")
    out = tmp_path / "p.yaml"
    argv = ["/bin/busybox", "sh", "-c", "echo based"]
    res = learn(out, argv, "--policy", str(base))
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["extends"] == [str(base)]
    assert "read" not in doc["syscalls"]["allow"] and "execve" in doc["syscalls"]["allow"]
    res = stockade("run", "--policy", str(out), "--", *argv)
    assert res.returncode == 0 and "based" in res.stdout, res.stderr


def test_bad_default_action(tmp_path: Path) -> None:
    res = learn(tmp_path / "p.yaml", [SH, "-c", "true"], "--default", "explode")
    assert res.returncode == 2 and "explode" in res.stderr
    assert not (tmp_path / "p.yaml").exists()
