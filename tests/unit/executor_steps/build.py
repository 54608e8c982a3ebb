"""Compile one executor step's test driver with the step sources (cc -Wall -Wextra
-Werror: a warning in a step is a failed test). Skips with the reason without a compiler."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
STEPS = REPO / "src" / "stockade" / "executor" / "steps"
DRIVERS = Path(__file__).resolve().parent
FLAGS = ("-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror")


def compile_driver(name: str, out_dir: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc): the executor's steps cannot be built here")
    exe = out_dir / name
    sources = [str(DRIVERS / f"{name}.c"), *sorted(str(p) for p in STEPS.glob("*.c"))]
    done = subprocess.run([cc, *FLAGS, "-I", str(STEPS), "-o", str(exe), *sources],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{name} does not build cleanly:\n{done.stderr}"
    return exe
