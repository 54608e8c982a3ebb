"""Names a policy writes that more than one section checks: capabilities and architectures,
each refused with a did-you-mean."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from stockade.errors import Location, PolicyError
from stockade.linux.syscall_table import ARCH_TOKENS, canonical_arch
from stockade.policy.vocab.capabilities import CAP_NUMBER, canonical_cap


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def capability(name: str, loc: Location) -> str:
    """The canonical CAP_* name of `name` (NET_ADMIN, cap_net_admin, CAP_NET_ADMIN)."""
    cap = canonical_cap(name)
    if cap is None:
        raise PolicyError(loc, "unknown capability", found=repr(name), expected="a name like NET_ADMIN or CAP_NET_ADMIN",
                          suggestion=suggest("CAP_" + name.upper().removeprefix("CAP_"), CAP_NUMBER))
    return cap


def architecture(name: str, loc: Location) -> str:
    """The libseccomp arch name of `name` (x86_64, amd64, ...)."""
    arch = canonical_arch(name)
    if arch is None:
        raise PolicyError(loc, "unknown architecture", found=repr(name),
                          expected="one of " + ", ".join(ARCH_TOKENS) + ", native, all",
                          suggestion=suggest(name, ARCH_TOKENS))
    return arch
