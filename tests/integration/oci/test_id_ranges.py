"""`--policy` giving a bundle a user namespace: each container gets a host id range of
its own from the id pool (runner.idalloc), pinned to its state directory until delete.

Before: every such container mapped to the same fixed range, so two containers (and
the pool's first `stockade run` sandbox) shared host ids."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stockade.oci.frontend import build
from stockade.runner.plan import AUTO_RANGE_BASE, AUTO_RANGE_COUNT
from tests.integration.oci.conftest import Bundles, oci

LOOP = ["sh", "-c", "while :; do sleep 0.05; done"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private id pool lock directory: other sandboxes on the host take no range."""
    return {**os.environ, "STOCKADE_STATE_DIR": str(tmp_path / "idstate")}


def _idpool(env: dict[str, str]) -> Path:
    return Path(env["STOCKADE_STATE_DIR"]) / "idpool"


def _run(bundles: Bundles, oci_root: Path, env: dict[str, str], cid: str) -> None:
    cfg = bundles.config()
    cfg["process"]["args"] = LOOP
    b = bundles.make(cfg)
    r = oci(oci_root, "run", "--detach", "--policy", "default", "--bundle", str(b), cid, env=env)
    assert r.returncode == 0, r.stderr


def _pid(oci_root: Path, cid: str, env: dict[str, str]) -> int:
    r = oci(oci_root, "state", cid, env=env)
    assert r.returncode == 0, r.stderr
    return int(json.loads(r.stdout)["pid"])


def _outside(pid: int) -> tuple[int, int]:
    """(first host uid, count) of the container's user namespace, read from the host."""
    inside, outside, count = Path(f"/proc/{pid}/uid_map").read_text().split()[:3]
    assert inside == "0"
    return int(outside), int(count)


def _userns_owner(pid: int) -> int:
    """The host uid that owns the process's user namespace (ioctl NS_GET_OWNER_UID)."""
    import fcntl
    import struct

    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return int(struct.unpack("I", fcntl.ioctl(fd, 0xB704, b"\0" * 4))[0])
    finally:
        os.close(fd)


def _owners(env: dict[str, str]) -> dict[int, str]:
    return {int(p.name.split(".")[0]): p.read_text().split("\n")[0]
            for p in _idpool(env).glob("*.owner")}


def test_concurrent_containers_get_disjoint_ranges_given_back_by_delete(
        bundles: Bundles, oci_root: Path, env: dict[str, str],
        frontend_bin: str, tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda cid: _run(bundles, oci_root, env, cid), ("ir1", "ir2")))
    pids = {cid: _pid(oci_root, cid, env) for cid in ("ir1", "ir2")}
    ranges = {cid: _outside(pid) for cid, pid in pids.items()}
    # each namespace is owned by its range (per-user counts are not shared), as in
    # `stockade run`
    assert {cid: _userns_owner(pid) for cid, pid in pids.items()} == \
        {cid: r[0] for cid, r in ranges.items()}
    (a, na), (b, nb) = ranges["ir1"], ranges["ir2"]
    assert na == nb == AUTO_RANGE_COUNT
    assert a + na <= b or b + nb <= a, ranges  # disjoint host ids
    assert {a, b} == {AUTO_RANGE_BASE, AUTO_RANGE_BASE + AUTO_RANGE_COUNT}
    state = oci_root / "stockade"
    assert _owners(env) == {a: str(state / "ir1"), b: str(state / "ir2")}

    # The compiled front end does not delete such a container itself (it cannot give
    # the range back): with a fallback that fails, nothing is deleted...
    native = build(str(tmp_path / "native-oci"), cli="/bin/false")
    fe = [native, "--root", str(state), "delete", "--force", "ir2"]
    assert subprocess.run(fe, env=env, capture_output=True).returncode != 0
    assert (state / "ir2").exists() and b in _owners(env)
    # ...and with the real fallback, Python's delete gives the range back.
    fe[0] = frontend_bin
    assert subprocess.run(fe, env=env, capture_output=True).returncode == 0
    assert not (state / "ir2").exists() and _owners(env) == {a: str(state / "ir1")}
    assert oci(oci_root, "delete", "--force", "ir1", env=env).returncode == 0
    assert _owners(env) == {}

    _run(bundles, oci_root, env, "ir3")  # the first range is free again
    assert _outside(_pid(oci_root, "ir3", env))[0] == AUTO_RANGE_BASE
    assert oci(oci_root, "delete", "--force", "ir3", env=env).returncode == 0
    assert _owners(env) == {}


def test_a_stale_owner_is_reclaimed_once_its_ids_are_unused(
        bundles: Bundles, oci_root: Path, env: dict[str, str]) -> None:
    from stockade.oci import state as st
    from stockade.oci.lifecycle import remove_cgroups

    _run(bundles, oci_root, env, "st1")
    pid = _pid(oci_root, "st1", env)
    first = _outside(pid)[0]
    state_dir = oci_root / "stockade" / "st1"
    dirs = st.read(str(oci_root / "stockade"), "st1")["cgroup_dirs"]
    try:
        for name in os.listdir(state_dir):  # the state directory removed by hand
            os.unlink(state_dir / name)
        state_dir.rmdir()
        # Its process still has ids of the range: not taken again.
        _run(bundles, oci_root, env, "st2")
        assert _outside(_pid(oci_root, "st2", env))[0] != first
        os.kill(pid, 9)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.02)
        # Now nothing uses it: the stale owner record is reclaimed.
        _run(bundles, oci_root, env, "st3")
        assert _outside(_pid(oci_root, "st3", env))[0] == first
        assert _owners(env)[first] == str(oci_root / "stockade" / "st3")
    finally:
        remove_cgroups(dirs)
    for cid in ("st2", "st3"):
        assert oci(oci_root, "delete", "--force", cid, env=env).returncode == 0
    assert _owners(env) == {}
