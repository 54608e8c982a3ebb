"""Inside the lab's AppArmor guest: what `stockade compile` writes for AppArmor really
confines a process, loaded by `stockade run` itself, and the same profile confines a
runc container. Each proof shows the refusal comes from AppArmor: the kernel's
apparmor="DENIED" line, or the same action allowed under the complain-mode twin."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.lab import lsm_lab as lab

pytestmark = pytest.mark.skipif(not lab.env_ok(), reason="runs inside the LSM lab guest")

NAME = "lab-aa"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab.rootfs(tmp_path_factory.mktemp("aa") / "rootfs")


@pytest.fixture(scope="module")
def enforce(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab.policy(tmp_path_factory.mktemp("aa-enforce"), NAME,
                      "apparmor: {mode: enforce}")


@pytest.fixture(scope="module")
def complain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab.policy(tmp_path_factory.mktemp("aa-complain"), NAME + "-complain",
                      "apparmor: {mode: complain}")


def test_run_loads_the_profile_and_the_payload_runs_in_it(root: Path, tmp_path: Path) -> None:
    from stockade.lsm import apparmor

    apparmor.unload(NAME)
    # the case: Landlock required too; it used to refuse the exec-label write
    # (step 'lsm' failed: cannot open thread-self/attr/exec: Permission denied, 115)
    pol = lab.policy(tmp_path, NAME, "apparmor: {mode: enforce}", landlock="required")
    got = lab.stockade_run(pol, root, "cat /proc/self/attr/apparmor/current")
    assert (got.rc, got.out.strip()) == (0, f"{NAME} (enforce)"), got
    held = apparmor.kernel_profile(NAME)
    assert held is not None and held.mode == "enforce"
    # a second run finds it current: the kernel's copy is not replaced
    again = lab.stockade_run(pol, root, "cat /proc/self/attr/apparmor/current")
    assert again.out.strip() == f"{NAME} (enforce)"
    assert apparmor.kernel_profile(NAME) == held
    # the policy changes: the profile is replaced (the kernel's fingerprint changes)
    pol.write_text(pol.read_text().replace("writable: [/data]", "writable: [/data, /opt]"))
    changed = lab.stockade_run(pol, root, "cat /proc/self/attr/apparmor/current")
    assert changed.rc == 0, changed
    replaced = apparmor.kernel_profile(NAME)
    assert replaced is not None and replaced.fingerprint != held.fingerprint


def test_denied_path_is_refused_by_apparmor(root: Path, enforce: Path) -> None:
    # /secret.txt is world-readable and Landlock is off: the refusal is AppArmor's, and
    # the kernel says so (the policy's deny rules are `audit deny`: logged)
    mark = lab.kmsg_mark()
    got = lab.stockade_run(enforce, root, "cat /secret.txt")
    assert got.rc != 0 and "Permission denied" in got.err, got
    denied = lab.wait_for_log(mark, 'apparmor="DENIED"', f'profile="{NAME}"', 'name="/secret.txt"')
    assert denied, lab.kernel_log(mark)


def test_writable_path_written_read_only_refused(root: Path, enforce: Path) -> None:
    got = lab.stockade_run(enforce, root, "echo hi > /data/w && echo wrote; "
                           "echo hi > /etc/w || echo refused")
    assert got.rc == 0 and got.out.split() == ["wrote", "refused"], got
    assert (root / "data" / "w").read_text() == "hi\n"


def test_exec_rules_hold(root: Path, enforce: Path, complain: Path) -> None:
    mark = lab.kmsg_mark()
    got = lab.stockade_run(enforce, root, "/bin/busybox true && echo listed-ok; "
                           "/opt/other || echo other-refused")
    assert got.out.split() == ["listed-ok", "other-refused"], got
    assert lab.wait_for_log(mark, 'apparmor="DENIED"', 'operation="exec"', 'name="/opt/other"')
    # the complain-mode twin (same policy otherwise): AppArmor only logs, the script runs
    mark = lab.kmsg_mark()
    soft = lab.stockade_run(complain, root, "/opt/other")
    assert soft.out.split() == ["other-ran"], soft
    assert lab.wait_for_log(mark, 'apparmor="ALLOWED"', 'operation="exec"', 'name="/opt/other"')


def test_runc_with_the_same_profile_is_confined_the_same_way(root: Path, enforce: Path,
                                                           tmp_path: Path) -> None:
    lab.stockade_run(enforce, root, "true")  # loads lab-aa (current after the tests above)
    bundle = lab.runc_bundle(tmp_path / "b", root, [
        "/bin/sh", "-c", "cat /proc/self/attr/current; cat /secret.txt || echo secret-refused; "
        "echo r > /data/runc && echo wrote; /opt/other || echo other-refused"],
        apparmorProfile=NAME)
    mark = lab.kmsg_mark()
    got = lab.runc_run(bundle, "lab-aa-runc")
    assert got.out.split("\n")[0] == f"{NAME} (enforce)", got
    assert {"secret-refused", "wrote", "other-refused"} <= set(got.out.split()), got
    assert lab.wait_for_log(mark, 'apparmor="DENIED"', 'name="/secret.txt"')


def test_audit_reports_confined_and_unconfined_runc_containers(root: Path, enforce: Path,
                                                              tmp_path: Path) -> None:
    lab.stockade_run(enforce, root, "true")
    statuses = {}
    for cid, extra in (("lab-aa-confined", {"apparmorProfile": NAME}), ("lab-aa-open", {})):
        bundle = lab.runc_bundle(tmp_path / cid, root, ["/bin/sleep", "600"], **extra)
        subprocess.run(["runc", "run", "-d", "--bundle", str(bundle), cid], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=300)
        try:
            statuses[cid] = lab.audit_status(["--runc", cid], "APPARMOR-UNCONFINED")
        finally:
            subprocess.run(["runc", "delete", "-f", cid], capture_output=True, check=False)
    assert statuses["lab-aa-confined"] == "absent", statuses
    assert statuses["lab-aa-open"].startswith("present"), statuses


def test_required_profile_that_fails_to_load_never_runs(root: Path, tmp_path: Path) -> None:
    from stockade.lsm import apparmor

    name = "lab-aa-broken"
    apparmor.unload(name)
    pol = lab.policy(tmp_path, name, "apparmor: {mode: enforce}")
    before = lab.no_leftovers()
    got = lab.run_with_failing_tool(pol, root, "apparmor_parser",
                                    "AppArmor parser error: injected", tmp_path)
    assert got.rc == 115, got
    assert "step 'lsm' failed" in got.err and "injected" in got.err, got.err
    assert not (root / "data" / "broken-ran").exists()
    assert apparmor.kernel_profile(name) is None
    assert lab.no_leftovers() == before


def test_lsm_command_loads_shows_and_unloads(enforce: Path) -> None:
    from stockade.lsm import apparmor

    apparmor.unload(NAME)
    status = lab.run(lab.STOCKADE, "lsm", "status", "--policy", str(enforce))
    assert f"apparmor profile '{NAME}': not loaded" in status.out, status
    load = lab.run(lab.STOCKADE, "lsm", "load", "--policy", str(enforce))
    assert f"apparmor profile '{NAME}': loaded" in load.out, load
    status = lab.run(lab.STOCKADE, "lsm", "status", "--policy", str(enforce))
    assert f"apparmor profile '{NAME}': loaded (enforce), current" in status.out, status
    unload = lab.run(lab.STOCKADE, "lsm", "unload", "--policy", str(enforce))
    assert f"apparmor profile '{NAME}': removed" in unload.out, unload
    assert apparmor.kernel_profile(NAME) is None


def test_oci_run_with_policy_loads_the_profile(root: Path, enforce: Path, tmp_path: Path) -> None:
    from stockade.lsm import apparmor

    apparmor.unload(NAME)
    bundle = lab.runc_bundle(tmp_path / "b", root, [
        "/bin/sh", "-c", "cat /proc/self/attr/apparmor/current; cat /secret.txt || echo refused"])
    got = lab.run(lab.STOCKADE, "oci", "--root", str(tmp_path / "state"), "run", "--bundle",
                  str(bundle), "--policy", str(enforce), "lab-aa-oci")
    assert got.out.split("\n")[0] == f"{NAME} (enforce)", got
    assert "refused" in got.out.split(), got
    assert apparmor.kernel_profile(NAME) is not None
