"""The real recorder on a small workload that runs under `default`: the learned policy is
no looser than `default` (`stockade diff --check default learned.yaml` exits 0), and the
workload still runs under it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.integration.learn._learn import learn, run, stockade

SH = "/bin/sh"


def _require_recorder() -> None:
    """learn's precondition: root (it reads the workload's memory) and seccomp user
    notification that can let a call continue (Linux 5.5)."""
    if os.geteuid() != 0:
        pytest.skip("stockade learn needs root (it reads the recorded process's memory)")
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    if (major, minor) < (5, 5):
        pytest.skip(f"kernel {major}.{minor} lacks SECCOMP_USER_NOTIF_FLAG_CONTINUE (5.5)")


@pytest.mark.parametrize("script", [
    "echo hi > /dev/null; ls /tmp",  # used to learn `writable: [/dev]`
    "echo hi > /tmp/f; cat /tmp/f > /dev/null; ls /tmp",  # `writable: [/tmp]` is default's tmpfs
])
def test_learned_policy_is_no_looser_than_default(tmp_path: Path, script: str) -> None:
    _require_recorder()
    out = tmp_path / "learned.yaml"
    res = learn(out, [SH, "-c", script])
    assert res.returncode == 0, res.stderr
    fs = yaml.safe_load(out.read_text())["filesystem"]
    assert "/dev" not in fs["writable"]
    diff = stockade("diff", "--check", "default", str(out))
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "B is no looser than A" in diff.stdout
    again = run(out, [SH, "-c", script])
    assert again.returncode == 0, again.stderr
