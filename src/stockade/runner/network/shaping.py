"""network.bandwidth as tc commands on the jail's host-side devices.

Into the sandbox: a token bucket (tbf) as the root qdisc of the host's veth end, whose
egress is the sandbox's ingress. Out of the sandbox: the host end's ingress is
redirected (mirred) to the jail's own ifb device, and a tbf there shapes it; shaping,
not policing, so TCP settles at the rate instead of sawing under drops. Both are on the
host side, out of the payload's reach, like the nft rules. No cgroup is involved: on
this host's cgroup v1 net_cls/net_prio would only tag packets for rules like these, and
the device already tells the jail's traffic apart.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stockade.runner.network.addressing import Slot

LATENCY_MS = 50  # how long a packet may wait in the bucket before tbf drops it
MIN_BURST = 64 * 1024  # bytes: a few full-size packets at any rate
# Without root the buckets are on the sandbox's own eth0 (pasta's tap), and a 50 ms queue
# (62 kB at 10 Mbit) drops: TCP then falls to a tenth of the rate (measured: 1.6 of 10
# Mbit out, 6 of 50 in). Out: the sending sockets are local, and TCP small queues let
# each put up to net.ipv4.tcp_limit_output_bytes (1 MiB by default) into the qdisc
# before it waits. In: pasta writes as much as the sandbox's receive window allows at
# once, up to net.ipv4.tcp_rmem's maximum (6 MiB by default). Queues of those sizes drop
# nothing and TCP settles at the rate (within 5 %).
LOCAL_OUT_QUEUE_BYTES = 1 << 20
LOCAL_IN_QUEUE_BYTES = 6 << 20


def burst_bytes(rate_bps: int) -> int:
    """10 ms worth of the rate, at least MIN_BURST (tbf needs >= rate / HZ)."""
    return max(rate_bps // 8 // 100, MIN_BURST)


def tc_script(slot: Slot, egress_bps: int, ingress_bps: int) -> str:
    """`tc -batch -` lines for a root jail (the host's end of the veth); empty: no limit.
    The host end's egress is the sandbox's ingress, and the other way round."""
    return shaping_lines(slot.host_if, slot.ifb, out_bps=ingress_bps, in_bps=egress_bps)


def shaping_lines(dev: str, ifb: str, *, out_bps: int, in_bps: int,
                  local: bool = False) -> str:
    """tbf on what leaves `dev`; what arrives on it redirected to `ifb` and shaped there.
    `local`: `dev` is the sandbox's own interface (rootless), see LOCAL_OUT_QUEUE_BYTES."""
    lines: list[str] = []
    if out_bps:
        lines.append(_tbf(dev, out_bps, LOCAL_OUT_QUEUE_BYTES if local else 0))
    if in_bps:
        lines += [f"qdisc add dev {dev} handle ffff: ingress",
                  f"filter add dev {dev} parent ffff: protocol all u32 match u32 0 0 "
                  f"action mirred egress redirect dev {ifb}",
                  _tbf(ifb, in_bps, LOCAL_IN_QUEUE_BYTES if local else 0)]
    return "".join(line + "\n" for line in lines)


def _tbf(dev: str, rate_bps: int, queue_bytes: int) -> str:
    """queue_bytes 0: what LATENCY_MS holds at the rate."""
    burst = burst_bytes(rate_bps)
    queue = f"limit {burst + queue_bytes}" if queue_bytes else f"latency {LATENCY_MS}ms"
    return f"qdisc add dev {dev} root tbf rate {rate_bps}bit burst {burst} {queue}"
