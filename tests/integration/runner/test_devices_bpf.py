"""The cgroup v2 device program in the real kernel: a process moved into a cgroup with
the program attached may open exactly the device nodes the rules allow (host nodes,
opened and closed: nothing is read or written)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from stockade.runner.cgroups import detect, is_cgroup2
from stockade.runner.cgroups.devices_bpf import attach, program
from tests.conftest import require_root

pytestmark = pytest.mark.root


@pytest.fixture
def scratch_cgroup() -> Iterator[str]:
    require_root()
    h = detect()
    if h.v2_mount is None or not is_cgroup2(h.v2_mount):
        pytest.skip("no cgroup2 mount on this host")
    path = os.path.join(h.v2_mount, f"stockade-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    yield path
    os.rmdir(path)


def opens_in(cgroup: str, targets: list[tuple[str, int]]) -> list[str]:
    """Open each (path, flags) from a child placed in `cgroup`: "ok" or the errno name."""
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.read(r, 1)
        res = []
        for path, flags in targets:
            try:
                os.close(os.open(path, flags))
                res.append("ok")
            except OSError as exc:
                res.append(str(exc.errno))
        os.write(out_w, ",".join(res).encode())
        os._exit(0)
    os.close(out_w)
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as fh:
        fh.write(str(pid))
    os.write(w, b"g")
    os.waitpid(pid, 0)
    got = os.read(out_r, 4096).decode().split(",")
    for fd in (r, w, out_r):
        os.close(fd)
    return got


def test_only_allowed_devices_open(scratch_cgroup: str) -> None:
    nodes = [p for p in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/fuse") if os.path.exists(p)]
    assert "/dev/null" in nodes and "/dev/zero" in nodes
    targets = [(p, os.O_RDONLY) for p in nodes] + [("/dev/urandom", os.O_RDWR)]
    before = opens_in(scratch_cgroup, targets)
    assert set(before) == {"ok"}, before  # no program yet: everything opens
    attach(scratch_cgroup, program(("c 1:3 rwm", "c 1:9 r")))  # null rw, urandom read-only
    after = dict(zip([f"{p}:{f}" for p, f in targets], opens_in(scratch_cgroup, targets),
                     strict=True))
    eperm = str(1)
    assert after[f"/dev/null:{os.O_RDONLY}"] == "ok"
    assert after[f"/dev/urandom:{os.O_RDONLY}"] == "ok"
    assert after[f"/dev/urandom:{os.O_RDWR}"] == eperm  # write not allowed
    assert after[f"/dev/zero:{os.O_RDONLY}"] == eperm  # not listed
    if "/dev/fuse" in nodes:
        assert after[f"/dev/fuse:{os.O_RDONLY}"] == eperm


def test_allow_all_rule(scratch_cgroup: str) -> None:
    attach(scratch_cgroup, program(("a",)))
    assert opens_in(scratch_cgroup, [("/dev/zero", os.O_RDONLY), ("/dev/null", os.O_RDWR)]) \
        == ["ok", "ok"]
