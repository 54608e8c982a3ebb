"""OCI containers in cgroup v2 (on this hybrid host: its unified mount, forced with
STOCKADE_TEST_CGROUP_V2=1; no resource controllers there, but the cgroup, clone3 into it
and the device program are real). The device rules become an eBPF program attached to
the container's cgroup; the container sees what it sees under v1."""

from __future__ import annotations

import ctypes
import json
import os
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest

from stockade.runner.cgroups import detect, is_cgroup2
from tests.integration.oci.conftest import Bundles, leftovers, oci
from tests.integration.oci.test_differential import normalise, probe_config

V2 = {**os.environ, "STOCKADE_TEST_CGROUP_V2": "1"}


@pytest.fixture
def v2_mount() -> str:
    h = detect()
    if h.v2_mount is None or not is_cgroup2(h.v2_mount):
        pytest.skip("no cgroup2 mount on this host")
    return h.v2_mount


def device_programs(cgroup_dir: str) -> int:
    """BPF_PROG_QUERY(BPF_CGROUP_DEVICE) on the cgroup: how many programs are attached."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ids = (ctypes.c_uint32 * 8)()
        attr = ctypes.create_string_buffer(struct.pack(
            "<IIIIQI", fd, 6, 0, 0, ctypes.addressof(ids), 8), 40)
        rc = libc.syscall(321, 16, attr, 40)  # bpf(BPF_PROG_QUERY)
        assert rc == 0, os.strerror(ctypes.get_errno())
        count: int = struct.unpack_from("<I", attr.raw, 24)[0]
        return count
    finally:
        os.close(fd)


def test_device_rules_become_an_ebpf_program(v2_mount: str, bundles: Bundles,
                                             oci_root: Path) -> None:
    cfg = bundles.config()
    cfg["process"]["args"] = ["true"]
    assert cfg["linux"]["resources"]["devices"]  # runc spec's deny-all
    cid = f"v2-{uuid.uuid4().hex[:6]}"
    r = oci(oci_root, "create", "--bundle", str(bundles.make(cfg)), cid, env=V2)
    assert r.returncode == 0, r.stderr
    st: dict[str, Any] = json.loads(oci(oci_root, "state", cid).stdout)
    (cg,) = _dirs(oci_root, cid)
    assert cg.startswith(v2_mount + "/")
    assert device_programs(cg) == 1
    own = Path(f"/proc/{st['pid']}/cgroup").read_text()
    assert f"0::{cg[len(v2_mount):]}\n" in own
    assert oci(oci_root, "delete", "--force", cid).returncode == 0
    assert not os.path.exists(cg) and not leftovers(cid)


def _dirs(root: Path, cid: str) -> list[str]:
    data = json.loads((root / "stockade" / cid / "state.json").read_bytes())
    dirs: list[str] = data["cgroup_dirs"]
    return dirs


def test_the_container_sees_the_same_as_under_v1(v2_mount: str, bundles: Bundles,
                                                 oci_root: Path) -> None:
    bundle = str(bundles.make(probe_config(bundles)))
    v1 = oci(oci_root, "run", "--bundle", bundle, f"v1-{uuid.uuid4().hex[:6]}")
    v2 = oci(oci_root, "run", "--bundle", bundle, f"v2-{uuid.uuid4().hex[:6]}", env=V2)
    assert v1.returncode == 0 and v2.returncode == 0, v2.stderr
    a, b = normalise(v1.stdout), normalise(v2.stdout)
    for key in a:
        assert b[key] == a[key], key


def test_a_limit_without_its_controller_fails_closed(v2_mount: str, bundles: Bundles,
                                                     oci_root: Path) -> None:
    with open(os.path.join(v2_mount, "cgroup.controllers")) as fh:
        if "pids" in fh.read().split():
            pytest.skip("the pids controller is available in v2 here")
    cfg = bundles.config()
    cfg["process"]["args"] = ["true"]
    cfg["linux"]["resources"]["pids"] = {"limit": 10}
    cid = f"v2-{uuid.uuid4().hex[:6]}"
    r = oci(oci_root, "run", "--bundle", str(bundles.make(cfg)), cid, env=V2)
    assert r.returncode != 0 and "pids controller" in r.stderr
    assert not (oci_root / "stockade" / cid).exists() and not leftovers(cid)
    assert not os.path.exists(os.path.join(v2_mount, "stockade", cid))
