"""A private world per test: a "host" network namespace where the runner runs (its veth,
nft table, forwarding changes all land there, never in the machine's own namespace) and
a "peer" namespace standing in for the internet, joined by a veth on 10.99.0.0/24.
Traffic never leaves these namespaces; both are deleted at the end, whatever happened.

  host ns  up0 10.99.0.1/24, default route via 10.99.0.2, IPv4 forwarding off
  peer ns  wan0 10.99.0.2/24 and 10.99.0.3/24, listeners from peer_server.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The test's scripts, bound read-only into every sandbox here (the host's root is not
# the sandbox's: only the system directories are).
INSIDE = "/opt/stockade-nettest"
PROBE = f"{INSIDE}/probe.py"
BIND = f"{HERE}:{INSIDE}:ro"
PEER_SERVER = HERE / "peer_server.py"
PEER_PORTS = (8080, 8081, 53)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class World:
    host: str  # netns names under /run/netns
    peer: str
    state: Path  # STOCKADE_STATE_DIR of the runs
    tmp: Path
    servers: list[subprocess.Popen[str]]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["STOCKADE_STATE_DIR"] = str(self.state)
        return env

    def in_host(self, argv: Sequence[str]) -> list[str]:
        # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup trees
        return ["nsenter", f"--net=/run/netns/{self.host}", *argv]

    def in_peer(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.peer}", *argv]

    def policy(self, network_yaml: str, name: str = "jail") -> Path:
        path = self.tmp / f"{name}.yaml"
        body = "\n".join("  " + line for line in network_yaml.strip().splitlines())
        path.write_text(f"stockade: 1\nname: {name}\nextends: [default]\nnetwork:\n{body}\n")
        return path

    def stockade(self, *args: str, wrap: Sequence[str] = (),
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [*wrap, *self.in_host([sys.executable, "-m", "stockade", *args])]
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(),
                              timeout=timeout, check=False)

    def run(self, policy: Path, argv: Sequence[str], wrap: Sequence[str] = (),
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.stockade("run", "--policy", str(policy), "--bind", BIND, "--", *argv,
                             wrap=wrap, timeout=timeout)

    def probe(self, policy: Path, *targets: str, wrap: Sequence[str] = ()) -> dict[str, str]:
        done = self.run(policy, ["/usr/bin/python3", PROBE, *targets], wrap=wrap)
        assert done.returncode == 0, done.stderr
        return dict(line.split(" ", 1) for line in done.stdout.splitlines())

    def serve_peer(self, *extra: str) -> None:
        proc = subprocess.Popen(self.in_peer([sys.executable, str(PEER_SERVER), "120",
                                              *extra]), stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def leftovers(self) -> dict[str, object]:
        """What a jail could leave in the host namespace and the state directory."""
        links = subprocess.run(self.in_host(["ip", "-j", "link", "show"]), capture_output=True,
                               text=True, check=True).stdout
        tables = subprocess.run(self.in_host(["nft", "list", "tables"]), capture_output=True,
                                text=True, check=True).stdout
        net = self.state / "net"
        return {
            "links": sorted(i["ifname"] for i in json.loads(links) if i["ifname"] not in
                            ("lo", "up0")),
            "tables": tables.split(),
            "records": sorted(p.name for p in net.glob("*.json")) if net.exists() else [],
            "forwarding": self.sysctl("net/ipv4/conf/up0/forwarding"),
        }

    def sysctl(self, key: str) -> str:
        return subprocess.run(self.in_host(["cat", f"/proc/sys/{key}"]), capture_output=True,
                              text=True, check=True).stdout.strip()


CLEAN = {"links": [], "tables": [], "records": [], "forwarding": "0"}


def _require() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, nftables)")
    for tool in ("ip", "nft", "tc", "nsenter"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/dev installs nftables, iproute2)")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    _require()
    tag = f"{os.getpid() % 100000}{int(time.time() * 1000) % 1000}"
    host, peer = f"stkt-h{tag}", f"stkt-p{tag}"
    monkeypatch.setenv("STOCKADE_CACHE_DIR", str(tmp_path / "cache"))
    w = World(host, peer, tmp_path / "state", tmp_path, [])
    try:
        _ip("netns", "add", host)
        _ip("netns", "add", peer)
        _ip("link", "add", "name", "up0", "netns", host, "type", "veth", "peer", "name", "wan0",
            "netns", peer)
        for ns, cmds in ((host, [["addr", "add", "10.99.0.1/24", "dev", "up0"],
                                 ["link", "set", "up0", "up"], ["link", "set", "lo", "up"],
                                 ["route", "add", "default", "via", "10.99.0.2"]]),
                         (peer, [["addr", "add", "10.99.0.2/24", "dev", "wan0"],
                                 ["addr", "add", "10.99.0.3/24", "dev", "wan0"],
                                 ["link", "set", "wan0", "up"], ["link", "set", "lo", "up"]])):
            for cmd in cmds:
                _ip("-n", ns, *cmd)
        # A new namespace copies the machine's IPv4 forwarding: start from "off", so the
        # tests see the jail switch it on for its uplink and back off at the end.
        for key in ("all", "default", "up0"):
            subprocess.run(w.in_host(["sysctl", "-qw", f"net.ipv4.conf.{key}.forwarding=0"]),
                           check=True)
        yield w
    finally:
        for proc in w.servers:
            proc.kill()
            proc.wait()
        for ns in (host, peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
