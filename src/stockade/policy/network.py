"""`network.allow` as a restriction on socket(): what seccomp enforces of it.

A socket() call that the syscall rules would allow, but whose family (argument 0) or
type (the low 4 bits of argument 1) `network.allow` does not list, fails with
EAFNOSUPPORT — what the kernel itself answers for a family it lacks. An empty
`network.allow` restricts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from stockade.linux.consts import SOCK_TYPE_MASK
from stockade.policy import model as m
from stockade.policy.vocab.constants import CONSTANTS

EAFNOSUPPORT = m.Action(m.ActionKind.ERRNO, 97)
FAMILY = {"unix": "AF_UNIX", "inet": "AF_INET", "inet6": "AF_INET6", "netlink": "AF_NETLINK",
          "packet": "AF_PACKET", "vsock": "AF_VSOCK", "can": "AF_CAN", "bluetooth": "AF_BLUETOOTH",
          "alg": "AF_ALG", "xdp": "AF_XDP", "key": "AF_KEY", "tipc": "AF_TIPC", "rds": "AF_RDS",
          "llc": "AF_LLC", "ax25": "AF_AX25", "x25": "AF_X25", "appletalk": "AF_APPLETALK",
          "ipx": "AF_IPX", "smc": "AF_SMC", "qipcrtr": "AF_QIPCRTR", "mctp": "AF_MCTP", "kcm": "AF_KCM"}
SOCK_TYPE = {"tcp": 1, "stream": 1, "udp": 2, "dgram": 2, "raw": 3, "seqpacket": 5}

Term = tuple[m.ArgCondition, ...]


def _families(allow: Sequence[m.SocketRule]) -> dict[int, set[int] | None]:
    out: dict[int, set[int] | None] = {}
    for rule in allow:
        af = CONSTANTS[FAMILY[rule.family]]
        if rule.type is None:
            out[af] = None
        else:
            types = out.setdefault(af, set())
            if types is not None:
                types.add(SOCK_TYPE[rule.type])
    return out


def allowed_region(allow: Sequence[m.SocketRule]) -> list[Term]:
    """Disjoint terms (ORed) describing the socket() arguments `network.allow` permits."""
    terms: list[Term] = []
    for af, types in sorted(_families(allow).items()):
        fam = m.ArgCondition(0, m.ArgOp.EQ, af)
        if types is None:
            terms.append((fam,))
        else:
            terms += [(fam, m.ArgCondition(1, m.ArgOp.MASKED_EQ, t, SOCK_TYPE_MASK)) for t in sorted(types)]
    return terms


def socket_permitted(allow: Sequence[m.SocketRule], args: Sequence[int]) -> bool:
    if not allow:
        return True
    types = _families(allow)
    if args[0] not in types:
        return False
    wanted = types[args[0]]
    return wanted is None or (args[1] & SOCK_TYPE_MASK) in wanted
