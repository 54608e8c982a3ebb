"""The rows proved by opening paths share one probe plan and one reading of its outcomes
(audit/checks/_opens): a path the kernel lacks is skipped, probes that did not run make
the row an error, never a pass."""

from __future__ import annotations

from pathlib import Path

from stockade.audit.checks import ALL
from stockade.audit.model import Status
from stockade.audit.probe import Outcome

from .test_checks_fake_proc import status, view_of

ROWS = {"DEV-MEM-KMSG": ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg"),
        "MASKED-PATHS-MISSING": ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                                 "/sys/firmware")}


def test_probes_that_did_not_run_make_the_row_an_error(tmp_path: Path) -> None:
    v = view_of(tmp_path)
    for cid, paths in ROWS.items():
        assert status(v, cid, {}, error="the probe child died") is Status.ERROR, cid
        half = {paths[0]: Outcome(False, 2)}
        assert status(v, cid, half, error="timed out") is Status.ERROR, cid
        assert status(v, cid, {p: Outcome(False, 2) for p in paths}) is Status.ABSENT, cid


def test_each_row_plans_one_open_per_path(tmp_path: Path) -> None:
    v = view_of(tmp_path)
    for cid, paths in ROWS.items():
        plan = ALL[cid].probes
        assert plan is not None and set(plan(v)) == set(paths), cid
    sysfs = ALL["SYSFS-RW"].probes
    assert sysfs is not None and set(sysfs(v)) == {"/sys/kernel/uevent_helper"}
