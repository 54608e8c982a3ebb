"""Inside the lab's SELinux guest (Debian's reference policy, loaded permissive; each
proof sets enforcing around itself): `stockade run` installs the module stockade
compiled, the payload runs in the policy's type, and the type's rules hold. The root's
files are labelled here as a runtime labels them (chcon, podman's `:Z`): the root
itself is a bind mount, which the context= mount option cannot relabel."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import lsm_lab as lab

pytestmark = pytest.mark.skipif(not lab.env_ok(), reason="runs inside the LSM lab guest")

NAME = "lab-se"
TYPE = "lab_se_t"
LABEL = f"system_u:system_r:{TYPE}:s0"


@pytest.fixture(scope="module")
def pol(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab.policy(tmp_path_factory.mktemp("se"), NAME, f"selinux: {{type: {TYPE}}}",
                      exec_list=True)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, pol: Path) -> Path:
    """The rootfs, labelled after the module is installed (its types must exist)."""
    got = lab.run(lab.STOCKADE, "lsm", "load", "--policy", str(pol), timeout=1200)
    assert got.rc == 0 and "selinux module 'stockade_lab_se'" in got.out, got
    r = lab.rootfs(tmp_path_factory.mktemp("se-root") / "rootfs")
    (r / "secret2.txt").write_text(lab.SECRET + "\n")  # labelled as a denied path
    for args in (["-R", "-t", "stockade_container_file_t", str(r)],
                 ["-t", "lab_se_exec_file_t", str(r / "bin" / "busybox")],
                 ["-R", "-t", "lab_se_rw_file_t", str(r / "data")],
                 ["-t", "lab_se_deny_file_t", str(r / "secret2.txt")]):
        subprocess.run(["chcon", *args], check=True)
    return r


@pytest.fixture
def enforcing() -> Iterator[None]:
    subprocess.run(["setenforce", "1"], check=True)
    try:
        yield
    finally:
        subprocess.run(["setenforce", "0"], check=True)


def test_run_installs_the_module_and_the_payload_runs_in_the_type(
        pol: Path, root: Path, enforcing: None) -> None:
    from stockade.lsm import selinux

    got = lab.stockade_run(pol, root, "cat /proc/self/attr/current")
    assert (got.rc, got.out.strip().rstrip("\0")) == (0, LABEL), got
    # installed once (by the fixture's `stockade lsm load`): this run found it current
    assert selinux.module_installed("stockade_lab_se")
    status = lab.run(lab.STOCKADE, "lsm", "status", "--policy", str(pol))
    assert "selinux module 'stockade_lab_se': current" in status.out, status


def test_denied_type_is_refused_by_selinux(pol: Path, root: Path) -> None:
    mark = lab.kmsg_mark()
    subprocess.run(["setenforce", "1"], check=True)
    try:
        got = lab.stockade_run(pol, root, "cat /secret2.txt")
    finally:
        subprocess.run(["setenforce", "0"], check=True)
    assert got.rc != 0 and "Permission denied" in got.err, got
    assert lab.wait_for_log(mark, "avc:  denied", f"scontext={LABEL}",
                            "lab_se_deny_file_t"), lab.kernel_log(mark)
    # permissive: the same read succeeds, only the AVC is logged
    soft = lab.stockade_run(pol, root, "cat /secret2.txt")
    assert soft.out.strip() == lab.SECRET, soft


def test_writable_written_read_only_refused(pol: Path, root: Path, enforcing: None) -> None:
    got = lab.stockade_run(pol, root, "echo hi > /data/w && echo wrote; "
                           "echo hi > /etc/w || echo refused")
    assert got.out.split() == ["wrote", "refused"], got


def test_exec_rules_hold(pol: Path, root: Path, enforcing: None) -> None:
    mark = lab.kmsg_mark()
    got = lab.stockade_run(pol, root, "/bin/busybox true && echo listed-ok; "
                           "/opt/other || echo other-refused")
    assert got.out.split() == ["listed-ok", "other-refused"], got
    assert lab.wait_for_log(mark, "avc:  denied", f"scontext={LABEL}", "/opt/other") or \
        lab.wait_for_log(mark, "avc:  denied", f"scontext={LABEL}", 'name="other"')


def test_runc_with_the_same_label_is_confined_the_same_way(
        pol: Path, root: Path, tmp_path: Path, enforcing: None) -> None:
    bundle = lab.runc_bundle(tmp_path / "b", root, [
        "/bin/sh", "-c", "cat /proc/self/attr/current; echo; cat /secret2.txt || "
        "echo secret-refused; echo r > /data/runc && echo wrote"], selinuxLabel=LABEL)
    got = lab.runc_run(bundle, "lab-se-runc")
    assert [w.rstrip("\0") for w in got.out.split()[:1]] == [LABEL], got
    assert {"secret-refused", "wrote"} <= set(got.out.split()), got


def test_audit_reports_selinux_weak(pol: Path, root: Path, tmp_path: Path) -> None:
    cid = "lab-se-audit"
    bundle = lab.runc_bundle(tmp_path / cid, root, ["/bin/sleep", "600"], selinuxLabel=LABEL)
    subprocess.run(["runc", "run", "-d", "--bundle", str(bundle), cid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=300)
    try:
        permissive = lab.audit_status(["--runc", cid], "SELINUX-WEAK")
        subprocess.run(["setenforce", "1"], check=True)
        try:
            confined = lab.audit_status(["--runc", cid], "SELINUX-WEAK")
        finally:
            subprocess.run(["setenforce", "0"], check=True)
    finally:
        subprocess.run(["runc", "delete", "-f", cid], capture_output=True, check=False)
    assert confined == "absent", confined
    assert permissive.startswith("present"), permissive


def test_tmpfs_mounts_carry_the_writable_type(pol: Path, root: Path, enforcing: None) -> None:
    # the runner mounts the policy's tmpfs paths with context=: the type may write there
    got = lab.stockade_run(pol, root, "grep ' /tmp ' /proc/self/mountinfo; "
                           "echo t > /tmp/f && cat /tmp/f")
    lines = got.out.splitlines()
    assert got.rc == 0 and "lab_se_rw_file_t" in lines[0] and lines[-1] == "t", got


def test_required_module_that_fails_to_install_never_runs(root: Path, tmp_path: Path) -> None:
    from stockade.lsm import selinux

    pol = lab.policy(tmp_path, "lab-se-broken", "selinux: {type: lab_se_broken_t}")
    before = lab.no_leftovers()
    got = lab.run_with_failing_tool(pol, root, "semodule", "Failed! injected", tmp_path)
    assert got.rc == 115, got
    assert "step 'lsm' failed" in got.err and "injected" in got.err, got.err
    assert not (root / "data" / "broken-ran").exists()
    assert not selinux.module_installed("stockade_lab_se_broken")
    assert lab.no_leftovers() == before
