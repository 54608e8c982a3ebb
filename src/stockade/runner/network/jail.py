"""A private network for one run: opened before the clone, attached to the sandbox's
namespace before the payload is released, closed when the run ends.

open_jail   sweep slots killed runs left, resolve egress (names pinned now), take a
            slot, record what will be created
attach      veth pair (the sandbox's end is its eth0, with lo, its address and default
            route), the host-side nft table, tc shaping, forwarding on the uplinks
close_jail  everything removed (gc.cleanup_slot), the slot released

Any failure in attach raises RunnerError('namespaces'); the launcher's finally calls
close_jail, so a failed start leaves the host as it was.
"""

from __future__ import annotations

import json
import os

from stockade.runner._record import frozen
from stockade.runner.codes import runner_error
from stockade.runner.network import gc, state
from stockade.runner.network.addressing import (
    SLOT_PREFIX,
    Held,
    pool,
    release,
    slot_count,
    state_dir,
    try_hold,
)
from stockade.runner.network.nft import ruleset
from stockade.runner.network.peers import Allow, resolv_conf_for, resolve_peers
from stockade.runner.network.rootless import (
    RootlessJail,
    attach_rootless,
    close_rootless,
    open_rootless,
)
from stockade.runner.network.shaping import tc_script
from stockade.runner.network.tools import run_tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stockade.runner.network.spec import NetPolicy

SANDBOX_IF = "eth0"


@frozen
class Jail:
    net: NetPolicy
    held: Held
    allows: tuple[Allow, ...]
    uplinks: tuple[str, ...]  # host interfaces the sandbox's replies come back through
    directory: str


AnyJail = Jail | RootlessJail  # as root: the host side; without root: inside, via pasta


def open_jail(net: NetPolicy, rootfs: str, host_root: bool) -> AnyJail:
    if os.geteuid() != 0:
        return open_rootless(net, rootfs, host_root)
    directory = state_dir()
    gc.sweep(directory)
    allows = resolve_peers(net, resolv_conf_for(rootfs, host_root))
    held = _allocate(directory)
    try:
        uplinks = _uplinks(allows, net, held.slot.host_if)
        s = held.slot
        state.write_record(directory, s.index, {
            "slot": s.index, "runner_pid": os.getpid(), "links": [s.host_if, s.ifb],
            "table": f"inet {s.table}", "forwarding": list(uplinks),
            "egress": [[a.cidr, list(a.ports), a.proto, a.entry] for a in allows],
            "bandwidth": [net.egress_bps, net.ingress_bps]})
    except BaseException:
        release(held)
        raise
    return Jail(net, held, allows, uplinks, directory)


def attach(jail: AnyJail, pid: int) -> None:
    """Wire the sandbox whose init is `pid` (paused before its payload)."""
    if isinstance(jail, RootlessJail):
        attach_rootless(jail, pid)
        return
    s, net = jail.held.slot, jail.net
    host = [f"link add name {s.host_if} type veth peer name {SANDBOX_IF} netns {pid}",
            f"addr add {s.host_addr}/{SLOT_PREFIX} dev {s.host_if}"]
    if net.egress_bps:
        host += [f"link add name {s.ifb} type ifb", f"link set dev {s.ifb} up"]
    host.append(f"link set dev {s.host_if} up")
    run_tool(["ip", "-batch", "-"], "".join(line + "\n" for line in host))
    conf = f"/proc/sys/net/ipv%d/conf/{s.host_if}/"
    try:
        state.write_sysctl(conf % 6 + "disable_ipv6", "1")
        state.write_sysctl(conf % 4 + "forwarding", "1")
        if any(h.startswith("127.") for h, _, _, _ in net.publish):
            # lets DNAT send 127.0.0.1's packets out of this device (only this one)
            state.write_sysctl(conf % 4 + "route_localnet", "1")
    except OSError as exc:
        raise runner_error("namespaces", f"network: sysctl on {s.host_if}: {exc}") from exc
    inside = ["link set dev lo up", f"addr add {s.sandbox_addr}/{SLOT_PREFIX} dev {SANDBOX_IF}",
              f"link set dev {SANDBOX_IF} up", f"route add default via {s.host_addr}"]
    run_tool(["nsenter", f"--net=/proc/{pid}/ns/net", "--", "ip", "-batch", "-"],
             "".join(line + "\n" for line in inside))
    run_tool(["nft", "-f", "-"], ruleset(s, jail.allows, net.publish))
    shaping = tc_script(s, net.egress_bps, net.ingress_bps)
    if shaping:
        run_tool(["tc", "-batch", "-"], shaping)
    try:
        state.enable_forwarding(jail.directory, list(jail.uplinks))
        # which sandbox this is, for `stockade audit` (its netns inode)
        record = state.read_record(jail.directory, s.index) or {}
        record["netns"] = os.stat(f"/proc/{pid}/ns/net").st_ino
        state.write_record(jail.directory, s.index, record)
    except OSError as exc:
        raise runner_error("namespaces", f"network: forwarding on {jail.uplinks}: {exc}") from exc


def close_jail(jail: AnyJail) -> None:
    if isinstance(jail, RootlessJail):
        close_rootless(jail)
        return
    try:
        gc.cleanup_slot(jail.directory, jail.held)
    finally:
        release(jail.held)


def describe_lines(net: NetPolicy) -> list[str]:
    """The dry-run's lines: what the jail will allow (names are resolved at start)."""
    net_pool = pool()
    lines = [f"net jail    own veth ({SANDBOX_IF} inside) with a /{SLOT_PREFIX} of {net_pool} "
             f"({slot_count(net_pool)} slots), default route via the host, NAT out; rules "
             "in a host-side nft table"]
    for to, ports, proto in net.egress:
        where = ",".join(map(str, ports)) or "every port"
        lines.append(f"egress      {to} {proto or 'tcp+udp'} {where}"
                     + (" (resolved at start, pinned)" if "/" not in to and to != "dns" else ""))
    if not net.egress:
        lines.append("egress      nothing (no network.egress entry)")
    for host, host_port, port, proto in net.publish:
        lines.append(f"publish     {host}:{host_port} -> sandbox port {port}/{proto}")
    for key, bps in (("egress", net.egress_bps), ("ingress", net.ingress_bps)):
        if bps:
            lines.append(f"bandwidth   {key} {bps} bit/s (tbf on the host side)")
    return lines


def _allocate(directory: str) -> Held:
    for index in range(slot_count()):
        held = try_hold(directory, index)
        if held is None:
            continue
        if state.read_record(directory, index) is not None:
            gc.cleanup_slot(directory, held)  # a killed run's leftovers, in our slot
        return held
    raise runner_error("namespaces", "network: every slot of the address pool is in use; "
                       "wait for a sandbox to end or give a larger pool (STOCKADE_NET_POOL)")


def _uplinks(allows: tuple[Allow, ...], net: NetPolicy, own: str) -> tuple[str, ...]:
    """The interfaces the host routes the allowed destinations (and the published
    addresses) through: replies come back in there and must be forwarded to the jail.
    From the main routing table: every route overlapping an allowed CIDR, and the
    default routes for any part of it no other route covers."""
    import ipaddress

    devs: list[str] = []
    if allows:
        routes = json.loads(run_tool(["ip", "-j", "-4", "route", "show", "table", "main"])
                            or "[]")
        default = [r.get("dev", "") for r in routes if r.get("dst") == "default"]
        specific = [(ipaddress.IPv4Network(r["dst"] if "/" in r["dst"] else r["dst"] + "/32"),
                     r.get("dev", "")) for r in routes if r.get("dst") not in (None, "default")]
        for a in allows:
            cidr = ipaddress.IPv4Network(a.cidr)
            devs += [dev for dst, dev in specific if dst.overlaps(cidr)]
            if not any(cidr.subnet_of(dst) for dst, _ in specific):
                devs += default
    published = {h for h, _, _, _ in net.publish if not h.startswith("127.")}
    if published:  # connections to a published address arrive on the device that has it
        for iface in json.loads(run_tool(["ip", "-j", "-4", "addr", "show"]) or "[]"):
            if any(a.get("local") in published for a in iface.get("addr_info", [])):
                devs.append(iface.get("ifname", ""))
    return tuple(sorted({d for d in devs if d and d not in ("lo", own)}))
