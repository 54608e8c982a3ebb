"""`network`: the mode (the last layer that sets it), socket families, bind ports, and the
private network's egress, publish and bandwidth; lists are unioned in order of first
mention. Checks that need the merged section run in `result`."""

from __future__ import annotations

from stockade.errors import Location, PolicyError
from stockade.policy import model as m
from stockade.policy.egress import check_private_keys, egress_rule, publish_rule, rate_bps
from stockade.policy.layers import Layer
from stockade.policy.names import suggest

_FAMILIES = {"unix", "inet", "inet6", "netlink", "packet", "vsock", "can", "bluetooth", "alg", "xdp", "key",
             "tipc", "rds", "llc", "ax25", "x25", "appletalk", "ipx", "smc", "qipcrtr", "mctp", "kcm"}
_SOCK_TYPES = {"tcp", "udp", "raw", "stream", "dgram", "seqpacket"}


def socket_rule(text: str, loc: Location) -> m.SocketRule:
    family, _, stype = text.partition(":")
    family = family.strip().lower()
    if family not in _FAMILIES:
        raise PolicyError(loc, "unknown socket family", found=repr(family),
                          expected="one of " + ", ".join(sorted(_FAMILIES)), suggestion=suggest(family, _FAMILIES))
    if stype and stype not in _SOCK_TYPES:
        raise PolicyError(loc, "unknown socket type", found=repr(stype),
                          expected="one of " + ", ".join(sorted(_SOCK_TYPES)), suggestion=suggest(stype, _SOCK_TYPES))
    return m.SocketRule(family, stype or None)


class NetworkMerger:
    def __init__(self, top: Layer) -> None:
        self._mode = "none"
        self._allow: list[m.SocketRule] = []
        self._allow_origin: Location | None = None
        self._bind: list[int] = []
        self._host_abstract: tuple[bool, Location] | None = None
        self._egress: list[m.EgressRule] = []
        self._publish: list[m.Publish] = []
        self._rates: dict[str, int] = {}
        # where a misuse of egress/publish/bandwidth is reported: the last layer using them
        self._private_origin = top.loc()

    def add(self, layer: Layer) -> None:
        n = layer.spec.network
        if n is None:
            return
        if n.mode is not None:
            self._mode = n.mode
        for i, a in enumerate(n.allow):
            rule = socket_rule(a, layer.loc("network", "allow", i))
            if rule not in self._allow:
                self._allow.append(rule)
            self._allow_origin = layer.loc("network", "allow")
        self._bind += [p for p in n.bind if p not in self._bind]
        if n.host_abstract_sockets is not None:
            self._host_abstract = (n.host_abstract_sockets, layer.loc("network", "host_abstract_sockets"))
        for i, e in enumerate(n.egress):
            out = egress_rule(e.to, e.ports, e.proto, layer.loc("network", "egress", i, "to"))
            if out not in self._egress:
                self._egress.append(out)
        for i, text in enumerate(n.publish):
            self._add_publish(publish_rule(text, layer.loc("network", "publish", i)), text,
                              layer.loc("network", "publish", i))
        if n.bandwidth is not None:
            for key in ("egress", "ingress"):
                value = getattr(n.bandwidth, key)
                if value is not None:
                    self._rates[key] = rate_bps(value, layer.loc("network", "bandwidth", key))
        if n.egress or n.publish or n.bandwidth is not None:
            self._private_origin = layer.loc("network")

    def _add_publish(self, pub: m.Publish, text: str, loc: Location) -> None:
        clash = [p for p in self._publish if (p.host_addr, p.host_port, p.proto)
                 == (pub.host_addr, pub.host_port, pub.proto) and p != pub]
        if clash:
            raise PolicyError(loc, "host port published twice", found=text,
                              expected="one sandbox port per host address and port")
        if pub not in self._publish:
            self._publish.append(pub)

    def result(self) -> m.Network:
        host_abstract = self._host_abstract
        if host_abstract is not None and host_abstract[0] and self._mode != "host":
            raise PolicyError(host_abstract[1], "host abstract sockets are only reachable "
                              "with the host's network", found=f"network.mode {self._mode}",
                              expected="network.mode host",
                              suggestion="drop network.host_abstract_sockets or use mode host")
        network = m.Network(mode=self._mode, allow=tuple(self._allow), bind=tuple(self._bind),
                            host_abstract_sockets=bool(host_abstract and host_abstract[0]),
                            allow_origin=self._allow_origin, egress=tuple(self._egress),
                            publish=tuple(self._publish),
                            bandwidth=m.Bandwidth(self._rates.get("egress"), self._rates.get("ingress")))
        check_private_keys(network, self._private_origin)
        return network
