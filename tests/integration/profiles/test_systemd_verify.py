"""`systemd-analyze verify` accepts the generated drop-in on a test unit.

verify loads the unit with its drop-ins from SYSTEMD_UNIT_PATH and logs every key it
does not know or cannot parse; any such line about our unit fails the test. The one
tolerated message is systemd 252 not knowing a syscall newer than itself (it ignores the
name; in an allow list that only makes the filter stricter).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from _profiles_env import HOST, require_tool

from stockade.policy.model import Policy
from stockade.profiles import systemd
from stockade.profiles.base import write_artifacts

_UNIT = "[Unit]\nDescription=stockade drop-in check\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
_PROBLEM = re.compile(r"unknown|invalid|failed to parse|ignoring|bad|not supported", re.I)
_TOLERATED = re.compile(r"Failed to parse system call, ignoring: \w+$")


def verify(tmp_path: Path, dropin: str) -> tuple[int, list[str]]:
    tool = require_tool("systemd-analyze")
    (tmp_path / "stockade-check.service").write_text(_UNIT)
    d = tmp_path / "stockade-check.service.d"
    d.mkdir(exist_ok=True)
    (d / "50-stockade.conf").write_text(dropin)
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{tmp_path}:", SYSTEMD_LOG_LEVEL="debug")
    res = subprocess.run([tool, "verify", "--man=no", str(tmp_path / "stockade-check.service")],
                         capture_output=True, text=True, timeout=120, env=env)
    ours = [line for line in (res.stdout + res.stderr).splitlines()
            if ("stockade-check.service" in line or "50-stockade.conf" in line)
            and _PROBLEM.search(line) and not _TOLERATED.search(line)]
    return res.returncode, ours


def test_dropin_verifies(example_policy: Policy, tmp_path: Path) -> None:
    art = systemd.compile(example_policy, HOST)
    write_artifacts(art, str(tmp_path / "out"))
    rc, problems = verify(tmp_path, art.files[0].text or "")
    assert rc == 0 and not problems, "\n".join(problems)


def test_the_check_bites(example_policy: Policy, tmp_path: Path) -> None:
    text = systemd.render(example_policy, HOST)[0] + "NoSuchDirective=1\nMemoryMax=lots\n"
    _, problems = verify(tmp_path, text)
    assert any("NoSuchDirective" in p for p in problems) and any("lots" in p for p in problems)
