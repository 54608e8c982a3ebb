"""What the installed front end is built with: no test switch of any kind. The kill
points (STOCKADE_TEST_PAUSE), the forced cgroup v2 view and `--read-plan` exist only in
the tests' own build (-DSTOCKADE_TEST_HOOKS), and no plan carries a test switch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.unit.executor.plan_kinds import GOLDEN, KINDS

TEST_ONLY = (b"STOCKADE_TEST_PAUSE", b"STOCKADE_TEST_CGROUP_V2", b"--read-plan")


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    from stockade.oci.frontend import build

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the executor cannot be built here")
    if not Path("/usr/include/json-c/json.h").exists():
        pytest.skip("no json-c headers (Debian libjson-c-dev): the executor cannot be built")
    d = tmp_path_factory.mktemp("builds")
    return {"installed": Path(build(str(d / "installed"))).read_bytes(),  # as setup.py does
            "tests": Path(build(str(d / "tests"), cli="/bin/false",
                                test_hooks=True)).read_bytes()}


@pytest.mark.parametrize("switch", TEST_ONLY)
def test_test_switches_only_in_the_tests_build(builds: dict[str, bytes], switch: bytes) -> None:
    assert switch in builds["tests"]  # the check below can fail: the string is findable
    assert switch not in builds["installed"]


def test_the_installed_front_end_falls_back_to_the_stockade_next_to_it(
        builds: dict[str, bytes], tmp_path: Path) -> None:
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    front_end = bin_dir / "stockade-oci"
    front_end.write_bytes(builds["installed"])
    front_end.chmod(0o755)
    script = bin_dir / "stockade"
    script.write_text('#!/bin/sh\necho "$0 $*"\n')
    script.chmod(0o755)
    link = tmp_path / "elsewhere"  # engines may call it through a symlink
    link.symlink_to(front_end)
    for exe in (front_end, link):
        r = subprocess.run([str(exe), "--root", "/nonexistent", "list"], capture_output=True,
                           text=True, timeout=30, check=False)
        assert r.returncode == 0 and r.stdout == f"{script} oci --root /nonexistent list\n"


def test_no_plan_carries_a_test_switch() -> None:
    for kind in KINDS:
        text = (GOLDEN / f"{kind}.json").read_text()
        assert "TEST" not in text and "forced" not in text, kind


REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_the_packages_build_compiles_the_front_end(tmp_path: Path) -> None:
    """`pip wheel` (as `pip install` builds) of a copy of the project: the wheel holds
    the front end as a script (installed next to the `stockade` console script, which it
    falls back to) and the package's fixed build stamp, and the two agree."""
    import subprocess
    import sys
    import zipfile

    from stockade.oci import fastplan

    if shutil.which("cc") is None or not Path("/usr/include/json-c/json.h").exists():
        pytest.skip("no C compiler or json-c headers: the package builds without a front end")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src" / "stockade", project / "src" / "stockade",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                        str(tmp_path / "dist"), str(project)],
                       capture_output=True, text=True, timeout=300, check=False)
    if r.returncode != 0 and "setuptools" in r.stderr and "find" in r.stderr.lower():
        pytest.skip(f"pip cannot get the build requirements here: {r.stderr[-300:]}")
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").iterdir()
    assert wheel.name.endswith("linux_x86_64.whl") or "linux" in wheel.name  # not "any"
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(unpacked)
    (front_end,) = unpacked.glob("stockade-*.data/scripts/stockade-oci")
    front_end.chmod(0o755)
    assert (unpacked / "stockade" / fastplan.BUILD_STAMP).is_file()
    built = subprocess.run([str(front_end), "--stamp"], capture_output=True, text=True,
                           timeout=30, check=True).stdout.strip()
    assert built == fastplan.stamp(str(unpacked / "stockade"))  # plans are stored for it
    assert b"STOCKADE_TEST_PAUSE" not in front_end.read_bytes()
