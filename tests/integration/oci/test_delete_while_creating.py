"""`delete --force` of a container whose create is still in progress (status creating).

As runc: the container is killed and its resources removed; the create in progress
fails. Here the creator itself is ended too, and it says so in one line (before: the
delete removed the state, and the create then reported success for a container that no
longer existed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.oci import conftest
from tests.integration.oci.conftest import Bundles, leftovers, oci, stopped

MESSAGE = "was deleted while being created"


def _procs_of(cid: str) -> list[str]:
    """Processes whose command line names this container (the creator) or that run the
    test's hook (a sleep with a marker argument)."""
    r = subprocess.run(["pgrep", "-af", cid], capture_output=True, text=True, check=False)
    return [line for line in r.stdout.splitlines() if str(os.getpid()) != line.split()[0]]


def _marker() -> str:
    """An extra duration for the hook's sleep (sleep sums them) that names it for pgrep."""
    return f"0.{uuid.uuid4().int % 10**9:09d}"


def _creating(bundles: Bundles, marker: str) -> Path:
    """A bundle whose createRuntime hook sleeps (hooks force the Python create path)."""
    cfg = bundles.config()
    cfg["process"]["args"] = ["sleep", "30"]
    # long enough that the delete lands while it runs, however loaded the machine: the
    # create ends (and kills it) as soon as the delete comes
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "20", marker]}]}
    return bundles.make(cfg)


def _start_create(root: Path, bundle: Path, cid: str,
                  pause_at: str | None = None) -> subprocess.Popen[str]:
    """pause_at: the create stops itself (SIGSTOP) there (tests/support/hooks.py)."""
    runtime = conftest.STOCKADE_HOOKED if pause_at else conftest.STOCKADE
    env = {**os.environ, "STOCKADE_TEST_PAUSE": pause_at} if pause_at else None
    return subprocess.Popen([*runtime, "--root", str(root / "stockade"), "create",
                             "--bundle", str(bundle), cid],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def _waitstopped(proc: subprocess.Popen[str], point: str) -> None:
    deadline = time.monotonic() + 20
    while not stopped(proc.pid):
        assert proc.poll() is None, (point, proc.returncode, proc.communicate()[1])
        assert time.monotonic() < deadline, f"create never reached {point}"
        time.sleep(0.01)


def _wait_status(root: Path, cid: str, want: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while want not in oci(root, "state", cid).stdout:
        assert proc.poll() is None, (proc.returncode, proc.communicate()[1])
        assert time.monotonic() < deadline, f"{cid} never became {want}"
        time.sleep(0.02)


def _cgroups_named(cid: str) -> list[str]:
    """Cgroup directories named for this container in every hierarchy (v1 and v2)."""
    found = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(dirpath) == cid:
            found.append(dirpath)
        if dirpath.count("/") > 9:
            dirnames.clear()
    return found


def _assert_gone(root: Path, cid: str, proc: subprocess.Popen[str], marker: str) -> None:
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0, "the create reported success for a deleted container"
    assert err.count("\n") == 1 and MESSAGE in err and "Traceback" not in err, err
    assert not (root / "stockade" / cid).exists()
    assert not leftovers(cid) and not _cgroups_named(cid)
    assert not _procs_of(cid) and not _procs_of(marker)


@pytest.mark.parametrize("delete_with", ["python", "frontend"])
def test_delete_force_during_create_hooks(delete_with: str, bundles: Bundles,
                                          oci_root: Path, request: pytest.FixtureRequest) -> None:
    """The reproduction: delete -f while a createRuntime hook runs."""
    marker = _marker()
    cid = f"dc-{uuid.uuid4().hex[:8]}"
    proc = _start_create(oci_root, _creating(bundles, marker), cid)
    _wait_status(oci_root, cid, "creating", proc)
    while not _procs_of(marker):  # the hook runs: the container's process exists
        assert proc.poll() is None
        time.sleep(0.02)
    deleter = ([request.getfixturevalue("frontend_bin")] if delete_with == "frontend"
               else conftest.STOCKADE)
    r = subprocess.run([*deleter, "--root", str(oci_root / "stockade"), "delete", "-f", cid],
                       capture_output=True, text=True, check=False, timeout=30)
    assert r.returncode == 0, r.stderr
    _assert_gone(oci_root, cid, proc, marker)


@pytest.mark.parametrize("point", ["planned", "cgroups"])
def test_delete_force_in_a_cgroup_window(point: str, bundles: Bundles, oci_root: Path) -> None:
    """The create stopped (SIGSTOP) right after writing its planned cgroups, or after
    making and recording them, no process yet: delete -f ends it, and nothing is left."""
    marker = _marker()
    cid = f"dw-{point}-{uuid.uuid4().hex[:6]}"
    proc = _start_create(oci_root, _creating(bundles, marker), cid, point)
    _waitstopped(proc, point)
    if point == "cgroups":
        assert _cgroups_named(cid)  # made, and the state records them
    assert "creating" in oci(oci_root, "state", cid).stdout
    r = oci(oci_root, "delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    _assert_gone(oci_root, cid, proc, marker)


def test_create_ends_if_its_directory_goes_before_its_first_write(
        bundles: Bundles, oci_root: Path) -> None:
    """Between mkdir and the first state write there is no state to name the creator:
    delete -f removes the directory, and the create must not write a new one."""
    marker = _marker()
    cid = f"dm-{uuid.uuid4().hex[:8]}"
    proc = _start_create(oci_root, _creating(bundles, marker), cid, "mkdir")
    _waitstopped(proc, "mkdir")
    assert oci(oci_root, "delete", "--force", cid).returncode == 0
    assert not (oci_root / "stockade" / cid).exists()
    proc.send_signal(signal.SIGCONT)
    _assert_gone(oci_root, cid, proc, marker)


def test_delete_force_ends_a_front_end_create(frontend_bin: str, bundles: Bundles,
                                              oci_root: Path) -> None:
    """The compiled front end's own create (a stored plan, no interpreter), stopped right
    after its state says which cgroups it is about to make: it records its start time, so
    delete -f ends it too (a signal: no interpreter to print a line), and nothing is left."""
    cfg = bundles.config()
    cfg["process"]["args"] = ["sleep", "30"]
    bundle = bundles.make(cfg)
    root = str(oci_root / "stockade")
    cid = f"df-{uuid.uuid4().hex[:8]}"
    for verb in ("create", "delete"):  # the first create stores the plan for this bundle
        args = ["--bundle", str(bundle), f"{cid}-0"] if verb == "create" else ["-f", f"{cid}-0"]
        subprocess.run([frontend_bin, "--root", root, verb, *args], check=True, timeout=60,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # the container holds its stdio
    env = {**os.environ, "STOCKADE_TEST_PAUSE": "planned", "STOCKADE_FAST": "require"}
    proc = subprocess.Popen([frontend_bin, "--root", root, "create", "--bundle", str(bundle),
                             cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    _waitstopped(proc, "planned")
    state = oci(oci_root, "state", cid).stdout
    assert "creating" in state, state
    r = subprocess.run([frontend_bin, "--root", root, "delete", "-f", cid],
                       capture_output=True, text=True, check=False, timeout=30)
    assert r.returncode == 0, r.stderr
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM, proc.returncode
    assert not (oci_root / "stockade" / cid).exists()
    assert not leftovers(cid) and not _cgroups_named(cid) and not _procs_of(cid)
