"""An engine using stockade as its OCI runtime: podman --runtime <stockade wrapper>."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.integration.oci.conftest import STOCKADE


def test_podman_runs_through_stockade(tmp_path: Path, shared_rootfs: Path) -> None:
    require_root()
    require_tool("podman")
    wrapper = tmp_path / "stockade-runtime"
    log = tmp_path / "calls.log"
    subprocess.run([*STOCKADE, "wrapper", str(wrapper)], check=True)
    # Record the calls podman makes, then hand over to the generated wrapper.
    spy = tmp_path / "spy"
    spy.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {wrapper} "$@"\n')
    spy.chmod(0o755)
    tar = tmp_path / "bb.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(shared_rootfs, arcname=".")
    import tempfile

    # podman refuses a runroot longer than 50 characters (pytest's tmp paths are).
    runroot = Path(tempfile.mkdtemp(prefix="sk-pod-", dir="/tmp"))
    # podman uses the runtime's default --root: the plans stored there for its
    # containers (oci/fastplan.py) are removed afterwards.
    plans = Path("/run/stockade-oci/.fast")
    before = set(plans.iterdir()) if plans.exists() else set()
    podman = ["podman", "--root", str(tmp_path / "storage"), "--runroot", str(runroot), "--cgroup-manager", "cgroupfs", "--events-backend",
              "file", "--storage-driver", "vfs"]
    imp = subprocess.run([*podman, "import", str(tar), "localhost/stockade-bb:latest"],
                         capture_output=True, text=True, timeout=120)
    if imp.returncode != 0:
        pytest.skip(f"podman cannot import an image here: {imp.stderr.strip()}")
    try:
        # This host's hard RLIMIT_NOFILE is below podman's default 1048576 and the
        # bounding set lacks CAP_SYS_RESOURCE: runc fails the same way without --ulimit.
        run = subprocess.run(
            [*podman, "--runtime", str(spy), "run", "--rm", "--network", "none",
             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
             "localhost/stockade-bb:latest", "sh", "-c",
             "echo hello from stockade; grep NoNewPrivs /proc/self/status; exit 3"],
            capture_output=True, text=True, timeout=120)
        calls = log.read_text().splitlines() if log.exists() else []
        if run.returncode not in (3,) and not calls:
            pytest.skip(f"podman cannot run a container here: {run.stderr.strip()}")
        assert run.returncode == 3, run.stderr
        assert "hello from stockade" in run.stdout
        verbs = [c.split()[0] for c in calls]
        assert "create" in verbs and "start" in verbs, calls
        # podman exec (conmon: exec --process FILE --detach --pid-file), with and
        # without a terminal (--tty --console-socket)
        name = f"sk-{tmp_path.name[-12:]}"
        up = subprocess.run(
            [*podman, "--runtime", str(spy), "run", "-d", "--name", name, "--network", "none",
             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
             "localhost/stockade-bb:latest", "sh", "-c", "while :; do sleep 0.1; done"],
            capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        try:
            ex = subprocess.run([*podman, "--runtime", str(spy), "exec", name, "sh", "-c",
                                 "echo in-exec; exit 4"],
                                capture_output=True, text=True, timeout=60)
            assert ex.returncode == 4 and ex.stdout == "in-exec\n", ex.stderr
            ex = subprocess.run([*podman, "--runtime", str(spy), "exec", "-t", name, "tty"],
                                capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
            assert ex.returncode == 0 and ex.stdout.startswith("/dev/pts/"), ex.stderr
        finally:
            subprocess.run([*podman, "--runtime", str(spy), "rm", "-f", name],
                           capture_output=True, timeout=60)
        calls = log.read_text().splitlines()
        assert any(c.startswith("exec ") and "--process" in c and "--tty" in c for c in calls)
    finally:
        subprocess.run([*podman, "rmi", "-f", "localhost/stockade-bb:latest"],
                       capture_output=True, timeout=60)
        shutil.rmtree(tmp_path / "storage", ignore_errors=True)
        shutil.rmtree(runroot, ignore_errors=True)
        for entry in (set(plans.iterdir()) if plans.exists() else set()) - before:
            entry.unlink(missing_ok=True)
        # podman's cgroupfs manager leaves its conmon cgroup behind: remove it if empty.
        for ctl in Path("/sys/fs/cgroup").iterdir():
            for d in (ctl / "libpod_parent" / "conmon", ctl / "libpod_parent"):
                with contextlib.suppress(OSError):
                    d.rmdir()
