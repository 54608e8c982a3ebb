"""`filesystem.writable` works on a root-owned host directory (issue 16): as root, the
runner gives it an idmapped mount through the sandbox's own maps, so the payload's root
owns it inside and writes as its owner outside; nothing is chowned on the host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "stockade", "run"]
SQLITE = ("import sqlite3; c = sqlite3.connect('app.db'); c.execute('create table t (x)'); "
          "c.execute('insert into t values (42)'); c.commit(); "
          "print(c.execute('select x from t').fetchone()[0])")


def _policy(tmp_path: Path, data: Path) -> str:
    # written from docs/POLICY.md's example only
    path = tmp_path / "app.yaml"
    path.write_text(f"stockade: 1\nname: app\nextends: [default]\n"
                    f"filesystem:\n  writable: [{data}]\n")
    return str(path)


def _run(policy: str, cwd: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--policy", policy, "--cwd", str(cwd), "--", "/bin/sh", "-c",
                           script], capture_output=True, text=True, timeout=120)


def test_sqlite_in_a_root_owned_writable_dir(tmp_path: Path, data_dir: Path) -> None:
    before = os.stat(data_dir)
    proc = _run(_policy(tmp_path, data_dir), data_dir,
                f"stat -c '%u %g' .; python3 -c \"{SQLITE}\"")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0", "42"]  # root's inside, not nobody's
    db = os.stat(data_dir / "app.db")
    assert (db.st_uid, db.st_gid) == (0, 0)  # stored as the directory's owner
    after = os.stat(data_dir)
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid,
                                                          before.st_mode)  # no chown


def test_git_in_a_root_owned_writable_dir(tmp_path: Path, data_dir: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed on this host")
    proc = _run(_policy(tmp_path, data_dir), data_dir,
                "git init -q repo && cd repo && echo hi > f && git add f && "
                "git -c user.name=t -c user.email=t@example.invalid commit -q -m first && "
                "git log --format=%s")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "first"
    assert "dubious ownership" not in proc.stderr
    assert os.stat(data_dir / "repo" / ".git").st_uid == 0


def test_writes_elsewhere_still_fail(tmp_path: Path, data_dir: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    proc = _run(_policy(tmp_path, data_dir), data_dir,
                f"touch /usr/x 2>/dev/null || echo USR; touch {outside}/x 2>/dev/null || "
                "echo OUTSIDE; touch ok && echo DATA")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["USR", "OUTSIDE", "DATA"]
    assert not (outside / "x").exists()


def test_mount_is_idmapped_and_nosuid(tmp_path: Path, data_dir: Path) -> None:
    proc = _run(_policy(tmp_path, data_dir), data_dir, f"grep ' {data_dir} ' /proc/self/mountinfo")
    assert proc.returncode == 0, proc.stderr
    options = proc.stdout.split()[5].split(",")
    assert {"rw", "nosuid", "nodev", "idmapped"} <= set(options)
    with open("/proc/self/mountinfo") as fh:  # nothing left mounted on the host
        assert f" {data_dir} " not in fh.read()
