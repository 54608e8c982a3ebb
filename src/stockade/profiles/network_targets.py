"""`network.mode: private` for the targets other than the runner, and `explain --reach`.

Each target gets what it can express and a warning naming what it cannot:

  kubernetes  a NetworkPolicy (egress per entry, ingress for the published ports), the
              kubernetes.io/egress-bandwidth and ingress-bandwidth annotations, hostPort
              for publish. Host names have no NetworkPolicy form.
  systemd     IPAddressDeny=any with IPAddressAllow= per CIDR (no ports: the whole CIDR is
              reachable), SocketBindAllow= for the published ports, and
              RestrictNetworkInterfaces=lo where nothing leaves. No rates.
  docker      --network bridge and -p per publish; no egress rules, no rates.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from stockade.policy import model as m
from stockade.profiles.base import Enforcement

KUBE_DNS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
NAME_LABEL = "app.kubernetes.io/name"


def is_private(policy: m.Policy) -> bool:
    return policy.network.mode == "private"


def _protos(proto: str | None) -> list[str]:
    return [proto] if proto else ["tcp", "udp"]


def kube_quantity(bps: int) -> str:
    """bits/s as the bandwidth plugin's quantity (M = 10^6 bits/s)."""
    for suffix, unit in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bps % unit == 0:
            return f"{bps // unit}{suffix}"
    return str(bps)


# ---------------------------------------------------------------- kubernetes


def network_policy(policy: m.Policy, namespace: str, warnings: list[str]) -> dict[str, Any]:
    net = policy.network
    egress: list[dict[str, Any]] = []
    for e in net.egress:
        ports = [{"protocol": p.upper(), "port": port} for port in e.ports for p in _protos(e.proto)]
        if e.kind == "name":
            warnings.append(f"kubernetes: egress to {e.to}: a NetworkPolicy takes no host names; "
                            "add its addresses as a CIDR (or use a CNI with FQDN rules)")
            continue
        peer = KUBE_DNS if e.kind == "dns" else {"ipBlock": {"cidr": e.to}}
        rule: dict[str, Any] = {"to": [peer]}
        if ports:
            rule["ports"] = ports
        elif e.proto:
            warnings.append(f"kubernetes: egress to {e.to} over {e.proto} on every port: a "
                            "NetworkPolicy port needs a number, so every protocol is allowed")
        egress.append(rule)
    ingress = [{"ports": [{"protocol": p.proto.upper(), "port": p.port}]} for p in net.publish]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": policy.name, "namespace": namespace},
            "spec": {"podSelector": {"matchLabels": {NAME_LABEL: policy.name}},
                     "policyTypes": ["Ingress", "Egress"], "egress": egress, "ingress": ingress}}


def pod_annotations(policy: m.Policy) -> dict[str, str]:
    bw = policy.network.bandwidth
    out = {}
    if bw.egress_bps:
        out["kubernetes.io/egress-bandwidth"] = kube_quantity(bw.egress_bps)
    if bw.ingress_bps:
        out["kubernetes.io/ingress-bandwidth"] = kube_quantity(bw.ingress_bps)
    return out


def container_ports(policy: m.Policy) -> list[dict[str, Any]]:
    return [{"containerPort": p.port, "hostPort": p.host_port, "hostIP": p.host_addr,
             "protocol": p.proto.upper()} for p in policy.network.publish]


# ---------------------------------------------------------------- systemd


def systemd_directives(policy: m.Policy, warnings: list[str]) -> list[tuple[str, str]]:
    """The unit runs on the host's network: the IP filter (a cgroup BPF program) is what
    keeps it in, for both directions."""
    net = policy.network
    allow: list[str] = []
    for e in net.egress:
        if e.kind == "cidr":
            allow.append(e.to)
            if e.ports or e.proto:
                warnings.append(f"systemd: egress to {e.to}: IPAddressAllow= has no ports or "
                                "protocols; every port of it is reachable")
        else:
            what = "the resolver's address" if e.kind == "dns" else f"{e.to}'s addresses"
            warnings.append(f"systemd: egress to {e.to}: IPAddressAllow= takes addresses only; "
                            f"add {what}")
    if any(p.host_addr.startswith("127.") for p in net.publish):
        allow.append("localhost")
    if any(not p.host_addr.startswith("127.") for p in net.publish):
        warnings.append("systemd: publish on a non-loopback address: its clients' addresses "
                        "must be in IPAddressAllow=; add them")
    out = [("IPAddressDeny", "any")]
    if allow:
        out.append(("IPAddressAllow", " ".join(dict.fromkeys(allow))))
    if net.publish:
        for p in net.publish:
            if p.port != p.host_port:
                warnings.append(f"systemd: publish {p.host_port}->{p.port}: a unit binds the "
                                "host's ports itself, no mapping; it listens on "
                                f"{p.port}")
        binds = " ".join(f"{p.proto}:{p.port}" for p in net.publish)
        out += [("SocketBindAllow", binds), ("SocketBindDeny", "any")]
    if not net.egress and not net.publish:
        out.append(("RestrictNetworkInterfaces", "lo"))
    if net.bandwidth != m.Bandwidth():
        warnings.append("systemd: network.bandwidth has no directive; shape the traffic with tc")
    return out


# ---------------------------------------------------------------- docker


def docker_flags(policy: m.Policy) -> list[str]:
    net = policy.network
    if not net.egress and not net.publish:
        return ["--network", "none"]  # nothing leaves, nothing comes in: exactly that
    flags = ["--network", "bridge"]
    for p in net.publish:
        flags += ["-p", f"{p.host_addr}:{p.host_port}:{p.port}/{p.proto}"]
    return flags


def docker_warnings(policy: m.Policy) -> list[str]:
    net = policy.network
    out = []
    if net.egress or net.publish:
        out.append("docker: network.egress has no `docker run` flag: on --network bridge the "
                   "container reaches every address the host can; add DOCKER-USER iptables "
                   "rules (or use an --internal network) for what egress allows")
    if net.bandwidth != m.Bandwidth():
        out.append("docker: network.bandwidth has no `docker run` flag; shape the "
                   "container's veth with tc")
    return out


def enforcements(policy: m.Policy, target: str) -> list[Enforcement]:
    net = policy.network
    how = {"kubernetes": ("NetworkPolicy egress", "NetworkPolicy ingress + hostPort",
                          "bandwidth annotations"),
           "systemd": ("IPAddressAllow=", "SocketBindAllow=", ""),
           "docker": ("", "-p", "")}[target]
    out = []
    for e in net.egress:
        if how[0] and (e.kind == "cidr" or (target == "kubernetes" and e.kind == "dns")):
            out.append(Enforcement(f"network.egress[{e.to}]", target, how[0]))
    for p in net.publish:
        if how[1]:
            out.append(Enforcement(f"network.publish[{p.host_addr}:{p.host_port}]", target, how[1]))
    if how[2] and net.bandwidth != m.Bandwidth():
        out.append(Enforcement("network.bandwidth", target, how[2]))
    return out


# ---------------------------------------------------------------- explain --reach


@dataclass(frozen=True)
class Reach:
    verdict: str  # yes | no | only-if
    why: str


def reach(policy: m.Policy, host: str, port: int, proto: str,
          resolvers: list[str] | None = None) -> Reach:
    """Can the sandbox open a `proto` connection to host:port? From the policy alone:
    names are not resolved here (the runner resolves them when the sandbox starts)."""
    net = policy.network
    if net.allow and not any(r.family == "inet" and r.type in (None, proto, _sock(proto))
                             for r in net.allow):
        return Reach("no", f"network.allow does not let the payload open an inet {proto} socket")
    addr = _address(host)
    if net.mode == "none":
        return Reach("no", "network.mode none: no interface is up, not even lo")
    if net.mode == "loopback":
        if host == "localhost" or (addr is not None and addr.is_loopback):
            return Reach("yes", "network.mode loopback: lo inside the sandbox's own namespace "
                         "(its own services, never the host's)")
        return Reach("no", "network.mode loopback: only lo is up; nothing leaves")
    if net.mode == "host":
        return Reach("yes", "network.mode host: the host's network, with no egress rules")
    if host == "localhost" or (addr is not None and addr.is_loopback):
        return Reach("yes", "lo inside the sandbox's own namespace (never the host's)")
    if addr is not None and addr.version == 6:
        return Reach("no", "network.mode private is IPv4 only: IPv6 never leaves the "
                     "sandbox (dropped by the jail's host-side rules)")
    pending: list[str] = []
    for i, e in enumerate(net.egress):
        if (e.ports and port not in e.ports) or (e.proto and e.proto != proto):
            continue
        where = f"network.egress[{i}] ({e.to})"
        if e.kind == "cidr" and addr is not None and addr in ipaddress.ip_network(e.to):
            return Reach("yes", f"allowed by {where}")
        if e.kind == "name" and host.rstrip(".").lower() == e.to:
            return Reach("yes", f"allowed by {where}: the name is resolved when the sandbox "
                         "starts and its addresses are pinned for the run")
        if e.kind == "name" and addr is not None:
            pending.append(f"{e.to} resolves to {host} when the sandbox starts ({where})")
        if e.kind == "dns":
            if resolvers is not None and addr is not None and f"{addr}/32" in resolvers:
                return Reach("yes", f"allowed by {where}: {host} is a resolver the sandbox "
                             "is given")
            pending.append(f"{host} is a nameserver of the sandbox's resolv.conf ({where})")
    if pending:
        return Reach("only-if", "only if " + "; or ".join(pending))
    return Reach("no", "no network.egress entry allows it: refused (TCP reset or ICMP "
                 "admin-prohibited) by the jail's host-side rules")


def _sock(proto: str) -> str:
    return {"tcp": "stream", "udp": "dgram"}[proto]


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
