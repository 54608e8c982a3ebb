"""`stockade oci update` against `runc update`: the same container created under both,
the same update applied to each, the limits read back from the host side."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.oci.conftest import RUNTIMES, Bundles, oci
from tests.integration.oci.test_differential import _cgroup_files


@pytest.fixture
def pair(bundles: Bundles, twins: Callable[..., str]) -> Callable[[dict[str, Any]], str]:
    """make(resources) -> id: the same container created (not started) in both."""
    def make(resources: dict[str, Any]) -> str:
        cfg = bundles.config()
        cfg["process"]["args"] = ["sh", "-c", "while :; do sleep 0.1; done"]
        cfg["linux"]["resources"].update(resources)
        return twins(cfg, start=False, prefix="up")

    return make


def limits(root: Path, cid: str, rt: str) -> dict[str, str]:
    pid = json.loads(oci(root, "state", cid, runtime=rt).stdout)["pid"]
    files = _cgroup_files(pid)
    files.pop("devices.list")
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        memsw = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.memsw.limit_in_bytes"
        if "memory" in ctrls.split(",") and memsw.exists():
            files["memory.memsw.limit_in_bytes"] = memsw.read_text().strip()
    return files


UPDATES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "memory-up": ({"memory": {"limit": 64 << 20}}, ["--memory", str(128 << 20)]),
    "memory-down": ({"memory": {"limit": 64 << 20}}, ["--memory", str(32 << 20)]),
    "memory-unlimited": ({"memory": {"limit": 64 << 20}}, ["--memory", "-1"]),
    "pids": ({"pids": {"limit": 50}}, ["--pids-limit", "20"]),
    "pids-unlimited": ({"pids": {"limit": 50}}, ["--pids-limit", "-1"]),
    "cpu": ({"cpu": {"quota": 50000, "period": 100000}},
            ["--cpu-quota", "20000", "--cpu-period", "50000", "--cpu-share", "256"]),
    "cpu-unlimited": ({"cpu": {"quota": 50000, "period": 100000}}, ["--cpu-quota", "-1"]),
    "none-set-before": ({}, ["--memory", str(96 << 20), "--pids-limit", "33"]),
    # memory + swap (memsw must stay >= memory at every write: the order matters)
    "swap-grow": ({"memory": {"limit": 64 << 20, "swap": 128 << 20}},
                  ["--memory", str(256 << 20), "--memory-swap", str(512 << 20)]),
    "swap-shrink": ({"memory": {"limit": 64 << 20, "swap": 128 << 20}},
                    ["--memory", str(32 << 20), "--memory-swap", str(48 << 20)]),
    "swap-unlimited": ({"memory": {"limit": 64 << 20, "swap": 128 << 20}},
                       ["--memory", "-1"]),
    "swap-only": ({"memory": {"limit": 64 << 20, "swap": 128 << 20}},
                  ["--memory-swap", str(100 << 20)]),
}


@pytest.mark.parametrize("name", sorted(UPDATES))
def test_update_agrees_with_runc(name: str, pair: Callable[[dict[str, Any]], str],
                                 oci_root: Path) -> None:
    initial, flags = UPDATES[name]
    cid = pair(initial)
    for rt in RUNTIMES:
        r = oci(oci_root, "update", *flags, cid, runtime=rt)
        assert r.returncode == 0, (rt, r.stderr)
    got = limits(oci_root, cid, "stockade")
    assert got == limits(oci_root, cid, "runc")
    if name.startswith("swap"):
        assert "memory.memsw.limit_in_bytes" in got  # swap accounting is on here


def test_resources_json_on_stdin(pair: Callable[[dict[str, Any]], str], oci_root: Path) -> None:
    cid = pair({"memory": {"limit": 64 << 20}})
    res = json.dumps({"memory": {"limit": 80 << 20}, "pids": {"limit": 9},
                      "cpu": {"shares": 333}})
    for rt in RUNTIMES:
        r = oci(oci_root, "update", "--resources", "-", cid, runtime=rt, input=res,
                stdin=None)
        assert r.returncode == 0, (rt, r.stderr)
    got = limits(oci_root, cid, "stockade")
    assert got == limits(oci_root, cid, "runc")
    assert got["pids.max"] == "9" and got["memory.limit_in_bytes"] == str(80 << 20)


def test_what_update_refuses(pair: Callable[[dict[str, Any]], str], oci_root: Path) -> None:
    cid = pair({})
    before = limits(oci_root, cid, "stockade")
    for args, why in ((["--cpuset-cpus", "0"], "--cpuset-cpus"),
                      (["--memory-reservation", "1000000"], "--memory-reservation"),
                      (["--cpu-period", "10"], "cpu.period"),
                      (["--memory", "-5"], "memory.limit")):
        r = oci(oci_root, "update", *args, cid)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
    r = oci(oci_root, "update", "--resources", "-", cid,
            input=json.dumps({"blockIO": {"weight": 100}}), stdin=None)
    assert r.returncode == 2 and "resources.blockIO" in r.stderr
    assert limits(oci_root, cid, "stockade") == before  # nothing half-applied
    r = oci(oci_root, "update", "--pids-limit", "3", "missing-one")
    assert r.returncode == 2 and "does not exist" in r.stderr
