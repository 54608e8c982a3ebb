"""The policy's private-network section as plain data for the plan (and its cache).

Host names stay names here: they are resolved when each run starts (peers.py), so a
cached plan never carries yesterday's addresses.
"""

from __future__ import annotations

from stockade.runner._record import frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stockade.policy.model import Network


@frozen
class NetPolicy:
    # (to, ports, proto): to is a CIDR, a host name or "dns"; proto "" = tcp and udp
    egress: tuple[tuple[str, tuple[int, ...], str], ...] = ()
    # (host address, host port, sandbox port, proto)
    publish: tuple[tuple[str, int, int, str], ...] = ()
    egress_bps: int = 0  # 0: no limit
    ingress_bps: int = 0


def net_policy(network: Network) -> NetPolicy | None:
    """None unless the mode is private."""
    if network.mode != "private":
        return None
    bw = network.bandwidth
    return NetPolicy(
        egress=tuple((e.to, e.ports, e.proto or "") for e in network.egress),
        publish=tuple((p.host_addr, p.host_port, p.port, p.proto) for p in network.publish),
        egress_bps=bw.egress_bps or 0, ingress_bps=bw.ingress_bps or 0)
