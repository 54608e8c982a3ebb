"""The audit sees `stockade run` sandboxes (issue 16): each is recorded under the state
dir while it runs (removed at its end, stale records ignored and cleaned), listed by
--all and found by --stockade ID; the strict and default sandboxes (the jail) show no
open high or critical finding, and runc's CVE rows are not charged to them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.runner import runs
from tests.conftest import require_root

STOCKADE = [sys.executable, "-m", "stockade"]
SEVERE = ("high", "critical")
OPEN = ("exploitable", "present")


@pytest.fixture()
def state_dir(tmp_path: Path) -> Path:
    require_root()
    return tmp_path / "state"


def _start(policy: str, state: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, STOCKADE_STATE_DIR=str(state))
    return subprocess.Popen([*STOCKADE, "run", "--policy", policy, "--", "sleep", "60"],
                            env=env)


def _records(state: Path, count: int) -> list[dict[str, object]]:
    for _ in range(200):
        found = runs.live(str(state / "run"))
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{count} sandboxes not recorded under {state}")


@pytest.fixture()
def sandboxes(state_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [_start("strict", state_dir), _start("default", state_dir)]
    try:
        yield procs
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


def _audit(state: Path, *args: str) -> dict[str, object]:
    out = state.parent / "audit.json"
    subprocess.run([*STOCKADE, "audit", *args, "--stockade-root", str(state), "--format",
                    "json", "-o", str(out), "--progress", "never"][: None if "--all" in args
                                                                   else -2],
                   capture_output=True, text=True, timeout=120)
    data: dict[str, object] = json.loads(out.read_text())
    return data


def test_all_lists_run_sandboxes_with_no_severe_finding(
        state_dir: Path, sandboxes: list[subprocess.Popen[bytes]]) -> None:
    records = _records(state_dir, 2)
    assert sorted(str(r["policy"]) for r in records) == ["default", "strict"]
    report = _audit(state_dir, "--all")
    audits = [a for a in report["audits"]  # type: ignore[attr-defined]
              if a["target"]["runtime"] == "stockade"
              and a["target"]["container_id"] in {r["id"] for r in records}]
    assert len(audits) == 2
    for a in audits:
        severe = [f["id"] for f in a["findings"]
                  if f["severity"] in SEVERE and f["status"] in OPEN]
        assert severe == [], (a["target"], severe)
        assert {"MNT-HOST-ROOT", "MNT-HOST-PROC"} <= set(a["passed"])  # the jail
        runc = {f["id"]: f["status"] for f in a["findings"]}.get("RUNC-CVE-2025")
        assert runc in (None, "not-applicable")


def test_stockade_id_and_pid_are_attributed(
        state_dir: Path, sandboxes: list[subprocess.Popen[bytes]]) -> None:
    record = _records(state_dir, 2)[0]
    report = _audit(state_dir, "--stockade", str(record["id"]))
    [a] = report["audits"]  # type: ignore[misc]
    assert a["target"]["kind"] == "stockade" and a["target"]["pid"] != record["pid"]  # payload
    by_pid = _audit(state_dir, "--pid", str(a["target"]["pid"]))
    [b] = by_pid["audits"]  # type: ignore[misc]
    assert b["target"]["runtime"] == "stockade"


def test_records_removed_at_exit_and_stale_ones_ignored(state_dir: Path) -> None:
    proc = _start("strict", state_dir)
    try:
        [record] = _records(state_dir, 1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not (state_dir / "run" / str(record["id"])).exists()
    # a runner killed outright leaves its record: a dead pid, ignored, then cleaned
    stale = state_dir / "run" / "stale-1"
    stale.mkdir(parents=True)
    (stale / "state.json").write_text(json.dumps({"id": "stale-1", "pid": 2**22 - 1,
                                                  "start_time": 1}))
    assert runs.live(str(state_dir / "run")) == []
    runs.clean_stale(str(state_dir / "run"))
    assert not stale.exists()
