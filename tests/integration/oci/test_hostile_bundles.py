"""Issue 13, as root on the real kernel, through both create paths (Python and the
compiled front end): a cgroupsPath with `..` stays in cgroupfs, a create SIGKILLed at
any point leaves nothing `delete --force` does not remove (and the id can be used
again), hostile config.json files and ids end in one line and exit status 2."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.oci.conftest import (
    STOCKADE,
    STOCKADE_HOOKED,
    Bundles,
    leftovers,
    oci,
    stopped,
)

HOSTILE = sorted((Path(__file__).resolve().parents[2] / "data" / "hostile" / "oci")
                 .glob("*.json"))
LOOP = ["sh", "-c", "while :; do sleep 0.05; done"]
PATHS = ("python", "frontend")


def _v1_memory() -> Path:
    base = Path("/sys/fs/cgroup/memory")
    if not (base / "memory.limit_in_bytes").exists():
        pytest.skip("no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory")
    return base


def _run(exe: list[str], root: Path, *args: str, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    return oci(root, *args, runtime="stockade", env={**os.environ, **(env or {})}) \
        if exe == STOCKADE else _frontend(exe, root, *args, env=env)


def _frontend(exe: list[str], root: Path, *args: str, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    import tempfile

    with tempfile.TemporaryFile("w+") as err:  # the container keeps create's stdout
        r = subprocess.run([*exe, "--root", str(root / "stockade"), *args], text=True,
                           stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                           env={**os.environ, **(env or {})}, timeout=30, check=False)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, "", err.read())


@pytest.fixture(params=PATHS)
def runtime(request: pytest.FixtureRequest, frontend_bin: str) -> list[str]:
    return STOCKADE if request.param == "python" else [frontend_bin]


def _native(exe: list[str], root: Path, bundle: Path,
            env: dict[str, str] | None = None) -> dict[str, str]:
    """For the front end: store the bundle's plan (a create the Python runtime plans),
    then require that later creates run it natively (no Python fallback)."""
    if exe == STOCKADE:
        return {}
    cid = f"plan-{uuid.uuid4().hex[:6]}"
    r = _frontend([*exe, "--debug"], root, "create", "--bundle", str(bundle), cid, env=env)
    assert r.returncode == 0 and "fast plan: stored" in r.stderr, r.stderr
    assert _frontend(exe, root, "delete", "--force", cid).returncode == 0
    return {"STOCKADE_FAST": "require"}


@pytest.fixture
def escape_name(oci_root: Path) -> Iterator[str]:
    """A unique /tmp name the attack aims at; its cgroupfs twins are removed after, once
    what a failed test left in oci_root is deleted (its leaves are below them)."""
    name = f"stockade-h13-{uuid.uuid4().hex[:8]}"
    yield name
    base = oci_root / "stockade"
    for cid in os.listdir(base) if base.exists() else []:
        if not cid.startswith("."):
            oci(oci_root, "delete", "--force", cid)
    for ctl in Path("/sys/fs/cgroup").iterdir():
        top = ctl / "tmp" / name
        for d in (top / "a", top, ctl / "tmp"):
            with contextlib.suppress(OSError):
                d.rmdir()


def test_cgroups_path_dotdot_stays_in_cgroupfs(runtime: list[str], bundles: Bundles,
                                               oci_root: Path, escape_name: str) -> None:
    """The issue's path (as root): before, /tmp/<name>/a was made on the host and
    stayed. Now the path is cleaned as runc does: /tmp/<name>/a/b inside each hierarchy."""
    memory = _v1_memory()
    host = Path("/tmp") / escape_name
    cfg = bundles.config()
    cfg["process"]["args"] = LOOP
    cfg["linux"]["cgroupsPath"] = f"/../../../../../tmp/{escape_name}/a/b"
    bundle = bundles.make(cfg)
    env = _native(runtime, oci_root, bundle)
    assert not host.exists()
    r = _run(runtime, oci_root, "create", "--bundle", str(bundle), "esc1", env=env)
    assert r.returncode == 0, r.stderr
    assert not host.exists()
    leaf = memory / "tmp" / escape_name / "a" / "b"
    state = oci(oci_root, "state", "esc1")
    assert state.returncode == 0
    pid = int(json.loads(state.stdout)["pid"])
    assert str(pid) in (leaf / "cgroup.procs").read_text().split()
    assert _run(runtime, oci_root, "delete", "--force", "esc1").returncode == 0
    assert not leaf.exists() and not host.exists()


@pytest.mark.parametrize("cgroups_path", ["/", "/../..", ".."])
def test_cgroups_path_of_the_top_is_refused(runtime: list[str], bundles: Bundles,
                                            oci_root: Path, cgroups_path: str) -> None:
    cfg = bundles.config()
    cfg["linux"]["cgroupsPath"] = cgroups_path
    r = _run(runtime, oci_root, "create", "--bundle", str(bundles.make(cfg)), "top1")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "linux.cgroupsPath" in r.stderr
    assert not (oci_root / "stockade" / "top1").exists()


def _kill_create_at(exe: list[str], root: Path, bundle: Path, cid: str, point: str,
                    env: dict[str, str]) -> None:
    """Start create with STOCKADE_TEST_PAUSE=point, wait until it stops itself there
    (SIGSTOP), SIGKILL it and everything it started (its session: the executor waiting
    for it too, which would otherwise remove what it made when the runtime's pipe
    closes). (The pause is a test hook: the Python path runs the hooked CLI.)"""
    exe = STOCKADE_HOOKED if exe == STOCKADE else exe
    proc = subprocess.Popen([*exe, "--root", str(root / "stockade"), "create", "--bundle", str(bundle), cid],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **env, "STOCKADE_TEST_PAUSE": point})
    deadline = time.monotonic() + 20
    while not stopped(proc.pid):
        assert proc.poll() is None, f"create ended ({proc.returncode}) before {point}"
        assert time.monotonic() < deadline, f"create never reached {point}"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("point", ["mkdir", "planned", "cgroups"])
def test_sigkilled_create_is_deleted_and_the_id_reused(runtime: list[str], bundles: Bundles,
                                                        oci_root: Path, point: str) -> None:
    """mkdir: the directory without any state (before: delete --force said yes and left
    it, the id blocked for good); planned: cgroups about to be made; cgroups: made and
    recorded, no process yet (before: the front end's stayed)."""
    cfg = bundles.config()
    cfg["process"]["args"] = LOOP
    bundle = bundles.make(cfg)
    env = _native(runtime, oci_root, bundle)
    cid = f"k-{point}-{uuid.uuid4().hex[:6]}"
    _kill_create_at(runtime, oci_root, bundle, cid, point, env)
    d = oci_root / "stockade" / cid
    assert d.exists()  # what a killed create leaves
    if point == "cgroups":
        assert leftovers(cid)
    if point == "mkdir":  # no state to say it is stopped: only --force removes it
        r = oci(oci_root, "delete", cid)
        assert r.returncode == 2 and "delete --force" in r.stderr, r.stderr
    else:  # its state says creating, by a creator that is gone: stopped
        assert "stopped" in oci(oci_root, "state", cid).stdout
    r = _run(runtime, oci_root, "delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert not d.exists() and not leftovers(cid)
    r = _run(runtime, oci_root, "create", "--bundle", str(bundle), cid, env=env)
    assert r.returncode == 0, r.stderr  # the id is free again
    assert _run(runtime, oci_root, "delete", "--force", cid).returncode == 0
    assert not d.exists() and not leftovers(cid)


def test_interrupted_creates_are_reaped(bundles: Bundles, oci_root: Path) -> None:
    """A later create removes what killed creates left: a create stopped for good after
    making its cgroups (its creator gone), and a directory without state once it is a
    minute old; never a created container."""
    cfg = bundles.config()
    cfg["process"]["args"] = LOOP
    bundle = bundles.make(cfg)
    _kill_create_at(STOCKADE, oci_root, bundle, "dead1", "cgroups", {})
    assert leftovers("dead1")
    bare = oci_root / "stockade" / "dead2"
    bare.mkdir()
    young = oci_root / "stockade" / "young"
    young.mkdir()
    old = time.time() - 3600
    os.utime(bare, (old, old))
    assert oci(oci_root, "create", "--bundle", str(bundle), "alive").returncode == 0
    assert oci(oci_root, "create", "--bundle", str(bundle), "next").returncode == 0
    assert not (oci_root / "stockade" / "dead1").exists() and not leftovers("dead1")
    assert not bare.exists()
    assert young.exists()  # may be a create between its mkdir and its first write
    for cid in ("alive", "next"):
        assert oci(oci_root, "state", cid).returncode == 0
        assert oci(oci_root, "delete", "--force", cid).returncode == 0
    young.rmdir()


def _expect_refused(r: subprocess.CompletedProcess[str], root: Path, cid: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith("stockade: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not (root / "stockade" / cid).exists()
    assert not leftovers(cid)


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.name)
def test_hostile_config_is_one_line(path: Path, tmp_path: Path, oci_root: Path) -> None:
    """tests/data/hostile/oci: `stockade oci create` refuses each with one line and
    exit 2, and leaves nothing."""
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_bytes(path.read_bytes())
    r = oci(oci_root, "create", "--bundle", str(bundle), "hostile1")
    _expect_refused(r, oci_root, "hostile1")


@pytest.mark.parametrize("name", ["truncated-in-list.json", "nul-in-root-path.json",
                                  "top-level-list.json"])
def test_hostile_config_through_the_front_end(name: str, frontend_bin: str, tmp_path: Path,
                                              oci_root: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_bytes((HOSTILE[0].parent / name).read_bytes())
    r = _frontend([frontend_bin], oci_root, "create", "--bundle", str(bundle), "hostile2")
    _expect_refused(r, oci_root, "hostile2")


@pytest.mark.parametrize("cid", ["x" * 300, ".fast", "a" * 256])
def test_bad_ids_are_one_line(runtime: list[str], bundles: Bundles, oci_root: Path,
                              cid: str) -> None:
    r = _run(runtime, oci_root, "create", "--bundle", str(bundles.make()), cid)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "invalid container id" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (oci_root / "stockade" / cid).exists() or cid == ".fast"


def _v2_mount() -> Path:
    from stockade.runner.cgroups import detect

    mount = detect().v2_mount
    if mount is None:
        pytest.skip("no cgroup2 mount on this host")
    return Path(mount)


def test_cgroups_path_dotdot_stays_in_cgroup2(runtime: list[str], bundles: Bundles,
                                              oci_root: Path, escape_name: str) -> None:
    """The same on cgroup v2 (this hybrid host's unified mount, as test_cgroup_v2.py):
    one directory, made inside the cgroup2 mount; the container is born in it."""
    mount = _v2_mount()
    v2 = {"STOCKADE_TEST_CGROUP_V2": "1"}
    host = Path("/tmp") / escape_name
    cfg = bundles.config()
    cfg["process"]["args"] = LOOP
    cfg["linux"]["cgroupsPath"] = f"/../../../../../tmp/{escape_name}/a/b"
    bundle = bundles.make(cfg)
    env = {**v2, **_native(runtime, oci_root, bundle, v2)}
    r = _run(runtime, oci_root, "create", "--bundle", str(bundle), "esc2", env=env)
    assert r.returncode == 0, r.stderr
    leaf = mount / "tmp" / escape_name / "a" / "b"
    pid = int(json.loads(oci(oci_root, "state", "esc2").stdout)["pid"])
    assert str(pid) in (leaf / "cgroup.procs").read_text().split()
    assert not host.exists()
    assert _run(runtime, oci_root, "delete", "--force", "esc2").returncode == 0
    assert not leaf.exists() and not host.exists()
