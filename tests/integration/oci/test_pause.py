"""`stockade oci pause` / `resume` against runc's: the same busy container under both;
paused, its process gets no CPU time and the state says "paused"; resumed, it runs on.
A paused container can be killed and deleted (--force, by Python and by the front end)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.oci.conftest import RUNTIMES, Bundles, leftovers, oci

BUSY = ["sh", "-c", "while :; do :; done"]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def status(root: Path, cid: str, rt: str) -> str:
    r = oci(root, "state", cid, runtime=rt)
    assert r.returncode == 0, r.stderr
    s: str = json.loads(r.stdout)["status"]
    return s


@pytest.fixture
def running(bundles: Bundles, twins: Callable[..., str]) -> Callable[..., str]:
    """make(runtimes) -> id: the same busy container created and started in each."""
    def make(runtimes: tuple[str, ...] = RUNTIMES) -> str:
        cfg = bundles.config()
        cfg["process"]["args"] = BUSY
        return twins(cfg, runtimes=runtimes, prefix="pz")

    return make


def test_pause_and_resume_agree_with_runc(running: Callable[..., str], oci_root: Path) -> None:
    cid = running()
    for rt in RUNTIMES:
        pid = json.loads(oci(oci_root, "state", cid, runtime=rt).stdout)["pid"]
        assert oci(oci_root, "pause", cid, runtime=rt).returncode == 0
        assert status(oci_root, cid, rt) == "paused"
        before = cpu_ticks(pid)
        time.sleep(0.3)
        assert cpu_ticks(pid) == before, rt  # frozen: no CPU time at all
        assert json.loads(oci(oci_root, "state", cid, runtime=rt).stdout)["pid"] == pid
        again = oci(oci_root, "pause", cid, runtime=rt)
        assert again.returncode != 0, rt  # not running any more
        assert oci(oci_root, "resume", cid, runtime=rt).returncode == 0
        assert status(oci_root, cid, rt) == "running"
        before = cpu_ticks(pid)
        time.sleep(0.3)
        assert cpu_ticks(pid) > before, rt
        assert oci(oci_root, "resume", cid, runtime=rt).returncode != 0, rt  # not paused
    assert "not paused" in oci(oci_root, "resume", cid).stderr


def test_a_paused_container_is_deleted(running: Callable[..., str], oci_root: Path,
                                       frontend_bin: str) -> None:
    import subprocess

    for how in ("python", "front end"):
        cid = running(("stockade",))
        assert oci(oci_root, "pause", cid).returncode == 0
        pid = json.loads(oci(oci_root, "state", cid).stdout)["pid"]
        t = time.monotonic()
        if how == "python":
            r = oci(oci_root, "delete", "--force", cid)
        else:
            r = subprocess.run([frontend_bin, "--root", str(oci_root / "stockade"), "delete",
                                "--force", cid], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (how, r.stderr)
        assert time.monotonic() - t < 2.5, how  # thawed at once, not after a timeout
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        assert not (oci_root / "stockade" / cid).exists() and not leftovers(cid)


def test_kill_while_paused(running: Callable[..., str], oci_root: Path,
                           frontend_bin: str) -> None:
    """SIGKILL to a paused container thaws it (runc's rule: a frozen process cannot
    die); another signal waits for resume."""
    import subprocess

    kill: dict[str, list[str]] = {"runc": [], "stockade": [],
                                  "front end": [frontend_bin, "--root"]}
    for how in ("runc", "stockade", "front end"):
        rt = "runc" if how == "runc" else "stockade"
        cid = running((rt,))
        assert oci(oci_root, "pause", cid, runtime=rt).returncode == 0
        assert oci(oci_root, "kill", cid, "TERM", runtime=rt).returncode == 0
        time.sleep(0.2)
        assert status(oci_root, cid, rt) == "paused", how  # pending until resumed
        if kill[how]:
            r = subprocess.run([*kill[how], str(oci_root / rt), "kill", cid, "KILL"],
                               capture_output=True, text=True, timeout=30)
        else:
            r = oci(oci_root, "kill", cid, "KILL", runtime=rt)
        assert r.returncode == 0, (how, r.stderr)
        deadline = time.monotonic() + 5
        while status(oci_root, cid, rt) != "stopped":
            assert time.monotonic() < deadline, how
            time.sleep(0.02)
        assert oci(oci_root, "resume", cid, runtime=rt).returncode != 0, how  # not paused
