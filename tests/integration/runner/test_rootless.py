"""The runner as an unprivileged user (nobody, via setpriv): user ns with a one-id map,
setgroups denied, the same caps/nnp/seccomp; resources refused without delegation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool

HERE = Path(__file__).parent
NOBODY = 65534


def _as_nobody(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY),
                           "--clear-groups", *args], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.fixture(scope="module")
def nobody_env() -> dict[str, str]:
    require_root()  # to switch to nobody
    require_tool("setpriv")
    probe = subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY),
                            "--clear-groups", "unshare", "--user", "--map-root-user", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are not available: {probe.stderr.strip()}")
    probe = _as_nobody([sys.executable, "-c", "import stockade.api"],
                       {"PYTHONPATH": str(HERE.parents[2] / "src")})
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot import stockade from this checkout: {probe.stderr[-300:]}")
    return {"PYTHONPATH": str(HERE.parents[2] / "src"), "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/nonexistent"}


def test_rootless_run(nobody_env: dict[str, str], busybox_rootfs: Path) -> None:
    cache = tempfile.mkdtemp(prefix="stockade-rootless-")
    os.chown(cache, NOBODY, NOBODY)
    # The session rootfs lives under pytest's 0700 base dir: give nobody its own copy.
    base = tempfile.mkdtemp(prefix="stockade-rootless-rootfs-")
    os.chmod(base, 0o755)
    rootfs = Path(base) / "root"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    try:
        env = dict(nobody_env, STOCKADE_CACHE_DIR=cache)
        proc = _as_nobody([sys.executable, str(HERE / "rootless_payload.py"), str(rootfs)], env)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
    assert out["euid"] == NOBODY and out["exit_code"] == 0
    text = out["text"]
    status = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"
    assert int(status["CapBnd"], 16) == int(status["CapEff"], 16) != 0
    lines = text.splitlines()
    uid_map = next(line.split() for line in lines if line.strip().startswith("0 "))
    assert uid_map == ["0", str(NOBODY), "1"]  # one id: the invoker, never the whole range
    assert "deny" in lines
    assert any(line.startswith("user:[") and line != out["host_userns"] for line in lines)
    assert "PID=2" in text
    assert out["with_resources"] == ["cgroups", 111]
    assert out["rootfs_exit"] == 0
    escaped = {k: v for k, v in out["escapes"].items() if not str(v).startswith("blocked")}
    assert not escaped, out["escapes"]
