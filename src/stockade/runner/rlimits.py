"""rlimits, set in the payload before its capabilities are dropped.

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
