"""Apply the Landlock ruleset (the description comes from stockade.profiles.landlock).

Runs after no_new_privs (Landlock requires it without CAP_SYS_ADMIN) and after
pivot_root, so every rule path is opened O_PATH inside the new root. The ruleset's
scopes (ABI 6) cut IPC to outside the new domain: abstract unix sockets and signals.
"""

from __future__ import annotations

import os

from stockade.linux import syscalls as L
from stockade.runner.plan import LandlockPlan


class LandlockError(Exception):
    pass


def apply(plan: LandlockPlan, extra: tuple[tuple[str, int], ...] = (),
          scoped: bool = True) -> list[str]:
    """Enforce; returns notes for rule paths missing in this root. Raises on failure.

    scoped=False: a process joining a running sandbox (`oci exec`). Its domain cannot be
    the sandbox's (domains are only inherited), so scoping would cut it off from the very
    processes it joins; it stays in their pid and network namespaces instead."""
    notes: list[str] = []
    if not plan.enabled:
        return notes
    ruleset = L.landlock_create_ruleset(plan.handled_fs, plan.handled_net, plan.abi,
                                        plan.scoped if scoped else 0)
    try:
        for path, access in plan.paths + extra:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                notes.append(f"landlock: {path} does not exist in the sandbox; rule skipped")
                continue
            try:
                if not os.path.isdir(path):
                    access &= 0b111  # files take only EXECUTE/WRITE_FILE/READ_FILE (+TRUNCATE)
                    access |= plan.handled_fs & (1 << 14) if access & 2 else 0
                L.landlock_add_path_rule(ruleset, access, fd)
            finally:
                os.close(fd)
        for port, access in plan.ports:
            L.landlock_add_port_rule(ruleset, access, port)
        L.landlock_restrict_self(ruleset)
    finally:
        os.close(ruleset)
    return notes
