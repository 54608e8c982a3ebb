"""One reader of a process's /proc facts: the audit's target walk (parent, a sandbox
init's payload) and the runner's LSM check (the payload) read them through procstat,
not each with its own parser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.audit import targets
from stockade.lsm.verify import payload_pid
from stockade.runner.procstat import first_child, parent_pid

_PARENT_OF_SLEEP = "import subprocess, sys; p = subprocess.Popen(['sleep', '30']); print(p.pid, flush=True); p.wait()"


def test_first_child_is_the_inits_payload_for_the_audit_and_the_lsm_check() -> None:
    if not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists():
        pytest.skip("kernel without CONFIG_PROC_CHILDREN")
    init = subprocess.Popen([sys.executable, "-c", _PARENT_OF_SLEEP], stdout=subprocess.PIPE, text=True)
    assert init.stdout is not None
    payload = int(init.stdout.readline())
    try:
        assert first_child(init.pid) == payload
        assert targets._payload(init.pid) == payload
        assert payload_pid(init.pid, has_init=True) == payload
        assert payload_pid(init.pid, has_init=False) == init.pid
        # no child: the audit looks at the process itself, the LSM check has nothing to check
        assert first_child(payload) is None
        assert targets._payload(payload) == payload
        assert payload_pid(payload, has_init=True) is None
        assert parent_pid(payload) == init.pid
    finally:
        os.kill(payload, signal.SIGKILL)  # the sleep this test started; its parent then exits
        init.wait()


def test_a_gone_process_has_no_parent_and_no_child() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert first_child(gone.pid) is None and parent_pid(gone.pid) is None
