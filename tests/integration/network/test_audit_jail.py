"""`stockade audit` against real sandboxes in the test's world: a jailed one passes the
network rows, a process with a plain route out does not, a deleted qdisc is noticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.network.conftest import World


def _findings(world: World, pid: int) -> dict[str, str]:
    done = world.stockade("audit", "--pid", str(pid), "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    audit = json.loads(done.stdout)["audits"][0]
    out = {name: "absent" for name in audit["passed"]}
    out.update({f["id"]: f["status"] for f in audit["findings"]})
    return out


def _pid_in_netns(inode: int, comm: str) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                same = os.stat(f"/proc/{name}/ns/net").st_ino == inode
                if same and Path(f"/proc/{name}/comm").read_text().strip() == comm:
                    return int(name)
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no {comm} in netns {inode}")


def test_a_jail_passes_and_a_missing_rate_limit_is_found(world: World) -> None:
    policy = world.policy("""
mode: private
egress: [{to: 10.99.0.2/32, ports: [8080]}]
bandwidth: {egress: 10Mbit}
""")
    runner = subprocess.Popen(world.in_host([sys.executable, "-m", "stockade", "run", "--policy",
                                             str(policy), "--", "/bin/sleep", "60"]),
                              env=world.env())
    try:
        record = world.state / "net" / "0.json"
        deadline = time.monotonic() + 20
        while "netns" not in (json.loads(record.read_text()) if record.exists() else {}):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pid = _pid_in_netns(json.loads(record.read_text())["netns"], "sleep")
        got = _findings(world, pid)
        assert (got["NET-EGRESS-OPEN"], got["NET-BANDWIDTH-MISSING"]) == ("absent", "absent")
        # the attack on the limit: someone removes the egress token bucket
        subprocess.run(world.in_host(["tc", "qdisc", "del", "dev", "stockade0i", "root"]),
                       check=True)
        assert _findings(world, pid)["NET-BANDWIDTH-MISSING"] == "present"
    finally:
        runner.terminate()
        runner.wait(timeout=30)


def test_a_plain_route_out_is_unrestricted_egress(world: World) -> None:
    sleeper = subprocess.Popen(world.in_peer(["/bin/sleep", "60"]))
    try:
        inode = os.stat(f"/run/netns/{world.peer}").st_ino
        pid = _pid_in_netns(inode, "sleep")
        assert _findings(world, pid)["NET-EGRESS-OPEN"] == "present"
    finally:
        sleeper.kill()
        sleeper.wait()
