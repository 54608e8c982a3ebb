"""A net sysctl in a network namespace joined by path (what podman's default network
sends): set there, as runc does; refused when the namespace is the host's."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root, require_tool
from tests.integration.oci.conftest import Bundles, leftovers, oci

HOST_VALUE = Path("/proc/sys/net/ipv4/ping_group_range")
WANTED = "4242\t4343"


@pytest.fixture
def netns() -> Iterator[Callable[[], str]]:
    """make() -> the name of a new network namespace (`ip netns add`), deleted after."""
    require_root()
    require_tool("ip")
    made: list[str] = []

    def make() -> str:
        made.append(f"sk-sysctl-{uuid.uuid4().hex[:8]}")
        subprocess.run(["ip", "netns", "add", made[-1]], check=True, capture_output=True)
        return made[-1]

    yield make
    for name in made:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def _config(bundles: Bundles, netns_path: str) -> dict[str, Any]:
    cfg = bundles.config()
    cfg["process"]["args"] = ["cat", "/proc/sys/net/ipv4/ping_group_range"]
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                  if n["type"] != "network"]
    cfg["linux"]["namespaces"].append({"type": "network", "path": netns_path})
    cfg["linux"]["sysctl"] = {"net.ipv4.ping_group_range": WANTED.replace("\t", " ")}
    return cfg


def test_set_in_the_joined_namespace(bundles: Bundles, oci_root: Path,
                                     netns: Callable[[], str]) -> None:
    host = HOST_VALUE.read_text()
    assert host.strip() != WANTED
    for runtime in ("stockade", "runc"):  # a namespace each: neither sees the other's write
        name = netns()
        bundle = bundles.make(_config(bundles, f"/run/netns/{name}"))
        r = oci(oci_root, "run", "--bundle", str(bundle), f"ns-{runtime}", runtime=runtime)
        assert (r.returncode, r.stdout.strip()) == (0, WANTED), (runtime, r.stderr)
        inside = subprocess.run(["ip", "netns", "exec", name, "cat", str(HOST_VALUE)],
                                capture_output=True, text=True, check=True).stdout
        assert inside.strip() == WANTED
        assert HOST_VALUE.read_text() == host


def test_refused_in_the_hosts_namespace(bundles: Bundles, oci_root: Path) -> None:
    """Joining the runtime's own (the host's) network namespace by path: the sysctl
    would change the host (runc would write it): refused before anything is made."""
    require_root()
    host = HOST_VALUE.read_text()
    bundle = bundles.make(_config(bundles, "/proc/self/ns/net"))
    r = oci(oci_root, "run", "--bundle", str(bundle), "ns-host")
    assert r.returncode == 2
    assert "the host's network namespace" in r.stderr and "Traceback" not in r.stderr
    assert HOST_VALUE.read_text() == host
    assert not leftovers("ns-host")
    assert not (oci_root / "stockade" / "ns-host").exists()
