"""The executor's cgroup step (executor/cgroups.c) on directories laid out like cgroupfs,
through a small driver (tests/unit/executor/cgroups_driver.c): the limits runner.cgroups
plans are written where they belong, a missing controller or file is named or noted as
planned, and a cgroupsPath never leaves the hierarchy. No privileges needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stockade.executor import plan_json
from stockade.runner.cgroups import Hierarchy, plan
from stockade.runner.plan import Limits

HERE = Path(__file__).resolve().parent
EXECUTOR = HERE.parents[2] / "src" / "stockade" / "executor"
RET_ALLOW = b"\x06\x00\x00\x00\x00\x00\xff\x7f"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc): the executor cannot be built here")
    if not Path("/usr/include/json-c/json.h").exists():
        pytest.skip("no json-c headers (Debian libjson-c-dev): the executor cannot be built")
    out = tmp_path_factory.mktemp("cgroups") / "cgroups_driver"
    done = subprocess.run([cc, "-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror",
                           "-I", str(EXECUTOR), "-I", str(EXECUTOR / "steps"), "-o", str(out),
                           str(HERE / "cgroups_driver.c"), *(str(EXECUTOR / f) for f in
                           ("plan_read.c", "cgroups.c", "files.c")), "-ljson-c"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return str(out)


def _run(driver: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([driver, *args], capture_output=True, text=True, check=False,
                          timeout=30)


def _document(tmp_path: Path, section: dict[str, object]) -> str:
    from stockade.policy.loader import load_policy
    from stockade.runner.plan import RunSpec, build_plan
    from stockade.runner.prepare import policy_part

    run = build_plan(policy_part(load_policy("default"), seccomp_bpf=RET_ALLOW),
                     RunSpec(argv=("/bin/true",)), euid=0)
    doc = plan_json.run_document(run, "run", plan_json.ExecFds(report=3, err=4, sync=5,
                                                               status=6), cgroups=section)
    path = tmp_path / "plan.json"
    path.write_bytes(plan_json.dumps(doc))
    return str(path)


def _v2_run_dir(root: Path, controllers: str = "cpu io memory pids") -> Path:
    run = root / "stockade" / "r1"
    run.mkdir(parents=True)
    (run / "cgroup.controllers").write_text(controllers + "\n")
    for f in ("memory.max", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight", "io.weight"):
        (run / f).write_text("")
    return run


def _v2(tmp_path: Path) -> Hierarchy:
    return Hierarchy("v2", (), str(tmp_path), "/")


def test_v2_limits_are_written_where_planned(driver: str, tmp_path: Path) -> None:
    run = _v2_run_dir(tmp_path)
    section = plan(_v2(tmp_path), "r1", Limits(memory=64 << 20, swap=0, pids=32,
                                                cpu_quota_us=50000, cpu_weight=200,
                                                io_weight=300)).section
    r = _run(driver, "limit", _document(tmp_path, section), str(run))
    assert r.stdout == "ok\n", r.stdout
    assert (run / "memory.max").read_text() == str(64 << 20)
    assert (run / "memory.swap.max").read_text() == "0"
    assert (run / "pids.max").read_text() == "32"
    assert (run / "cpu.max").read_text() == "50000 100000"
    assert (run / "cpu.weight").read_text() == "200"
    assert (run / "io.weight").read_text() == "default 300"


def test_v2_missing_controller_is_named(driver: str, tmp_path: Path) -> None:
    run = _v2_run_dir(tmp_path, controllers="cpu")
    section = plan(_v2(tmp_path), "r1", Limits(memory=1 << 20)).section
    r = _run(driver, "limit", _document(tmp_path, section), str(run))
    assert r.returncode == 1
    assert r.stdout == (f"failed: resources.memory asked but the memory controller is not "
                        f"available in {run}\n")
    assert (run / "memory.max").read_text() == ""  # nothing written


def test_v2_io_weight_without_its_controller_is_a_note(driver: str, tmp_path: Path) -> None:
    run = _v2_run_dir(tmp_path, controllers="cpu memory pids")
    section = plan(_v2(tmp_path), "r1", Limits(pids=8, io_weight=300)).section
    r = _run(driver, "limit", _document(tmp_path, section), str(run))
    assert r.stdout == "note: resources.io_weight: no io controller here; NOT applied\nok\n"
    assert (run / "pids.max").read_text() == "8" and (run / "io.weight").read_text() == ""


def test_v2_refused_value_names_the_file(driver: str, tmp_path: Path) -> None:
    run = _v2_run_dir(tmp_path)
    (run / "pids.max").unlink()
    section = plan(_v2(tmp_path), "r1", Limits(pids=5)).section
    r = _run(driver, "limit", _document(tmp_path, section), str(run))
    assert r.stdout == f"failed: {run}/pids.max: No such file or directory\n"


def _v1(tmp_path: Path, controllers: tuple[str, ...] = ("memory", "pids", "cpu", "cpuacct"),
        ) -> tuple[Hierarchy, list[str]]:
    dirs = []
    for c in controllers:
        (tmp_path / c).mkdir()
        dirs.append(str(tmp_path / c))
    return Hierarchy("v1", tuple((c, str(tmp_path / c), "/") for c in controllers)), dirs


def test_v1_swap_without_accounting_fails_as_planned(driver: str, tmp_path: Path) -> None:
    h, dirs = _v1(tmp_path)
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("")
    section = plan(h, "r", Limits(memory=1 << 20, swap=0)).section
    r = _run(driver, "limit", _document(tmp_path, section), *dirs)
    assert r.stdout == ("failed: resources.swap asked but swap accounting is off (no "
                        "memory.memsw.limit_in_bytes; boot with swapaccount=1)\n")


def test_v1_limits_go_to_their_controllers(driver: str, tmp_path: Path) -> None:
    h, dirs = _v1(tmp_path)
    for name in ("memory/memory.limit_in_bytes", "pids/pids.max", "cpu/cpu.cfs_period_us",
                 "cpu/cpu.cfs_quota_us"):
        (tmp_path / name).write_text("")
    section = plan(h, "r", Limits(memory=1 << 20, pids=9, cpu_quota_us=20000)).section
    r = _run(driver, "limit", _document(tmp_path, section), *dirs)
    assert r.stdout == "ok\n", r.stdout
    assert (tmp_path / "memory/memory.limit_in_bytes").read_text() == str(1 << 20)
    assert (tmp_path / "pids/pids.max").read_text() == "9"
    assert (tmp_path / "cpu/cpu.cfs_quota_us").read_text() == "20000"


def test_mkdir_below_never_leaves_the_base(driver: str, tmp_path: Path) -> None:
    """The attack of issue 13, against a directory standing for cgroupfs: `..` and a
    symlinked component are refused and nothing is made outside (or inside) the base."""
    base = tmp_path / "cgroupfs"
    base.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    r = _run(driver, "mkdir", str(base), "../outside/x", "0", "0")
    assert r.returncode == 1 and "is not a path below it" in r.stdout
    (base / "link").symlink_to(outside)
    for rel in ("a/b/../../link/x", "new/../link/x", "./link"):
        r = _run(driver, "mkdir", str(base), rel, "0", "0")
        assert r.returncode == 1 and "is not a path below it" in r.stdout, rel
    r = _run(driver, "mkdir", str(base), "link/x", "0", "0")
    assert r.returncode == 1 and "not a directory of the hierarchy" in r.stdout
    (base / "made").mkdir()
    (base / "made" / "link").symlink_to(outside)
    r = _run(driver, "mkdir", str(base), "made/link/x", "1", "0")
    assert r.returncode == 1 and "not a directory of the hierarchy" in r.stdout
    assert list(outside.iterdir()) == []
    assert sorted(os.listdir(base)) == ["link", "made"]
    r = _run(driver, "mkdir", str(base), "fresh/deeper/" + "x" * 300, "0", "0")
    assert r.returncode == 1
    assert not (base / "fresh").exists()  # what it made on the way is removed again


def test_mkdir_below_makes_parents_and_refuses_an_existing_leaf(driver: str,
                                                                tmp_path: Path) -> None:
    assert _run(driver, "mkdir", str(tmp_path), "a/b/c", "0", "0").stdout == "ok\n"
    assert (tmp_path / "a" / "b" / "c").is_dir()
    r = _run(driver, "mkdir", str(tmp_path), "a/b/c", "0", "0")  # someone else's cgroup
    assert r.stdout == f"failed: cannot create {tmp_path}/a/b/c: it exists already\n"
    assert _run(driver, "mkdir", str(tmp_path), "a/b/c", "1", "0").stdout == "ok\n"


def test_a_new_v1_cpuset_gets_its_parents_cpus_and_mems(driver: str, tmp_path: Path) -> None:
    (tmp_path / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset.mems").write_text("0\n")
    # a real cpuset directory is born with these files, empty: stand-ins made by the test
    # cannot appear by themselves, so the step must fail on the first one it writes
    r = _run(driver, "mkdir", str(tmp_path), "ctr", "0", "1")
    assert r.returncode == 1 and r.stdout.startswith(f"failed: {tmp_path}/ctr/cpuset.cpus: ")
    assert not (tmp_path / "ctr").exists()  # removed again
