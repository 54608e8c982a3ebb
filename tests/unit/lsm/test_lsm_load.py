"""The runner's LSM loading, on a host without an active LSM: a stand-in securityfs and
apparmor_parser (the real ones are exercised in the lab, tests/lab)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stockade.errors import RunnerError
from stockade.linux import host
from stockade.lsm import apparmor, load, stamps, verify
from stockade.runner.plan import LsmPlan

PARSER = """#!/bin/sh
# stand-in apparmor_parser: record the call, "load" the profile into the fake securityfs
cat > "{fs}/last-profile"
echo call >> "{fs}/calls"
d="{fs}/policy/profiles/{name}.1"
mkdir -p "$d"
printf '{name}\\n' > "$d/name"
printf 'enforce\\n' > "$d/mode"
sha1sum "{fs}/last-profile" | cut -d' ' -f1 > "$d/sha1"
"""


@pytest.fixture
def fake_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fs = tmp_path / "securityfs"
    (fs / "policy" / "profiles").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    parser = bin_dir / "apparmor_parser"
    parser.write_text(PARSER.format(fs=fs, name="web"))
    parser.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    monkeypatch.setenv("STOCKADE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(apparmor, "SECURITYFS", str(fs))
    monkeypatch.setattr(host, "active_lsms", lambda: ("lockdown", "apparmor"))
    return fs


def _calls(fs: Path) -> int:
    path = fs / "calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_profile_loaded_once_then_served_from_the_digest(fake_kernel: Path) -> None:
    assert apparmor.kernel_profile("web") is None
    assert apparmor.ensure_loaded("web", "profile web {}\n", "d1") is True
    held = apparmor.kernel_profile("web")
    assert held is not None and held.mode == "enforce" and held.fingerprint
    assert (fake_kernel / "last-profile").read_text() == "profile web {}\n"
    # same text: the kernel's copy is current, apparmor_parser is not run again
    assert apparmor.ensure_loaded("web", "profile web {}\n", "d1") is False
    assert _calls(fake_kernel) == 1
    # the policy changed: a new digest replaces it
    assert apparmor.ensure_loaded("web", "profile web { # v2\n}\n", "d2") is True
    assert _calls(fake_kernel) == 2


def test_profile_replaced_behind_our_back_is_loaded_again(fake_kernel: Path) -> None:
    apparmor.ensure_loaded("web", "profile web {}\n", "d1")
    # another tool replaced it: the kernel's fingerprint no longer matches the stamp
    (fake_kernel / "policy" / "profiles" / "web.1" / "sha1").write_text("0" * 40 + "\n")
    assert apparmor.is_current("web", "d1") is False
    assert apparmor.ensure_loaded("web", "profile web {}\n", "d1") is True


def test_a_profile_that_fails_to_load_stops_the_run_with_step_lsm(
        fake_kernel: Path, tmp_path: Path) -> None:
    parser = tmp_path / "bin" / "apparmor_parser"
    parser.write_text("#!/bin/sh\necho 'AppArmor parser error at line 3: bad rule' >&2\nexit 1\n")
    plan = LsmPlan(apparmor_profile="web", required=True, apparmor_mode="enforce",
                   apparmor_text="profile web {", apparmor_digest="d1")
    with pytest.raises(RunnerError) as err:
        load.prepare(plan)
    assert err.value.step == "lsm" and err.value.exit_code == 115
    assert "bad rule" in err.value.message
    assert apparmor.kernel_profile("web") is None
    assert stamps.read("apparmor", "web") is None


def test_inactive_apparmor_is_refused_with_the_reason(
        fake_kernel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "active_lsms", lambda: ("lockdown", "landlock"))
    with pytest.raises(apparmor.AppArmorLoadError, match="not active"):
        apparmor.ensure_loaded("web", "profile web {}\n", "d1")
    assert _calls(fake_kernel) == 0


def test_unmounted_securityfs_is_refused_with_the_reason(
        fake_kernel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Active but without securityfs (a container that did not mount it): apparmor_parser
    could not load anything, so the loader says so instead of running it."""
    monkeypatch.setattr(apparmor, "SECURITYFS", str(tmp_path / "not-mounted"))
    with pytest.raises(apparmor.AppArmorLoadError, match="securityfs interface is not mounted"):
        apparmor.ensure_loaded("web", "profile web {}\n", "d1")
    assert _calls(fake_kernel) == 0


def test_unload_removes_the_stamp_and_writes_the_name(fake_kernel: Path) -> None:
    apparmor.ensure_loaded("web", "profile web {}\n", "d1")
    assert apparmor.unload("web") is True
    assert (fake_kernel / ".remove").read_text() == "web"
    assert stamps.read("apparmor", "web") is None


def test_payload_in_the_wrong_profile_is_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = LsmPlan(apparmor_profile="web", required=True, apparmor_mode="enforce")
    monkeypatch.setattr(apparmor, "task_label", lambda pid: "unconfined")
    assert verify.mismatch(plan, os.getpid()) == (
        "the payload runs as AppArmor 'unconfined', not 'web (enforce)'")
    monkeypatch.setattr(apparmor, "task_label", lambda pid: "web (enforce)")
    assert verify.mismatch(plan, os.getpid()) is None


def test_payload_label_unreadable_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(pid: int) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(apparmor, "task_label", refused)
    plan = LsmPlan(apparmor_profile="web", required=True)
    assert verify.mismatch(plan, os.getpid()) == "cannot read the payload's label: Permission denied"


def test_a_payload_already_gone_is_not_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(pid: int) -> str:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(apparmor, "task_label", gone)
    assert verify.mismatch(LsmPlan(apparmor_profile="web", required=True), 1) is None


def test_init_child_is_the_payload(tmp_path: Path) -> None:
    # without an init the sandbox's process is the payload itself
    assert verify.payload_pid(12345, has_init=False) == 12345
    # a pid with no such process: nothing left to check
    assert verify.payload_pid(2**22 + 1, has_init=True) is None
