"""`network.egress`, `network.publish` and `network.bandwidth`: parsed and checked.

Only `network.mode: private` gives the sandbox an interface of its own (runner/network);
these keys describe what may cross it. Each bad value is one PolicyError at its key.
"""

from __future__ import annotations

import difflib
import ipaddress
import re

from stockade.errors import Location, PolicyError
from stockade.policy import model as m

# A DNS name as RFC 1123 allows it (labels of letters, digits and inner hyphens).
_HOST_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                        r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?")
# tc's rate units (bits per second; "bps" is bytes per second, as tc reads it) and the
# Kubernetes quantity suffixes its bandwidth annotations take (bits per second).
_RATE_UNITS: dict[str, int] = {
    "bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12,
    "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
}
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)")
DNS_PORT = 53
MIN_RATE_BPS = 8_000  # below 1 kB/s one full-size packet takes over a second
MAX_RATE_BPS = 10**12  # 1 Tbit/s: tc's 64-bit rates go higher, no veth does


def egress_rule(to: str, ports: list[int], proto: str | None, loc: Location) -> m.EgressRule:
    """`to` as a canonical IPv4 CIDR, a host name, or "dns"."""
    target = to.strip()
    if target == "dns":
        if ports:
            raise PolicyError(loc, "dns means port 53", found=f"ports {ports}",
                              expected="no ports with to: dns",
                              suggestion="drop ports, or name the resolver's address")
        return m.EgressRule("dns", (DNS_PORT,), proto)
    try:
        net = ipaddress.ip_network(target, strict=False)
    except ValueError:
        net = None
    if net is not None:
        if net.version != 4:
            raise PolicyError(loc, "IPv6 egress is not supported yet", found=repr(target),
                              expected="an IPv4 address or CIDR, a host name, or dns",
                              suggestion="the private network is IPv4 only; IPv6 never leaves")
        if str(net.network_address) != target.split("/")[0]:
            raise PolicyError(loc, "CIDR has host bits set", found=repr(target),
                              expected="the network's first address",
                              suggestion=f"did you mean '{net}'?")
        return m.EgressRule(str(net), tuple(sorted(set(ports))), proto)
    if any(c.isdigit() for c in target.split(".")[-1][:1]) or not _HOST_NAME.fullmatch(target):
        close = difflib.get_close_matches(target, ["dns"], n=1)
        raise PolicyError(loc, "invalid egress target", found=repr(to),
                          expected="an IPv4 address or CIDR (10.88.0.0/16), a host name "
                          "(pypi.internal), or dns",
                          suggestion=f"did you mean '{close[0]}'?" if close else None)
    if "." not in target and difflib.get_close_matches(target.lower(), ["dns"], n=1, cutoff=0.6):
        # a one-label name is legal, but one this close to the keyword is a typo of it
        raise PolicyError(loc, "invalid egress target", found=repr(to),
                          expected="dns, or a host name with its domain",
                          suggestion="did you mean 'dns'?")
    return m.EgressRule(target.rstrip(".").lower(), tuple(sorted(set(ports))), proto)


def publish_rule(text: str, loc: Location) -> m.Publish:
    """"[HOST_ADDR:]HOST_PORT:PORT[/tcp|/udp]"; the host address defaults to 127.0.0.1
    (Docker's default is every address: here reaching further is asked for by name)."""
    spec, _, proto = text.strip().partition("/")
    proto = proto or "tcp"
    expected = '"[HOST_ADDR:]HOST_PORT:PORT[/udp]", e.g. "127.0.0.1:8080:80"'
    if proto not in ("tcp", "udp"):
        raise PolicyError(loc, "unknown publish protocol", found=repr(proto),
                          expected="tcp or udp",
                          suggestion=_close(proto, ("tcp", "udp")))
    parts = spec.split(":")
    if len(parts) == 2:
        parts.insert(0, "127.0.0.1")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise PolicyError(loc, "invalid publish entry", found=repr(text), expected=expected)
    try:
        addr = ipaddress.IPv4Address(parts[0])
    except ValueError:
        raise PolicyError(loc, "invalid publish host address", found=repr(parts[0]),
                          expected="an IPv4 address of this host, e.g. 127.0.0.1") from None
    if addr.is_unspecified:
        raise PolicyError(loc, "publish needs one host address", found=repr(parts[0]),
                          expected="an address of this host (127.0.0.1, or one interface's)",
                          suggestion="name the interface address the service is for")
    host_port, port = int(parts[1]), int(parts[2])
    for value in (host_port, port):
        if not 1 <= value <= 65535:
            raise PolicyError(loc, "port out of range", found=str(value), expected="1..65535")
    return m.Publish(str(addr), host_port, port, proto)


def rate_bps(text: str | int, loc: Location) -> int:
    """A rate in bits per second: "10Mbit", "50mbit", "1Gbit", "500kbps" (bytes), "10M"."""
    if isinstance(text, int):
        raise PolicyError(loc, "rate needs a unit", found=str(text),
                          expected='a rate such as "10Mbit" or "500kbit"')
    match = _RATE.fullmatch(text.strip())
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _RATE_UNITS:
        raise PolicyError(loc, "invalid rate", found=repr(text),
                          expected='a number with bit, kbit, mbit, gbit (or bps, kbps, '
                          'mbps: bytes), e.g. "10Mbit"',
                          suggestion=_close(unit, _RATE_UNITS) if match else None)
    bps = int(float(match.group(1)) * _RATE_UNITS[unit])
    if not MIN_RATE_BPS <= bps <= MAX_RATE_BPS:
        raise PolicyError(loc, "rate out of range", found=repr(text),
                          expected="8kbit .. 1Tbit")
    return bps


def check_private_keys(network: m.Network, origin: Location) -> None:
    """egress/publish/bandwidth only mean something on a private interface; with
    `network.allow` set, the payload must be able to make the sockets they are for."""
    used = [k for k, v in (("egress", network.egress), ("publish", network.publish),
                           ("bandwidth", network.bandwidth != m.Bandwidth())) if v]
    if used and network.mode != "private":
        raise PolicyError(origin, f"network.{used[0]} needs a private network",
                          found=f"network.mode {network.mode}", expected="network.mode private",
                          suggestion="set network.mode: private, or drop network." + used[0])
    if network.mode == "private" and network.allow and (network.egress or network.publish):
        families = {r.family for r in network.allow}
        if "inet" not in families:
            raise PolicyError(network.allow_origin or origin,
                              "network.allow has no inet sockets, so egress and publish "
                              "can never be used", found=", ".join(sorted(families)),
                              expected="inet (or inet:tcp, inet:udp) in network.allow",
                              suggestion='add "inet" to network.allow')
    if network.bind:
        for p in network.publish:
            if p.proto == "tcp" and p.port not in network.bind:
                raise PolicyError(origin, "a published port the sandbox may not bind",
                                  found=f"publish to port {p.port}, bind {list(network.bind)}",
                                  expected="every published sandbox port in network.bind",
                                  suggestion=f"add {p.port} to network.bind")


def _close(word: str, options: object) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1)  # type: ignore[call-overload]
    return f"did you mean '{close[0]}'?" if close else None
