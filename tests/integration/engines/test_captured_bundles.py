"""The config.json files docker, podman and containerd really write (tests/data/engines,
captured by tests/data/engines/capture.py), run under runc and under stockade.

Each bundle is created, its cgroup limits read from the host side, started, and the
probe's view from inside (ids, caps, seccomp, namespaces, mounts, sysctls, rlimits...)
compared, with the by-design differences of docs/OCI.md normalised away as in
tests/integration/oci/test_differential.py.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require_root, require_tool
from tests.integration.oci.conftest import STOCKADE
from tests.integration.oci.test_differential import PROBE, _cgroup_files, normalise

DATA = REPO / "tests" / "data" / "engines"
CASES = sorted((p.parent.name, p.stem) for p in DATA.glob("*/*.json"))
CGROUP_PARENT = "sk-engines"
# What the engines' bundles add to the view: their net sysctls, the device node, bind
# mounted files and the volume.
ENGINE_PROBE = r"""
echo '== engine'
cat /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_unprivileged_port_start 2>&1
test -c /dev/fuse && echo fuse-node
cat /etc/hostname /data/marker 2>&1
"""


def test_every_engine_is_captured() -> None:
    engines = {engine for engine, _ in CASES}
    assert engines == {"docker", "podman", "containerd"}
    assert len(CASES) >= 30


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    """A network namespace of its own for the bundles that join one by path (podman)."""
    require_root()
    require_tool("ip")
    name = f"sk-eng-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        for ctl in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                (ctl / CGROUP_PARENT).rmdir()


def fill(raw: dict[str, Any], *, rootfs: Path, scratch: Path, netns: str, cid: str,
         cgroup: str) -> dict[str, Any]:
    """The placeholders of tests/data/engines/README.md -> this run's paths."""
    text = json.dumps(raw).replace("@ID@", cid).replace("@SHORTID@", cid[:12])
    text = text.replace("@ROOTFS@", str(rootfs)).replace("@CGROUP@", cgroup)
    text = text.replace("@NS:network@", netns).replace("@SCRATCH@", str(scratch))
    cfg: dict[str, Any] = json.loads(text)
    assert "@" not in json.dumps({k: v for k, v in cfg.items() if k != "annotations"})
    for m in cfg.get("mounts", []):
        src = m.get("source", "")
        if src.startswith(f"{scratch}/dir/"):
            Path(src).mkdir(parents=True, exist_ok=True)
            (Path(src) / "marker").write_text("volume\n")
        elif src.startswith(f"{scratch}/file/"):
            Path(src).parent.mkdir(parents=True, exist_ok=True)
            Path(src).write_text(f"{cid[:12]}\n" if src.endswith("hostname") else "x\n")
    cfg["process"]["args"] = ["sh", "-c", PROBE + ENGINE_PROBE]
    cfg["process"]["terminal"] = False
    return cfg


def create_start(runtime: list[str], root: Path, bundle: Path, cid: str
                 ) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """create, the cgroup files from the host, start, wait for the probe; delete."""
    out_path, err_path = bundle / "out", bundle / "err"
    base = [*runtime, "--root", str(root)]
    # files, not pipes: the container inherits them and outlives `create`
    with open(out_path, "w") as out, open(err_path, "w") as err:
        made = subprocess.run([*base, "create", "--bundle", str(bundle), cid], text=True,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=60)
    made.stderr = err_path.read_text()
    if made.returncode != 0:
        return made, {}, ""
    try:
        pid = json.loads(subprocess.run([*base, "state", cid], capture_output=True,
                                        text=True, check=True).stdout)["pid"]
        limits = _cgroup_files(pid)
        started = subprocess.run([*base, "start", cid], capture_output=True, text=True,
                                 timeout=30)
        if started.returncode != 0:
            return started, limits, ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = subprocess.run([*base, "state", cid], capture_output=True, text=True)
            if st.returncode != 0 or json.loads(st.stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        return started, limits, out_path.read_text()
    finally:
        subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30)


@pytest.mark.parametrize(("engine", "case"), CASES)
def test_engine_bundle_agrees_with_runc(engine: str, case: str, tmp_path: Path,
                                        shared_rootfs: Path, netns: str) -> None:
    require_root()
    require_tool("runc")
    raw = json.loads((DATA / engine / f"{case}.json").read_text())
    cid = f"{engine[:3]}-{case}-{uuid.uuid4().hex[:8]}"
    seen = {}
    for name, runtime in (("runc", ["runc"]), ("stockade", STOCKADE)):
        bundle = tmp_path / name
        bundle.mkdir()
        cfg = fill(raw, rootfs=shared_rootfs, scratch=tmp_path / "scratch", netns=netns,
                   cid=cid, cgroup=f"/{CGROUP_PARENT}/{cid}-{name}")
        (bundle / "config.json").write_text(json.dumps(cfg))
        seen[name] = create_start(runtime, tmp_path / "state" / name, bundle, cid)
    ref, ref_limits, ref_out = seen["runc"]
    if ref.returncode != 0:
        pytest.skip(f"runc cannot run the {engine} {case} bundle here: {ref.stderr.strip()}")
    got, limits, out = seen["stockade"]
    assert got.returncode == 0, f"{engine}/{case}: {got.stderr.strip()}"
    # Stricter by design (docs/OCI.md): runc's default device rules also allow
    # /dev/net/tun (c 10:200), which stockade's fixed /dev does not have.
    ref_limits["devices.list"] = ref_limits["devices.list"].replace(" c 10:200 rwm", "")
    assert limits == ref_limits
    assert "== engine" in ref_out and "== engine" in out, (ref_out, out)  # the probe ran
    a, b = normalise(ref_out), normalise(out)
    # Stricter by design: a `cgroup` mount is always an empty read-only tmpfs under
    # stockade; runc leaves podman's rw although podman asks for "ro".
    assert b["mounts"].pop("/sys/fs/cgroup", "ro") == "ro"
    a["mounts"].pop("/sys/fs/cgroup", None)
    a["engine"], b["engine"] = (sections_of(ref_out), sections_of(out))
    for key in a:
        assert b[key] == a[key], f"{engine}/{case}: {key}\nrunc: {a[key]}\nstockade: {b[key]}"
    assert not any(cid in line for line in Path("/proc/self/mountinfo").read_text().splitlines())


def sections_of(out: str) -> list[str]:
    lines = out.split("== engine\n", 1)
    return lines[1].splitlines() if len(lines) == 2 else []

