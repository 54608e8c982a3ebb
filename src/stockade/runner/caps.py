"""Capabilities in all five sets, and the identity change between them.

Order (runc's finalizeNamespace): drop the bounding set first (it caps what any later
execve can gain), keep permitted across setuid (KEEPCAPS), set groups/gid/uid, then set
effective/permitted/inheritable explicitly, and raise ambient caps only when the policy
asks (ambient needs the cap in inheritable too, so inheritable = ambient, else empty).
"""

from __future__ import annotations

import os

from stockade.linux import syscalls as L
from stockade.runner.plan import CapsPlan, IdentityPlan


def apply(caps: CapsPlan, ident: IdentityPlan) -> None:
    for cap in range(caps.last_cap + 1):
        if not caps.bounding >> cap & 1:
            L.prctl(L.PR_CAPBSET_DROP, cap)
    L.prctl(L.PR_SET_KEEPCAPS, 1)
    if ident.setgroups == "allow":
        os.setgroups(list(ident.groups))
    os.setresgid(ident.gid, ident.gid, ident.gid)
    os.setresuid(ident.uid, ident.uid, ident.uid)
    L.prctl(L.PR_SET_KEEPCAPS, 0)
    L.capset(caps.effective, caps.permitted, caps.inheritable)
    L.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in caps.ambient:
        L.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_RAISE, cap)


def drop_all() -> None:
    """For the init: after the payload is forked it needs no privilege at all. Empty
    permitted/effective/inheritable (ambient follows); the bounding set only limits what
    an execve gains, and the init never execs."""
    L.capset(0, 0, 0)
