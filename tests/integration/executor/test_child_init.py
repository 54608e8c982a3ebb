"""The tiny init and the payload's clean start (executor/child.c, `stockade run`'s mode).

The init (PID 1 of the sandbox) takes the identity steps, blocks every signal, forks the
payload and then only reaps: without no_new_privs it kept root's capabilities for the
payload's late capability step, so it must shed them once the payload is forked. The
payload must start with nothing blocked or ignored, whichever process set it up.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import pytest

import stockade
from stockade.policy.model import Policy
from tests.conftest import require_root

pytestmark = pytest.mark.root
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


def status_lines(script: str, policy: Policy | str = "default", **kw: object) -> list[str]:
    """Run script (stdout into a temp file: the sandbox writes to our fd 1)."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            res = stockade.run(["/bin/sh", "-c", script], policy=policy, env=ENV, **kw)  # type: ignore[arg-type]
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        assert res.exit_code == 0
        return tmp.read().decode().splitlines()


def fields(lines: list[str]) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":\t") for line in lines) if v}


def test_the_init_sheds_its_privileges_without_no_new_privs() -> None:
    from stockade.policy.loader import load_policy

    default = load_policy("default")
    pol = dataclasses.replace(default, no_new_privileges=False,
                              digest=default.digest + "-nnp0-init")
    init = fields(status_lines("grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/1/status", pol))
    assert int(init["CapEff"], 16) == 0 and int(init["CapPrm"], 16) == 0
    assert init["NoNewPrivs"] == "1"
    payload = fields(status_lines("grep -E '^(CapEff|NoNewPrivs):' /proc/self/status", pol))
    assert int(payload["CapEff"], 16) != 0 and payload["NoNewPrivs"] == "0"  # only the init


@pytest.mark.parametrize("init", [True, False])
def test_the_payload_starts_with_no_signal_blocked_or_ignored(init: bool) -> None:
    got = fields(status_lines("grep -E '^(SigBlk|SigIgn):' /proc/self/status", init=init))
    # the shell itself ignores nothing it was not started with
    assert int(got["SigBlk"], 16) == 0 and int(got["SigIgn"], 16) == 0, got
