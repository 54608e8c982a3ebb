"""`network.mode: private` without root: pasta for the uplink, the rules inside.

An unprivileged runner cannot make a veth in the host's namespace or touch its nftables.
pasta (package passt) gives the sandbox's namespace a tap interface, eth0, copying the
host's address and routes, and carries its connections as ordinary sockets of the
runner's user. The egress rules and rate limits then live inside the sandbox's own
namespace, installed by the runner as the owner of the sandbox's user namespace before
the payload starts. That namespace belongs to the sandbox's user namespace, so the rules
hold only while the payload cannot administer it: a policy that keeps NET_ADMIN is
refused by name (plan.build_plan). pasta runs with its own forwarding from the sandbox
to the host's loopback off (-T none -U none) and its gateway mapping off (--no-map-gw):
neither may become a way around egress.

pasta outlives the sandbox when it targets a process (it quits by itself only for a
namespace bound to a file), so its pid is recorded (with its start time, against pid
reuse) under the per-user state directory and ended at the run's end, by the next
rootless run, or by `stockade gc`.
"""

from __future__ import annotations

import os
from contextlib import suppress

from stockade.runner._record import frozen
from stockade.runner.codes import runner_error
from stockade.runner.network import state
from stockade.runner.network.addressing import Held, release, state_dir, try_hold
from stockade.runner.network.peers import Allow, resolv_conf_for, resolve_peers
from stockade.runner.network.shaping import shaping_lines
from stockade.runner.network.tools import run_tool
from stockade.runner.procstat import start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stockade.runner.network.spec import NetPolicy

SANDBOX_IF = "eth0"
IFB = "eth0i"
SUBDIR = "pasta"
CAP_NET_ADMIN = 12
MAX_RUNS = 4096
SHAPED_MTU = 1500  # with network.bandwidth: packets the token buckets can hold


@frozen
class RootlessJail:
    net: NetPolicy
    held: Held  # the lock of this run's record (addresses unused)
    allows: tuple[Allow, ...]
    directory: str


def refusal(net: NetPolicy, bounding: int) -> str | None:
    """Why this policy cannot have a rootless private network, or None."""
    if bounding >> CAP_NET_ADMIN & 1:
        return ("network.mode private without root keeps its rules inside the sandbox's "
                "own namespace, where NET_ADMIN could remove them: drop NET_ADMIN from "
                "capabilities, or run as root (rules on the host side)")
    from stockade.runner.network.tools import _which

    if _which("pasta") is None:
        return ("network.mode private without root needs pasta (package passt) for the "
                "uplink; install it, or run as root")
    return None


def open_rootless(net: NetPolicy, rootfs: str, host_root: bool) -> RootlessJail:
    directory = state_dir(SUBDIR)
    sweep(directory)
    allows = resolve_peers(net, resolv_conf_for(rootfs, host_root))
    for index in range(MAX_RUNS):
        held = try_hold(directory, index)
        if held is None:
            continue
        _end_pasta(state.read_record(directory, index), _pidfile(directory, index))
        state.write_record(directory, index, {"runner_pid": os.getpid()})
        return RootlessJail(net, held, allows, directory)
    raise runner_error("namespaces", f"network: {MAX_RUNS} rootless private networks at once")


def attach_rootless(jail: RootlessJail, pid: int) -> None:
    net, index = jail.net, jail.held.slot.index
    pidfile = _pidfile(jail.directory, index)
    tcp = [f"{h}/{hp}:{p}" for h, hp, p, proto in net.publish if proto == "tcp"]
    udp = [f"{h}/{hp}:{p}" for h, hp, p, proto in net.publish if proto == "udp"]
    argv = ["pasta", "--quiet", "--config-net", "-4", "--ns-ifname", SANDBOX_IF, "--no-map-gw",
            "-T", "none", "-U", "none", "--pid", pidfile]
    if net.egress_bps or net.ingress_bps:
        # pasta's tap MTU is 65520: a token bucket smaller than one such packet drops it
        argv += ["--mtu", str(SHAPED_MTU)]
    for flag, specs in (("-t", tcp), ("-u", udp)):
        for spec in specs or ["none"]:
            argv += [flag, spec]
    run_tool([*argv, str(pid)])  # returns once the namespace is configured (then daemon)
    pasta = _read_pid(pidfile)
    if pasta is not None:
        state.write_record(jail.directory, index, {"runner_pid": os.getpid(), "pasta": pasta,
                                                   "pasta_start": start_time(pasta)})
    inside = ["nsenter", f"--user=/proc/{pid}/ns/user", f"--net=/proc/{pid}/ns/net",
              "--preserve-credentials", "--"]
    run_tool([*inside, "nft", "-f", "-"], inside_ruleset(jail.allows))
    shaping = shaping_lines(SANDBOX_IF, IFB, out_bps=net.egress_bps, in_bps=net.ingress_bps,
                            local=True)
    if net.ingress_bps:
        run_tool([*inside, "ip", "link", "add", "name", IFB, "type", "ifb"])
        run_tool([*inside, "ip", "link", "set", "dev", IFB, "up"])
    if shaping:
        run_tool([*inside, "tc", "-batch", "-"], shaping)


def close_rootless(jail: RootlessJail) -> None:
    try:
        index = jail.held.slot.index
        _end_pasta(state.read_record(jail.directory, index), _pidfile(jail.directory, index))
        state.remove_record(jail.directory, index)
    finally:
        release(jail.held)


def inside_ruleset(allows: tuple[Allow, ...]) -> str:
    """What leaves the sandbox's namespace by anything but lo: replies, the egress
    entries, then refused (a reset or admin-prohibited, as on the host side)."""
    from stockade.runner.network.nft import REJECT, _matches

    out = 'oifname != "lo"'
    rules = [f"{out} meta nfproto ipv6 drop", f"{out} ct state established,related accept"]
    rules += [f"{out} {match} accept" for a in allows for match in _matches(a)]
    rules += [f"{out} {r}" for r in REJECT]
    body = "".join(f"    {r}\n" for r in rules)
    return ("table inet stockade {\n  chain egress_filter {\n"
            "    type filter hook output priority -1; policy accept;\n" + body + "  }\n}\n")


def sweep(directory: str) -> list[str]:
    """End the pasta of every record whose run is gone."""
    ended = []
    for index in state.record_indexes(directory):
        held = try_hold(directory, index)
        if held is None:
            continue
        try:
            if _end_pasta(state.read_record(directory, index), _pidfile(directory, index)):
                ended.append(f"pasta of the killed rootless run {index}")
            state.remove_record(directory, index)
        finally:
            os.close(held.fd)
    return ended


def _pidfile(directory: str, index: int) -> str:
    return os.path.join(directory, f"{index}.pasta.pid")


def _end_pasta(record: dict[str, object] | None, pidfile: str) -> bool:
    """SIGTERM the run's pasta if that pid is still the same process: by the record
    (pid and start time), else by the pid file pasta wrote (a run killed before it
    recorded the pid; then the process must still be a pasta of this user)."""
    pid = record.get("pasta") if record else None
    if isinstance(pid, int):
        same = start_time(pid) == (record or {}).get("pasta_start")
    else:
        pid = _read_pid(pidfile)
        same = pid is not None and _is_pasta(pid)
    with suppress(FileNotFoundError):
        os.unlink(pidfile)
    if pid is None or not same:
        return False
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return False
    return True


def _is_pasta(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            comm = fh.read().strip()
        return comm.startswith(("pasta", "passt")) and os.stat(f"/proc/{pid}").st_uid == os.geteuid()
    except OSError:
        return False


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None

