"""`network.egress` entries -> the addresses the rules name, once, as the run starts.

A host name is resolved here (the host's resolver: /etc/hosts, then DNS) and its
addresses are pinned for the run: the rules never follow a later answer. `dns` is the
IPv4 nameservers of the resolv.conf the sandbox sees. Anything that cannot be turned
into addresses stops the run by name: a rule that silently allowed nothing, or
everything, would be worse than no start.
"""

from __future__ import annotations

import ipaddress
import os

from stockade.runner._record import frozen
from stockade.runner.codes import runner_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from stockade.runner.network.spec import NetPolicy


@frozen
class Allow:
    cidr: str  # e.g. 10.88.0.0/16, or one pinned address as /32
    ports: tuple[int, ...] = ()  # empty: every port, and every protocol if proto is ""
    proto: str = ""  # tcp | udp | "" = both
    entry: str = ""  # the policy's `to`, for describe and the state file


def resolve_peers(net: NetPolicy, resolv_conf: str,
                  lookup: Callable[[str], Sequence[str]] | None = None) -> tuple[Allow, ...]:
    out: list[Allow] = []
    for to, ports, proto in net.egress:
        if to == "dns":
            addrs = nameservers(resolv_conf)
        elif "/" in to:
            addrs = [to]
        else:
            addrs = [f"{a}/32" for a in (lookup or lookup_ipv4)(to)]
        for cidr in addrs:
            allow = Allow(cidr, ports, proto, to)
            if allow not in out:
                out.append(allow)
    return tuple(out)


def lookup_ipv4(name: str) -> list[str]:
    import socket

    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise runner_error("namespaces", f"network.egress {name!r}: cannot resolve it "
                           f"({exc}); names are resolved when the sandbox starts") from exc
    addrs = sorted({str(info[4][0]) for info in infos})
    if not addrs:
        raise runner_error("namespaces", f"network.egress {name!r}: no IPv4 address")
    return addrs


def nameservers(path: str) -> list[str]:
    """The IPv4 nameservers of `path` as /32s; refused when there is none, or when one is
    on the host's loopback (127.0.0.53 of systemd-resolved: a private network is not the
    host's loopback, so `dns` would allow nothing that works)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise runner_error("namespaces", f"network.egress dns: cannot read {path}: "
                           f"{exc.strerror}") from exc
    found: list[str] = []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                addr = ipaddress.ip_address(words[1])
            except ValueError:
                continue
            if addr.version != 4:
                continue  # the private network is IPv4 only
            if addr.is_loopback:
                raise runner_error("namespaces", f"network.egress dns: the resolver {addr} in "
                                   f"{path} is on the host's loopback, which a private "
                                   "network cannot reach; name the resolver's real address "
                                   "in egress instead")
            found.append(f"{addr}/32")
    if not found:
        raise runner_error("namespaces", f"network.egress dns: {path} names no IPv4 nameserver")
    return found


def resolv_conf_for(rootfs: str, host_root: bool) -> str:
    return "/etc/resolv.conf" if host_root else os.path.join(rootfs, "etc", "resolv.conf")
