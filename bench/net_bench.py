"""network.mode private: what the jail costs at start, in throughput and in latency.

    sudo .venv/bin/python bench/net_bench.py --rounds 11

Everything happens inside two network namespaces this script makes and deletes (a
"host" where the runner runs and a peer): no traffic leaves them; in the machine's own
namespace only docker's bridge is made (and deleted).

  start      `stockade run -- /bin/true` through the CLI, mode private vs loopback and
             `docker run --rm --network bridge IMAGE true`, same rounds interleaved: a
             private dockerd (tests/integration/engines/daemons.py, runc, a busybox image
             from a local rootfs) on a bridge of its own (BRIDGE, a test address in the
             machine's namespace, deleted at the end; dockerd changes no iptables,
             forwarding or masquerading), or the row says why not
  throughput iperf3 (3 s, TCP) from the sandbox to the host end of its veth, vs iperf3 on
             the host's loopback
  latency    1-byte TCP ping-pong, 2000 round trips: the same two paths
Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HOST, PEER = "stkbench-h", "stkbench-p"
GATEWAY = "10.213.0.1"  # the host end of slot 0 (the default pool), where a jail's route goes
PING_PONG = r"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtts = []
for _ in range(n):
    t = time.perf_counter_ns(); s.sendall(b"x"); s.recv(1); rtts.append(time.perf_counter_ns() - t)
rtts.sort()
print(rtts[len(rtts) // 2] / 1000)
"""
ECHO = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(8); srv.settimeout(120)
while True:
    c, _ = srv.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (b := c.recv(1)): c.sendall(b)
    c.close()
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def in_host(*argv: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{HOST}", *argv]


def make_world() -> None:
    sh("ip", "netns", "add", HOST)
    sh("ip", "netns", "add", PEER)
    sh("ip", "link", "add", "name", "up0", "netns", HOST, "type", "veth", "peer", "name",
       "wan0", "netns", PEER)
    for ns, cmds in ((HOST, ("addr add 10.99.0.1/24 dev up0", "link set up0 up",
                             "link set lo up", "route add default via 10.99.0.2")),
                     (PEER, ("addr add 10.99.0.2/24 dev wan0", "link set wan0 up",
                             "link set lo up"))):
        for cmd in cmds:
            sh("ip", "-n", ns, *cmd.split())


def drop_world() -> None:
    for ns in (HOST, PEER):
        sh("ip", "netns", "del", ns, check=False)


def policy(tmp: Path, name: str, network: str) -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(f"stockade: 1\nname: {name}\nextends: [default]\nnetwork:\n{network}")
    return str(path)


def timed_run(env: dict[str, str], pol: str, argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(in_host(sys.executable, "-m", "stockade", "run", "--policy", pol, "--",
                           *argv), env=env, check=True, capture_output=True)
    return (time.perf_counter() - t) * 1000


BRIDGE, BRIDGE_ADDR = "stkbenchbr0", "198.18.251.1/24"  # RFC 2544's benchmarking range


@contextlib.contextmanager
def private_docker(tmp: Path) -> Iterator[tuple[str, Callable[[], float | None]]]:
    """(what, one_run): one_run times `docker run --rm --network bridge` (None: failed)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import make_busybox_rootfs
    from tests.integration.engines.daemons import IMAGE, EngineUnavailable, dockerd

    rootfs = tmp / "docker-rootfs"
    rootfs.mkdir()
    make_busybox_rootfs(rootfs)
    if sh("ip", "link", "add", BRIDGE, "type", "bridge", check=False).returncode != 0:
        yield "cannot make a bridge for dockerd", lambda: None
        return
    try:
        sh("ip", "addr", "add", BRIDGE_ADDR, "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        with dockerd(rootfs, {}, bridge=BRIDGE) as docker:
            def one_run() -> float | None:
                t = time.perf_counter()
                done = docker("run", "--rm", "--network", "bridge", IMAGE, "true")
                return (time.perf_counter() - t) * 1000 if done.returncode == 0 else None

            yield "private dockerd, runc, `docker run --rm --network bridge IMAGE true`", one_run
    except EngineUnavailable as exc:
        yield str(exc), lambda: None
    finally:
        sh("ip", "link", "del", BRIDGE, check=False)


def iperf(env: dict[str, str], pol: str | None, target: str) -> float:
    argv = ["/usr/bin/iperf3", "-c", target, "-t", "3", "-O", "1", "-J"]
    if pol is None:
        out = subprocess.run(in_host(*argv), capture_output=True, text=True, check=True).stdout
    else:
        out = subprocess.run(in_host(sys.executable, "-m", "stockade", "run", "--policy", pol,
                                     "--", *argv), env=env, capture_output=True, text=True,
                             check=True).stdout
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def ping_pong(env: dict[str, str], pol: str | None, target: str, script: Path) -> float:
    argv = ["/usr/bin/python3", "-c", script.read_text(), target, "7007", "2000"]
    if pol is None:
        out = subprocess.run(in_host(*argv), capture_output=True, text=True, check=True).stdout
    else:
        out = subprocess.run(in_host(sys.executable, "-m", "stockade", "run", "--policy", pol,
                                     "--", *argv), env=env, capture_output=True, text=True,
                             check=True).stdout
    return float(out.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("net_bench: needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="stockade-netbench-"))
    env = dict(os.environ, STOCKADE_STATE_DIR=str(tmp / "state"),
               STOCKADE_CACHE_DIR=str(tmp / "cache"))
    servers: list[subprocess.Popen[bytes]] = []
    drop_world()
    make_world()
    try:
        private = policy(tmp, "private", "  mode: private\n")
        loopback = policy(tmp, "loopback", "  mode: loopback\n")
        measure = policy(tmp, "measure", "  mode: private\n  egress: [{to: "
                         f"{GATEWAY}/32, ports: [5201, 7007], proto: tcp}}]\n")
        for pol in (private, loopback):  # warm the plan cache
            timed_run(env, pol, ["/bin/true"])
        starts: dict[str, list[float]] = {"private": [], "loopback": []}
        docker_times: list[float | None] = []
        with private_docker(tmp) as (docker_what, docker_run):
            docker_run()  # warm: the image's first container
            for _ in range(args.rounds):
                starts["private"].append(timed_run(env, private, ["/bin/true"]))
                starts["loopback"].append(timed_run(env, loopback, ["/bin/true"]))
                docker_times.append(docker_run())
        docker_ms = None
        if docker_times and None in docker_times:
            docker_what = f"a `docker run` failed ({docker_what})"
        elif docker_times:
            docker_ms = statistics.median(t for t in docker_times if t is not None)
        servers.append(subprocess.Popen(in_host("iperf3", "-s"), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        echo = tmp / "echo.py"
        echo.write_text(ECHO)
        client = tmp / "pingpong.py"
        client.write_text(PING_PONG)
        servers.append(subprocess.Popen(in_host(sys.executable, str(echo), "7007")))
        time.sleep(0.5)
        gbit_jail = iperf(env, measure, GATEWAY)
        gbit_lo = iperf(env, None, "127.0.0.1")
        rtt_jail = ping_pong(env, measure, GATEWAY, client)
        rtt_lo = ping_pong(env, None, "127.0.0.1", client)
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        drop_world()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in starts.items()}
    print(f"`sudo .venv/bin/python bench/net_bench.py --rounds {args.rounds}` "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.1f})\n")
    print("| start to exit of /bin/true (CLI) | median ms |")
    print("|---|---:|")
    print(f"| `network.mode: private` | {med['private']:.1f} |")
    print(f"| `network.mode: loopback` | {med['loopback']:.1f} |")
    print(f"| jail's cost (private - loopback) | {med['private'] - med['loopback']:.1f} |")
    print("| docker run --network bridge | "
          + (f"{docker_ms:.1f} ({docker_what})" if docker_ms is not None
             else f"skipped: {docker_what}") + " |")
    print("\n| path | TCP throughput (iperf3, 3 s) | 1-byte round trip (median of 2000) |")
    print("|---|---:|---:|")
    print(f"| sandbox -> host end of its veth | {gbit_jail:.2f} Gbit/s | {rtt_jail:.1f} µs |")
    print(f"| host loopback | {gbit_lo:.2f} Gbit/s | {rtt_lo:.1f} µs |")
    print(f"| added by the jail | {(1 - gbit_jail / gbit_lo) * 100:.0f} % less | "
          f"+{rtt_jail - rtt_lo:.1f} µs |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
