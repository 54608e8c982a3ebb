"""A working directory that cannot be entered: the one-line error names the path (it
used to say only `step 'hygiene' failed: [Errno 2]`); the payload never runs and
nothing is left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stockade.api import run
from stockade.errors import RunnerError
from stockade.runner.codes import EXIT_CODES
from tests.conftest import require_root

pytestmark = pytest.mark.root
ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


@pytest.mark.parametrize(("cwd", "why"), [("/nonexistent-cwd", "No such file or directory"),
                                          ("/etc/hostname", "Not a directory")])
def test_bad_cwd_names_the_path(outdir: Path, leak_check: None, cwd: str, why: str) -> None:
    with pytest.raises(RunnerError) as exc:
        run(["/bin/sh", "-c", "touch /mnt/ran"], env=ENV, cwd=cwd,
                     binds=[f"{outdir}:/mnt"])
    assert not (outdir / "ran").exists(), "the payload ran"
    assert exc.value.step == "hygiene" and exc.value.exit_code == EXIT_CODES["hygiene"]
    assert f"working directory {cwd}" in exc.value.message and why in exc.value.message


def test_bad_cwd_on_the_command_line_is_one_line() -> None:
    res = subprocess.run([sys.executable, "-m", "stockade", "run", "--cwd", "/nonexistent-cwd",
                          "--", "/bin/true"], capture_output=True, text=True, timeout=60)
    assert res.returncode == EXIT_CODES["hygiene"]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent-cwd" in lines[0] and "Traceback" not in res.stderr
