"""Compiler targets by name, imported lazily (module:function)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from stockade.errors import StockadeError
from stockade.policy.model import Policy
from stockade.profiles.base import Artifacts, HostFacts

TARGETS: dict[str, str] = {
    "seccomp-bpf": "stockade.profiles.seccomp:target_bpf",
    "seccomp-docker": "stockade.profiles.seccomp:target_docker",
    "seccomp-oci": "stockade.profiles.seccomp:target_oci",
    "apparmor": "stockade.profiles.apparmor:compile",
    "selinux": "stockade.profiles.selinux:compile",
    "capabilities": "stockade.profiles.capabilities:compile",
    "landlock": "stockade.profiles.landlock:compile",
    "docker": "stockade.profiles.docker:compile",
    "oci": "stockade.profiles.oci:compile",
    "kubernetes": "stockade.profiles.kubernetes:compile",
    "systemd": "stockade.profiles.systemd:compile",
}


def available_targets() -> list[str]:
    out = []
    for name, ref in TARGETS.items():
        module, _, func = ref.partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        if hasattr(mod, func):
            out.append(name)
    return out


def backend(name: str) -> Callable[[Policy, HostFacts], Artifacts]:
    if name not in TARGETS:
        import difflib

        close = difflib.get_close_matches(name, [*TARGETS, "all"], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise StockadeError(f"unknown target {name!r}{hint}; targets: {', '.join([*TARGETS, 'all'])}")
    module, _, func = TARGETS[name].partition(":")
    try:
        fn: Callable[[Policy, HostFacts], Artifacts] = getattr(importlib.import_module(module), func)
    except (ModuleNotFoundError, AttributeError):
        raise StockadeError(f"target {name!r} is not available in this build") from None
    return fn
