"""The compiled front end (oci/frontend.c): start, kill and delete on their common path
without Python, everything else handed to `stockade oci`, with no effect before that.

To prove which path ran, the front end here falls back to /bin/false: a verb it handled
itself succeeds; a verb it handed over fails with false's status 1 and changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from stockade.oci.frontend import build
from tests.integration.oci.conftest import Bundles, leftovers, oci

LOOP = ["sh", "-c", "while :; do sleep 0.05; done"]


@pytest.fixture(scope="module")
def native_only(tmp_path_factory: pytest.TempPathFactory, frontend_bin: str) -> str:
    out = tmp_path_factory.mktemp("native") / "stockade-oci"
    return build(str(out), cli="/bin/false")


def _fe(exe: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if "create" in args:  # the container keeps create's stdout: no pipe (never EOF)
        return subprocess.run([exe, "--root", str(root / "stockade"), *args], text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, timeout=30)
    return subprocess.run([exe, "--root", str(root / "stockade"), *args], text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=30)


def _state(root: Path, cid: str) -> dict[str, Any]:
    r = oci(root, "state", cid)
    assert r.returncode == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def _bundle(bundles: Bundles, args: list[str], **extra: Any) -> Path:
    cfg = bundles.config()
    cfg["process"]["args"] = args
    cfg.update(extra)
    return bundles.make(cfg)


def test_start_kill_delete_without_python(native_only: str, bundles: Bundles,
                                          oci_root: Path) -> None:
    b = _bundle(bundles, LOOP)
    assert oci(oci_root, "create", "--bundle", str(b), "n1").returncode == 0
    recorded = json.loads((oci_root / "stockade" / "n1" / "state.json").read_bytes())
    assert not recorded["start_hooks"] and not any(recorded["hooks"].values())
    assert recorded["pid"] == _state(oci_root, "n1")["pid"] and not recorded["creating"]
    r = _fe(native_only, oci_root, "state", "n1")  # answered without Python now
    assert r.returncode == 0 and r.stdout == oci(oci_root, "state", "n1").stdout
    assert _fe(native_only, oci_root, "list").returncode == 1  # handed over
    r = _fe(native_only, oci_root, "start", "n1")
    assert r.returncode == 0 and r.stderr == ""
    assert _state(oci_root, "n1")["status"] == "running"
    # Not stopped and no --force: handed over (Python refuses), the container runs on.
    assert _fe(native_only, oci_root, "delete", "n1").returncode == 1
    assert _state(oci_root, "n1")["status"] == "running"
    assert _fe(native_only, oci_root, "kill", "n1", "KILL").returncode == 0
    deadline = time.monotonic() + 5
    while _state(oci_root, "n1")["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert _fe(native_only, oci_root, "delete", "n1").returncode == 0
    assert not (oci_root / "stockade" / "n1").exists() and not leftovers("n1")
    # Engines' shims delete again once it is gone: answered here (not handed over), as
    # Python answers it: --force is no error, a plain delete says so with exit 2.
    assert _fe(native_only, oci_root, "delete", "--force", "n1").returncode == 0
    r = _fe(native_only, oci_root, "delete", "n1")
    assert r.returncode == 2 and r.stderr == "stockade: container n1 does not exist\n"
    assert oci(oci_root, "delete", "n1").stderr == r.stderr


def test_force_delete_of_a_created_container(native_only: str, bundles: Bundles,
                                             oci_root: Path) -> None:
    b = _bundle(bundles, LOOP)
    assert oci(oci_root, "create", "--bundle", str(b), "n2").returncode == 0
    pid = _state(oci_root, "n2")["pid"]
    assert _fe(native_only, oci_root, "delete", "--force", "n2").returncode == 0
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"
    assert not (oci_root / "stockade" / "n2").exists() and not leftovers("n2")


def test_hooks_odd_flags_and_unknown_signals_go_to_python(native_only: str, bundles: Bundles,
                                                         oci_root: Path,
                                                         tmp_path: Path) -> None:
    mark = tmp_path / "poststart-ran"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"touch {mark}"]}
    b = _bundle(bundles, LOOP, hooks={"poststart": [hook]})
    assert oci(oci_root, "create", "--bundle", str(b), "n3").returncode == 0
    assert json.loads((oci_root / "stockade" / "n3" / "state.json").read_bytes())["hooks"][
        "poststart"]
    assert _fe(native_only, oci_root, "start", "n3").returncode == 1  # a hook: Python's
    assert _state(oci_root, "n3")["status"] == "created" and not mark.exists()
    assert _fe(native_only, oci_root, "kill", "n3", "SIGRTMIN").returncode == 1
    assert _fe(native_only, oci_root, "start", "--bogus", "n3").returncode == 1
    assert _fe(native_only, oci_root, "--systemd-cgroup", "start", "n3").returncode == 1
    assert _fe(native_only, oci_root, "start", "../n3").returncode == 1
    assert _state(oci_root, "n3")["status"] == "created"
    assert oci(oci_root, "delete", "--force", "n3").returncode == 0


def test_real_fallback_runs_the_hook(frontend_bin: str, bundles: Bundles, oci_root: Path,
                                     tmp_path: Path) -> None:
    mark = tmp_path / "poststart-ran"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"touch {mark}"]}
    b = _bundle(bundles, LOOP, hooks={"poststart": [hook]})
    assert _fe(frontend_bin, oci_root, "create", "--bundle", str(b), "n4").returncode == 0
    assert _fe(frontend_bin, oci_root, "start", "n4").returncode == 0
    assert mark.exists() and _state(oci_root, "n4")["status"] == "running"
    r = _fe(frontend_bin, oci_root, "start", "missing-one")
    assert r.returncode != 0 and "does not exist" in r.stderr  # Python's own message
    assert _fe(frontend_bin, oci_root, "delete", "--force", "n4").returncode == 0
    assert not leftovers("n4")


def test_build_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade.oci import frontend

    monkeypatch.setenv("CC", "/bin/false")
    with pytest.raises(RuntimeError, match="/bin/false failed"):
        build(str(tmp_path / "x"), cli="/bin/true")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="C string literal"):
        build(str(tmp_path / "x"), cli='/a"b')
    assert frontend.main([]) == 2


def test_rebuilt_only_when_stale(tmp_path: Path, frontend_bin: str) -> None:
    """`python -m stockade.oci.frontend --if-stale OUT`: a front end stamped from the
    installed sources is kept; one built from others is rebuilt (scripts/dev setup)."""
    import shutil

    from stockade.oci import frontend
    from stockade.oci.fastplan import stamp

    out = tmp_path / "fe"
    shutil.copy(frontend_bin, out)
    assert frontend.built_stamp(str(out)) == stamp()
    before = out.stat().st_mtime_ns
    assert frontend.main(["--if-stale", str(out)]) == 0
    assert out.stat().st_mtime_ns == before  # up to date: not rebuilt
    frontend.build(str(out), cli="/bin/false", stamp="old")
    assert frontend.built_stamp(str(out)) == "old"
    assert frontend.main(["--if-stale", str(out)]) == 0
    assert frontend.built_stamp(str(out)) == stamp()
    assert frontend.built_stamp(str(tmp_path / "missing")) is None
