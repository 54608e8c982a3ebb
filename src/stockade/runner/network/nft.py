"""The jail's nftables table: `inet stockade_<slot>` in the host's network namespace.

The sandbox's network namespace belongs to the sandbox's user namespace, so rules inside
it could be flushed by a payload that kept CAP_NET_ADMIN there. These rules live on the
host side instead, keyed by the host's end of the veth, where no capability the payload
can hold reaches:

  forward_filter, input_filter  what the sandbox sends: its own address only, IPv4 only,
                                replies, then each egress entry; everything else is
                                rejected (a TCP reset, else ICMP admin-prohibited: a
                                refused peer fails at once instead of timing out)
  forward_filter                what reaches the sandbox from elsewhere: replies and
                                published ports only
  publish_in, publish_local     DNAT of each published host address:port (arriving, and
                                from this host's own processes)
  masquerade_out                the sandbox's allowed traffic leaves as the host; local
                                connections to a loopback-published port reach the
                                sandbox from its gateway

Base chains run at priority filter - 1 (nat: dstnat - 1, srcnat - 1), ahead of the
host's own tables; their policy is accept and every rule names the jail's device, so
other traffic never meets them. The whole table is one nft transaction: it replaces a
table a killed run left in the same slot, and is deleted with one command.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from stockade.runner.network.addressing import Slot
    from stockade.runner.network.peers import Allow

FAMILY = "inet"
REJECT = ('meta l4proto tcp reject with tcp reset', 'reject with icmpx type admin-prohibited')


def ruleset(slot: Slot, allows: Sequence[Allow],
            publish: Sequence[tuple[str, int, int, str]]) -> str:
    """The nft script that (re)creates the slot's table: `nft -f -` reads it."""
    dev = f'"{slot.host_if}"'
    out_rules = [f"iifname {dev} ip saddr != {slot.sandbox_addr} drop",
                 f"iifname {dev} meta nfproto ipv6 drop",
                 f"iifname {dev} ct state established,related accept"]
    out_rules += [f"iifname {dev} {match} accept" for a in allows for match in _matches(a)]
    out_rules += [f"iifname {dev} {r}" for r in REJECT]
    forward = [*out_rules, f"oifname {dev} ct state established,related accept"]
    forward += [f"oifname {dev} ct status dnat {proto} dport {port} accept"
                for _, _, port, proto in publish]
    forward.append(f"oifname {dev} reject with icmpx type admin-prohibited")
    dnat = [f"ip daddr {host} {proto} dport {host_port} dnat ip to {slot.sandbox_addr}:{port}"
            for host, host_port, port, proto in publish]
    masq = [f"iifname {dev} oifname != {dev} masquerade"]
    if any(host.startswith("127.") for host, _, _, _ in publish):
        masq.append(f"oifname {dev} ip saddr 127.0.0.0/8 masquerade")
    name = f"{FAMILY} {slot.table}"
    lines = [f"add table {name}", f"delete table {name}", f"table {name} {{"]
    lines += _chain("forward_filter", "filter hook forward priority -1", forward)
    lines += _chain("input_filter", "filter hook input priority -1", out_rules)
    if dnat:
        lines += _chain("publish_in", "nat hook prerouting priority -101", dnat)
        lines += _chain("publish_local", "nat hook output priority -101", dnat)
    lines += _chain("masquerade_out", "nat hook postrouting priority 99", masq)
    lines.append("}")
    return "\n".join(lines) + "\n"


def delete_script(table: str) -> str:
    """Deletes the table if it is there (nft 1.0.6 has no `destroy`: add it first)."""
    return f"add table {FAMILY} {table}\ndelete table {FAMILY} {table}\n"


def _chain(name: str, hook: str, rules: Sequence[str]) -> list[str]:
    return [f"  chain {name} {{", f"    type {hook}; policy accept;",
            *(f"    {r}" for r in rules), "  }"]


def _matches(allow: Allow) -> list[str]:
    dest = f"ip daddr {allow.cidr}"
    protos = [allow.proto] if allow.proto else ["tcp", "udp"]
    if allow.ports:
        ports = ", ".join(str(p) for p in allow.ports)
        return [f"{dest} {proto} dport {{ {ports} }}" for proto in protos]
    if allow.proto:
        return [f"{dest} meta l4proto {allow.proto}"]
    return [dest]
