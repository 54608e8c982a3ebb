"""rlimits: hard limits raised before the capabilities are dropped (raise_hard, in the
process that drops them), exact values set by the payload itself (apply).

This host's bounding set lacks CAP_SYS_RESOURCE, so raising a hard limit fails: that is
reported as the rlimits step failing, never ignored.
"""

from __future__ import annotations

import resource

from stockade.runner.plan import RLIMIT_NAMES


def apply(rlimits: tuple[tuple[str, int, int], ...]) -> None:
    for name, soft, hard in rlimits:
        s = resource.RLIM_INFINITY if soft == 0xFFFFFFFFFFFFFFFF else soft
        h = resource.RLIM_INFINITY if hard == 0xFFFFFFFFFFFFFFFF else hard
        try:
            resource.setrlimit(RLIMIT_NAMES[name], (s, h))
        except (OSError, ValueError) as exc:
            raise OSError(getattr(exc, "errno", 1) or 1, f"{name}={soft}/{hard}: {exc}") from exc


def raise_hard(rlimits: tuple[tuple[str, int, int], ...]) -> None:
    """Raise the hard limits the policy sets above the current ones (and only those),
    while CAP_SYS_RESOURCE may still be held; apply() later sets the exact values."""
    for name, _soft, hard in rlimits:
        res = RLIMIT_NAMES[name]
        h = resource.RLIM_INFINITY if hard == 0xFFFFFFFFFFFFFFFF else hard
        cur_soft, cur_hard = resource.getrlimit(res)
        if cur_hard == resource.RLIM_INFINITY or (h != resource.RLIM_INFINITY and h <= cur_hard):
            continue
        try:
            resource.setrlimit(res, (cur_soft, h))
        except (OSError, ValueError) as exc:
            raise OSError(getattr(exc, "errno", 1) or 1, f"{name} hard limit {hard}: {exc}") from exc
