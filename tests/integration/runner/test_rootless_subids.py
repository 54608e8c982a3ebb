"""Rootless (issue 16): a user with /etc/subuid and /etc/subgid ranges gets them through
newuidmap/newgidmap; the presets' cgroup limits are best-effort for a user who cannot
create cgroups (pids becomes RLIMIT_NPROC), limits the policy file sets still fail closed.

The user and its ranges are made by the test and removed after it; /etc/subuid and
/etc/subgid are restored byte for byte (or removed again when they did not exist)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.executor import spawn
from tests.conftest import require_root, require_tool

ROOT = Path(__file__).resolve().parents[3]
SUB_START, SUB_COUNT = 3_000_000_000, 65536  # far from the root pool and other ranges
# The runner's dependencies are in the checkout's venv; its interpreter may live where
# the test user cannot go (/root): the system python3 of the same minor version runs it.
SITE = ROOT / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


Snapshot = tuple[bytes, int, int, int, int, int]  # content, mode, uid, gid, atime, mtime


def _snapshot(path: str) -> Snapshot | None:
    try:
        st = os.stat(path)
        return (Path(path).read_bytes(), st.st_mode, st.st_uid, st.st_gid, st.st_atime_ns,
                st.st_mtime_ns)
    except FileNotFoundError:
        return None


def _restore(path: str, saved: Snapshot | None) -> None:
    if saved is None:
        Path(path).unlink(missing_ok=True)
        return
    data, mode, uid, gid, atime, mtime = saved
    Path(path).write_bytes(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    os.utime(path, ns=(atime, mtime))


@pytest.fixture(scope="module")
def sub_user() -> Iterator[tuple[str, int, str]]:
    require_root()
    for tool in ("useradd", "userdel", "newuidmap", "newgidmap", "setpriv"):
        require_tool(tool)
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None or not SITE.is_dir():
        pytest.skip("no system python3 or checkout venv to run the runner as another user")
    name = f"stk{os.getpid() % 100000}"
    saved = {p: _snapshot(p) for p in ("/etc/subuid", "/etc/subgid")}
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True)
    try:
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path, "a") as fh:
                fh.write(f"{name}:{SUB_START}:{SUB_COUNT}\n")
        probe = subprocess.run(["setpriv", f"--reuid={name}", f"--regid={name}",
                                "--clear-groups", python, "-c", "import stockade.api"],
                               env=_env(), capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"the test user cannot import stockade: {probe.stderr[-300:]}")
        yield name, pwd.getpwnam(name).pw_uid, python
    finally:
        for path, snap in saved.items():
            _restore(path, snap)
        subprocess.run(["userdel", name], capture_output=True)
    for path, snap in saved.items():  # the atime aside: reading the file sets it
        now = _snapshot(path)
        assert (now and now[:4] + now[5:]) == (snap and snap[:4] + snap[5:]), path


def _env(cache: str = "") -> dict[str, str]:
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{SITE}", "HOME": "/nonexistent",
           "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "PYTHONDONTWRITEBYTECODE": "1",
           # another interpreter than the venv's: the executor is not next to it
           "STOCKADE_EXECUTOR": spawn.binary()}
    return {**env, "STOCKADE_CACHE_DIR": cache} if cache else env


def _run_as(user: tuple[str, int, str], policy: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    name, uid, python = user
    cache = tempfile.mkdtemp(prefix="stockade-subids-")
    os.chown(cache, uid, uid)
    try:
        return subprocess.run(["setpriv", f"--reuid={name}", f"--regid={name}", "--clear-groups",
                               python, "-m", "stockade", "run", "--policy", policy, "--",
                               *cmd], env=_env(cache), capture_output=True, text=True,
                              timeout=120, cwd="/")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def test_newuidmap_maps_the_subordinate_range(sub_user: tuple[str, int, str]) -> None:
    proc = _run_as(sub_user, "default", "/bin/sh", "-c",
                   "cat /proc/self/uid_map /proc/self/gid_map; id -u")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    uid = str(sub_user[1])
    expected = [["0", uid, "1"], ["1", str(SUB_START), str(SUB_COUNT)]]
    assert rows[:2] == expected
    assert rows[2][::2] == ["0", "1"] and rows[3] == ["1", str(SUB_START), str(SUB_COUNT)]
    assert rows[-1] == ["0"]


def test_preset_limits_are_best_effort(sub_user: tuple[str, int, str]) -> None:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("cgroup v2 host: delegation may let the user create cgroups")
    proc = _run_as(sub_user, "default", "/bin/grep", "Max processes", "/proc/self/limits")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[2:4] == ["1024", "1024"]  # the preset's pids, as NPROC
    assert "the preset's cgroup limits (pids=1024) are not applied" in proc.stderr


def test_own_limits_fail_closed(sub_user: tuple[str, int, str]) -> None:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("cgroup v2 host: delegation may let the user create cgroups")
    base = Path(tempfile.mkdtemp(prefix="stockade-own-"))  # pytest's base dir is 0700
    base.chmod(0o755)
    policy = base / "own.yaml"
    policy.write_text("stockade: 1\nname: own\nextends: [default]\nresources: {pids: 100}\n")
    policy.chmod(0o644)
    try:
        proc = _run_as(sub_user, str(policy), "/bin/true")
    finally:
        shutil.rmtree(base)
    assert proc.returncode != 0
    assert "step 'cgroups' failed" in proc.stderr and proc.stderr.count("\n") == 1


def test_rootless_proofs(sub_user: tuple[str, int, str]) -> None:
    """The issue's proofs, unprivileged: a writable directory of the user (root's inside,
    rootless), sqlite3 in it, an HTTP server on loopback under strict + network.allow."""
    uid = sub_user[1]
    base = Path(tempfile.mkdtemp(prefix="stockade-rootless-proofs-"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    os.chown(data, uid, uid)
    policy = base / "app.yaml"
    policy.write_text(f"stockade: 1\nname: app\nextends: [strict]\nfilesystem:\n"
                      f"  writable: [{data}]\nnetwork:\n  mode: loopback\n"
                      f"  allow: [unix, \"inet:tcp\"]\n")
    policy.chmod(0o644)
    script = (f"cd {data} && python3 -c \"import sqlite3; c = sqlite3.connect('a.db'); "
              "c.execute('create table t (x)'); c.commit(); print('DB')\" && "
              "(python3 -m http.server 8766 --bind 127.0.0.1 >/dev/null 2>&1 &) && "
              "python3 -c \"import time, urllib.request\nfor _ in range(100):\n try:\n"
              "  print(urllib.request.urlopen('http://127.0.0.1:8766/').status); break\n"
              " except OSError: time.sleep(0.05)\"; ls /home 2>/dev/null || echo NOHOME")
    try:
        proc = _run_as(sub_user, str(policy), "/bin/sh", "-c", script)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["DB", "200", "NOHOME"]
        assert os.stat(data / "a.db").st_uid == uid  # the user's own file, nothing chowned
    finally:
        shutil.rmtree(base)
