"""The syscalls the recorder need not stop for: what an earlier policy (`learn --append`)
or the base policy (`learn --policy BASE`) already allows by name and whose details
teach nothing more. The recorder's filter lets them through without a round trip
(recorder_filter)."""

from __future__ import annotations

import dataclasses
from typing import Any

from stockade.learn.infer import Learned
from stockade.policy.model import Policy


def known_from_document(old: dict[str, Any] | None) -> list[str]:
    """Syscalls the policy document `old` allows by name, minus those whose paths,
    arguments or addresses the recorder still learns from."""
    if not old:
        return []
    from stockade.learn.supervisor import ARG_VALUES, PATH_ARGS, SOCKADDR_CALLS

    interesting = set(PATH_ARGS) | set(ARG_VALUES) | set(SOCKADDR_CALLS) | {"clone3", "execve"}
    allow = (old.get("syscalls") or {}).get("allow") or []
    return sorted(n for n in allow if isinstance(n, str) and not n.startswith("@")
                  and n not in interesting)


def known_from_policy(base: Policy) -> set[str]:
    """With --policy BASE the output lists only what BASE does not allow: syscalls BASE
    allows by name, with no rule about them, need not stop at all (their paths and
    arguments still do: known_from_document keeps those out)."""
    sc = base.syscalls
    ruled = {n for r in sc.rules for n in r.syscalls}
    allowed = [n for n in sc.allow if n not in sc.deny and n not in ruled]
    return set(known_from_document({"syscalls": {"allow": allowed}}))


def with_known(learned: Learned, known: list[str]) -> Learned:
    """The learned result with the skipped syscalls allowed again (they were not seen
    because they were not stopped)."""
    return dataclasses.replace(learned, allow=tuple(sorted(set(learned.allow) | set(known))))
