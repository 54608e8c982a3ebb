"""Fault injection: each step fails in turn; the payload never runs, nothing is left.

The payload would create a marker file in a writable bind; every case checks that the
marker does not exist, that the error names the step with its exit code, and (through
`leak_check`) that no cgroup, mount, fd or zombie is left behind. Real failures are used
where the kernel can be made to refuse; the rest inject a fault (`inject_fault`) through
the tests' own build of the executor (STOCKADE_TEST_FAULT); production code holds no
fault switch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest

import stockade
from stockade.errors import RunnerError, StockadeError
from stockade.policy.model import AppArmor, IdMapping, Lsm, Policy, User
from stockade.runner.codes import EXIT_CODES
from tests.conftest import require_root

pytestmark = pytest.mark.root
ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


def attempt(outdir: Path, policy: Policy | str = "default", **kw: object) -> RunnerError:
    marker = outdir / "ran"
    with pytest.raises(RunnerError) as exc:
        stockade.run(["/bin/sh", "-c", "touch /mnt/ran"], policy=policy, env=ENV,
                     binds=[*kw.pop("binds", []), f"{outdir}:/mnt"], **kw)  # type: ignore[arg-type]
    assert not marker.exists(), "the payload ran"
    assert exc.value.exit_code == EXIT_CODES[exc.value.step]
    assert f"step '{exc.value.step}'" in exc.value.message
    return exc.value


def test_marker_is_created_when_nothing_fails(outdir: Path, leak_check: None) -> None:
    res = stockade.run(["/bin/sh", "-c", "touch /mnt/ran"], env=ENV, binds=[f"{outdir}:/mnt"])
    assert res.exit_code == 0 and (outdir / "ran").exists()


INJECTED = "fault injected (test)"


@pytest.fixture
def faulty_executor(executor_test_build: str) -> str:
    """The tests' build of the executor: STOCKADE_TEST_FAULT=STEP fails STEP where it
    starts (the production build reads no such switch)."""
    return executor_test_build


def inject_fault(monkeypatch: pytest.MonkeyPatch, step: str, faulty_executor: str) -> None:
    """Make `step` fail at its first point, as a real failure there would: in the tests'
    build of the executor (STOCKADE_TEST_FAULT), which takes every step here, the cgroups
    and the (direct) id maps included."""
    from stockade.executor import spawn

    monkeypatch.setattr(spawn, "_found", [faulty_executor])
    monkeypatch.setenv("STOCKADE_TEST_FAULT", step)


@pytest.mark.parametrize("step", ["cgroups", "idmap", "namespaces", "rootfs", "rlimits", "lsm",
                                  "capabilities", "no_new_privs", "landlock", "hygiene",
                                  "seccomp", "exec"])
def test_injected_fault(step: str, outdir: Path, monkeypatch: pytest.MonkeyPatch,
                        leak_check: None, faulty_executor: str) -> None:
    inject_fault(monkeypatch, step, faulty_executor)
    err = attempt(outdir)
    assert err.step == step and INJECTED in err.message


def test_missing_rootfs(outdir: Path, leak_check: None) -> None:
    err = attempt(outdir, rootfs=str(outdir / "nope"))
    assert err.step == "preflight" and "No such file" in err.message
    (outdir / "file").write_text("")
    err = attempt(outdir, rootfs=str(outdir / "file"))
    assert err.step == "preflight" and "not a directory" in err.message


def test_missing_bind_source(outdir: Path, leak_check: None) -> None:
    err = attempt(outdir, binds=[f"{outdir}/missing:/mnt"])
    assert err.step == "preflight" and "does not exist" in err.message


def test_bad_map_refused_by_kernel(default_policy: Policy, outdir: Path, leak_check: None) -> None:
    overlapping = (IdMapping(0, 3_000_000_000, 10), IdMapping(5, 3_100_000_000, 10))
    pol = dataclasses.replace(default_policy, digest=default_policy.digest + "-badmap",
                              user=User(0, 0, "explicit", overlapping, overlapping))
    assert attempt(outdir, pol).step == "idmap"


def test_cgroup_not_writable(outdir: Path, monkeypatch: pytest.MonkeyPatch,
                             leak_check: None) -> None:
    from stockade.runner import launcher
    from stockade.runner.cgroups import Hierarchy

    fake = Hierarchy("v1", tuple((c, "/proc/sys", "/") for c in ("memory", "pids", "cpu",
                                                                "cpuacct")))
    monkeypatch.setattr(launcher, "detect_cached", lambda refresh=False: fake)
    err = attempt(outdir)
    assert err.step == "cgroups" and "/proc/sys" in err.message


def test_mountpoint_missing_in_readonly_host_root(outdir: Path, leak_check: None) -> None:
    # `--rootfs /`: the host's read-only tree (the default jail makes its mountpoints)
    err = attempt(outdir, binds=[f"{outdir}:/no/such/dir"], rootfs="/")
    assert err.step == "rootfs"


def test_seccomp_load_error(outdir: Path, leak_check: None) -> None:
    bad = bytes([0x05, 0, 0, 0, 100, 0, 0, 0])  # BPF_JA +100: jumps out of the program
    err = attempt(outdir, seccomp_bpf=bad)
    assert err.step == "seccomp"


def test_rlimit_above_hard_limit(default_policy: Policy, outdir: Path, leak_check: None) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    pol = dataclasses.replace(default_policy, digest=default_policy.digest + "-rl",
                              rlimits=MappingProxyType({"nofile": hard + 1}))
    assert attempt(outdir, pol).step == "rlimits"


def test_lsm_required_but_absent(default_policy: Policy, outdir: Path, leak_check: None) -> None:
    from stockade.linux.host import active_lsms

    if "apparmor" in active_lsms():
        pytest.skip("AppArmor is active on this host")
    pol = dataclasses.replace(default_policy, digest=default_policy.digest + "-aa",
                              lsm=Lsm(apparmor=AppArmor("enforce"), required=True))
    assert attempt(outdir, pol).step == "lsm"


def test_policy_that_does_not_load(tmp_path: Path, outdir: Path, leak_check: None) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stockade: 1\nname: Bad Name\n")
    with pytest.raises(StockadeError) as exc:
        stockade.run(["/bin/sh", "-c", "touch /mnt/ran"], policy=str(bad), env=ENV,
                     binds=[f"{outdir}:/mnt"])
    assert exc.value.exit_code == 2
    assert not (outdir / "ran").exists()


def test_cpu_below_kernel_minimum(default_policy: Policy, outdir: Path, leak_check: None) -> None:
    from stockade.policy.model import Resources

    pol = dataclasses.replace(default_policy, digest=default_policy.digest + "-cpu",
                              resources=Resources(cpu=0.001))  # 100 us quota < 1 ms minimum
    err = attempt(outdir, pol)
    assert err.step == "cgroups" and "cfs_quota_us" in err.message


def test_no_cgroup_needed_without_resources(default_policy: Policy, outdir: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            leak_check: None) -> None:
    """Without resources the cgroup only serves the report: its absence is a note."""
    from stockade.runner import launcher
    from stockade.runner.cgroups import Hierarchy
    from tests.integration.runner.conftest import no_resources

    fake = Hierarchy("v1", tuple((c, "/proc/sys", "/") for c in ("memory", "pids", "cpu",
                                                                "cpuacct")))
    monkeypatch.setattr(launcher, "detect_cached", lambda refresh=False: fake)
    res = stockade.run(["/bin/sh", "-c", "touch /mnt/ran"], policy=no_resources(default_policy),
                       env=ENV, binds=[f"{outdir}:/mnt"])
    assert res.exit_code == 0 and (outdir / "ran").exists()
    assert res.cgroup == "none" and any("no cgroup" in n for n in res.notes)
    assert res.cpu_time_ns is not None  # from rusage
