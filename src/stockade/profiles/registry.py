"""The compiler targets: one record each, saying how to compile it and what enforces it.

`stockade compile` picks compilers here, `explain` / `compile --strict` build their rule
tables from the backends named here, and a composite target (docker, oci, kubernetes)
finds the records of the profiles it deploys here. Target code is named as
"module:function", never imported by this module: compiling one target loads only its
code, and any backend may import the registry without a cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.profiles.base import Artifacts, Enforcement

Compiler = Callable[[Policy, HostFacts], Artifacts]
Enforcements = Callable[[Policy, HostFacts], Sequence[Enforcement]]


@dataclass(frozen=True)
class Target:
    name: str
    compiler: str  # "module:function": (Policy, HostFacts) -> Artifacts
    backend: str  # the enforcer its own records name ("seccomp" for all three seccomp formats)
    # "module:function": (Policy, HostFacts) -> its own records, without compiling; None
    # when the records come from compiling it (seccomp's are counted while it is built)
    enforcements: str | None = None
    deploys: tuple[str, ...] = ()  # backends a deployment brings besides its own
    # LSMs a deployment references only when the policy asks for them (policy.lsm.<name>)
    deploys_if_asked: tuple[str, ...] = ()

    def compile(self, policy: Policy, host: HostFacts) -> Artifacts:
        fn: Compiler = _load(self.compiler, self.name)
        return fn(policy, host)

    def own_enforcements(self, policy: Policy, host: HostFacts) -> tuple[Enforcement, ...]:
        if self.enforcements is None:
            return self.compile(policy, host).enforcements
        fn: Enforcements = _load(self.enforcements, self.name)
        return tuple(fn(policy, host))

    def backends(self, policy: Policy) -> tuple[str, ...]:
        """Every backend a deployment of this target enforces with, its own last."""
        asked = tuple(b for b in self.deploys_if_asked if getattr(policy.lsm, b) is not None)
        return (*self.deploys, *asked, self.backend)


_P = "stockade.profiles."
_SECCOMP = "stockade.profiles.seccomp:"
_DEPLOYS = ("seccomp", "capabilities")  # what docker, oci and kubernetes deploy
_LSMS = ("apparmor", "selinux")


def _plain(name: str) -> Target:
    """A target whose module `stockade.profiles.<name>` has `compile` and `enforcements`."""
    return Target(name, f"{_P}{name}:compile", name, f"{_P}{name}:enforcements")


def _composite(name: str) -> Target:
    return Target(name, f"{_P}{name}:compile", name, f"{_P}{name}:enforcements",
                  deploys=_DEPLOYS, deploys_if_asked=_LSMS)


TARGETS: Mapping[str, Target] = MappingProxyType({t.name: t for t in (
    Target("seccomp-bpf", _SECCOMP + "target_bpf", "seccomp"),
    Target("seccomp-docker", _SECCOMP + "target_docker", "seccomp"),
    Target("seccomp-oci", _SECCOMP + "target_oci", "seccomp"),
    _plain("apparmor"),
    _plain("selinux"),
    _plain("capabilities"),
    _plain("landlock"),
    _composite("docker"),
    _composite("oci"),
    _composite("kubernetes"),
    _plain("systemd"),
)})

# backend -> a target whose own records it names (the three seccomp formats carry the same)
_BY_BACKEND: Mapping[str, Target] = MappingProxyType(
    {t.backend: t for t in reversed(tuple(TARGETS.values()))})


def _load(ref: str, target: str) -> Any:
    module, _, func = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ModuleNotFoundError, AttributeError):
        raise StockadeError(f"target {target!r} is not available in this build") from None


def target(name: str) -> Target:
    """The target called `name`; an unknown name is refused with the closest one."""
    found = TARGETS.get(name)
    if found is None:
        import difflib

        names = [*TARGETS, "all"]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise StockadeError(f"unknown target {name!r}{hint}; targets: {', '.join(names)}")
    return found


def available_targets() -> list[str]:
    """The targets whose compiler this build holds."""
    out = []
    for t in TARGETS.values():
        try:
            _load(t.compiler, t.name)
        except StockadeError:
            continue
        out.append(t.name)
    return out


def backend_enforcements(backend: str, policy: Policy, host: HostFacts) -> tuple[Enforcement, ...]:
    """The records backend `backend` (a Target.backend) carries for this policy."""
    return _BY_BACKEND[backend].own_enforcements(policy, host)


def constituent_enforcements(policy: Policy, host: HostFacts, name: str) -> tuple[Enforcement, ...]:
    """What a composite target (docker, oci, kubernetes) carries besides its own records:
    the seccomp, capability and (when the policy asks for them) LSM profiles it deploys."""
    own = TARGETS[name].backend
    return tuple(e for b in TARGETS[name].backends(policy) if b != own
                 for e in backend_enforcements(b, policy, host))
