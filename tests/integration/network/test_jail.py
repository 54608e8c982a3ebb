"""network.mode private on the real kernel, inside namespaces the test made (conftest)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.network.conftest import BIND, CLEAN, INSIDE, World

ALLOW_ONE = """
mode: private
egress:
  - {to: 10.99.0.2/32, ports: [8080], proto: tcp}
"""


def test_allowed_peer_is_reached_and_the_rest_refused(world: World) -> None:
    world.serve_peer("8080", "8081")
    policy = world.policy(ALLOW_ONE)
    got = world.probe(policy, "10.99.0.2:8080", "10.99.0.3:8080", "10.99.0.2:8081",
                      "10.213.0.1:22", "10.99.0.2:8080/udp")
    assert got == {"10.99.0.2:8080": "ok",
                   # refused at once (tcp reset / icmp admin-prohibited), never a hang
                   "10.99.0.3:8080": "ECONNREFUSED", "10.99.0.2:8081": "ECONNREFUSED",
                   "10.213.0.1:22": "ECONNREFUSED",  # the host itself, through the gateway
                   "10.99.0.2:8080/udp": "EHOSTUNREACH"}  # icmp admin-prohibited
    assert world.leftovers() == CLEAN


def test_without_egress_nothing_leaves(world: World) -> None:
    world.serve_peer("8080")
    got = world.probe(world.policy("mode: private"), "10.99.0.2:8080", "10.99.0.2:8080/udp")
    assert got == {"10.99.0.2:8080": "ECONNREFUSED", "10.99.0.2:8080/udp": "EHOSTUNREACH"}  # icmp admin-prohibited


def test_loopback_mode_has_no_route_out(world: World) -> None:
    """The contrast: without private mode the sandbox has no interface at all."""
    world.serve_peer("8080")
    got = world.probe(world.policy("mode: loopback"), "10.99.0.2:8080")
    assert got == {"10.99.0.2:8080": "ENETUNREACH"}


def _mount_wrap(tmp: Path, hosts: str, resolv: str) -> list[str]:
    """The runner in a mount namespace of its own where /etc/hosts and /etc/resolv.conf
    are the test's: names resolve from the file, no real DNS is ever asked."""
    (tmp / "hosts").write_text(hosts)
    (tmp / "resolv.conf").write_text(resolv)
    script = (f"mount --bind {tmp / 'hosts'} /etc/hosts && "
              f"mount --bind {tmp / 'resolv.conf'} /etc/resolv.conf && exec \"$@\"")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


def test_names_are_pinned_to_the_addresses_they_had_at_start(world: World) -> None:
    world.serve_peer("8080", "53")
    wrap = _mount_wrap(world.tmp, "127.0.0.1 localhost\n10.99.0.3 db.test\n",
                       "nameserver 10.99.0.2\n")
    policy = world.policy("""
mode: private
egress:
  - {to: db.test, ports: [8080]}
  - {to: dns}
""")
    got = world.probe(policy, "10.99.0.3:8080", "10.99.0.2:8080", "10.99.0.2:53/udp",
                      "10.99.0.2:53", "10.99.0.3:53", wrap=wrap)
    assert got == {"10.99.0.3:8080": "ok", "10.99.0.2:8080": "ECONNREFUSED",
                   "10.99.0.2:53/udp": "ok", "10.99.0.2:53": "ok",
                   "10.99.0.3:53": "ECONNREFUSED"}


def test_dns_on_the_hosts_loopback_is_refused_by_name(world: World) -> None:
    wrap = _mount_wrap(world.tmp, "127.0.0.1 localhost\n", "nameserver 127.0.0.53\n")
    done = world.run(world.policy("mode: private\negress: [{to: dns}]"), ["/bin/true"],
                     wrap=wrap)
    assert done.returncode == 112, done.stderr
    assert "127.0.0.53" in done.stderr and "loopback" in done.stderr
    assert world.leftovers() == CLEAN


SERVE_ONCE = f"{INSIDE}/serve_once.py"
CLIENT = """
import socket, sys, time
deadline = time.monotonic() + 20
while True:
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
            print(s.recv(16).decode().strip()); break
    except OSError:
        if time.monotonic() > deadline: raise
        time.sleep(0.1)
"""


def test_publish_reaches_the_sandbox_from_the_host_and_from_outside(world: World) -> None:
    import subprocess
    import sys

    policy = world.policy("""
mode: private
publish: ["127.0.0.1:18080:80", "10.99.0.1:18081:80"]
""")
    runner = subprocess.Popen(
        world.in_host([sys.executable, "-m", "stockade", "run", "--policy", str(policy),
                       "--bind", BIND, "--", "/usr/bin/python3", SERVE_ONCE, "80", "2"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=world.env())
    try:
        assert runner.stdout is not None and runner.stdout.readline().strip() == "listening"
        local = subprocess.run(world.in_host([sys.executable, "-c", CLIENT, "127.0.0.1", "18080"]),
                               capture_output=True, text=True, timeout=30, check=False)
        remote = subprocess.run(world.in_peer([sys.executable, "-c", CLIENT, "10.99.0.1",
                                               "18081"]),
                                capture_output=True, text=True, timeout=30, check=False)
        assert (local.stdout.strip(), remote.stdout.strip()) == ("hello", "hello"), (
            local.stderr, remote.stderr)
        assert runner.wait(timeout=30) == 0
    finally:
        runner.kill()
        runner.wait()
    assert world.leftovers() == CLEAN


def _iperf(world: World, policy: Path, *flags: str) -> float:
    import json
    import time

    for _ in range(3):  # the server may still be closing the previous test ("busy")
        done = world.run(policy, ["/usr/bin/iperf3", "-c", "10.99.0.2", "-t", "3", "-O", "1",
                                  "-J", *flags])
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        report = json.loads(done.stdout)
        if "sum_received" in report.get("end", {}):
            return float(report["end"]["sum_received"]["bits_per_second"])
        time.sleep(1)
    raise AssertionError(f"iperf3 gave no result: {report.get('error', done.stdout[-2000:])}")


def test_bandwidth_limits_hold_within_15_percent(world: World) -> None:
    import shutil
    import subprocess

    if shutil.which("iperf3") is None:
        import pytest

        pytest.skip("iperf3 is not installed (scripts/dev installs it)")
    server = subprocess.Popen(world.in_peer(["iperf3", "-s", "-B", "10.99.0.2"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    world.servers.append(server)  # type: ignore[arg-type]
    policy = world.policy("""
mode: private
egress: [{to: 10.99.0.2/32, ports: [5201], proto: tcp}]
bandwidth: {egress: 20Mbit, ingress: 40Mbit}
""")
    import time

    time.sleep(0.3)  # the server's listen()
    sent = _iperf(world, policy)  # the sandbox sends: its egress
    received = _iperf(world, policy, "-R")  # the peer sends: the sandbox's ingress
    print("RATES", sent, received)
    assert abs(sent - 20e6) / 20e6 <= 0.15, sent
    assert abs(received - 40e6) / 40e6 <= 0.15, received
    assert world.leftovers() == CLEAN


LOOP = """
import sys
import stockade
for _ in range(int(sys.argv[2])):
    result = stockade.run(["/bin/true"], policy=sys.argv[1])
    assert result.exit_code == 0, result
print("done")
"""


def test_nothing_is_left_after_200_runs(world: World) -> None:
    import subprocess
    import sys

    policy = world.policy("""
mode: private
egress: [{to: 10.99.0.0/24, ports: [8080]}]
publish: ["127.0.0.1:18080:80"]
bandwidth: {egress: 10Mbit, ingress: 10Mbit}
""")
    done = subprocess.run(world.in_host([sys.executable, "-c", LOOP, str(policy), "200"]),
                          capture_output=True, text=True, env=world.env(), timeout=300,
                          check=False)
    assert done.stdout.strip() == "done", done.stderr[-3000:]
    assert world.leftovers() == CLEAN


def _wait_for(predicate: object, what: str) -> None:
    import time

    deadline = time.monotonic() + 20
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_killed_runner_is_cleaned_by_gc_and_by_the_next_run(world: World) -> None:
    import signal
    import subprocess
    import sys

    policy = world.policy("""
mode: private
egress: [{to: 10.99.0.2/32, ports: [8080]}]
bandwidth: {egress: 10Mbit}
""")
    for cleaner in ("gc", "next run"):
        runner = subprocess.Popen(
            world.in_host([sys.executable, "-m", "stockade", "run", "--policy", str(policy),
                           "--", "/bin/sleep", "60"]), env=world.env())
        try:
            _wait_for(lambda: world.leftovers()["tables"], "the jail's nft table")
            _wait_for(lambda: "stockade0" in world.leftovers()["links"], "the jail's veth")
            # nsenter exec()s: the runner is the process we started
            runner.send_signal(signal.SIGKILL)
            runner.wait()
        finally:
            runner.kill()
            runner.wait()
        left = world.leftovers()
        assert left["tables"] == ["table", "inet", "stockade_0"], left  # the kill left it
        assert "stockade0i" in left["links"] and left["forwarding"] == "1", left  # type: ignore[operator]
        if cleaner == "gc":
            done = world.stockade("gc")
            assert done.returncode == 0 and "slot 0" in done.stdout, done.stderr
        else:
            done = world.run(policy, ["/bin/true"])
            assert done.returncode == 0, done.stderr
        assert world.leftovers() == CLEAN


def test_learn_records_the_peers_and_proposes_egress(world: World) -> None:
    import yaml

    world.serve_peer("8080", "8081")
    base = world.policy("""
mode: private
egress: [{to: 10.99.0.0/24, ports: [8080, 8081]}]
""", name="base")
    out = world.tmp / "learned.yaml"
    done = world.stockade("learn", "--policy", str(base), "--bind", BIND, "-o", str(out),
                          "--", "/usr/bin/python3", f"{INSIDE}/probe.py",
                          "10.99.0.2:8080", "10.99.0.3:8081")
    assert done.returncode == 0, done.stderr
    assert "10.99.0.2:8080 ok" in done.stdout and "10.99.0.3:8081 ok" in done.stdout
    net = yaml.safe_load(out.read_text())["network"]
    assert net["egress"] == [{"to": "10.99.0.2", "ports": [8080]},
                             {"to": "10.99.0.3", "ports": [8081]}]
    assert world.leftovers() == CLEAN
