"""SELinux backend: a CIL module per policy, built from typed nodes (cil.py), plus the
`stockade_container` template module (templates/container.cil) it calls — udica's idea:
a domain type derived from a container base, plus allow rules for the policy's paths,
ports, sockets and capabilities.

Validation, in tests, with the real toolchain, twice:
1. `secilc` against the base shipped in base/base.cil (test_secilc.py). Why a shipped
   base: Debian's selinux-policy-default ships compiled `.pp` modules and a prebuilt
   store, which `secilc` cannot read; a small CIL base makes this check self-contained,
   fast and deterministic on any machine, and secilc still resolves every type, class,
   permission and macro call of the module and checks its neverallows.
2. `semodule -n -i` into a private copy of Debian's selinux-policy-default store
   (test_semodule_refpolicy.py): the module and template link against the full
   reference policy and the kernel policy is rebuilt. Skipped where the store is absent.
"""

from __future__ import annotations

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.policy.paths import validate_filesystem
from stockade.profiles.base import Artifact, Artifacts, Enforcement
from stockade.profiles.capabilities import ordered
from stockade.profiles.selinux import cil
from stockade.profiles.selinux.module import build_module, validate_selinux
from stockade.profiles.selinux.shipped import BASES, template_text

__all__ = ["compile", "build_module", "validate_selinux"]


def enforcements(policy: Policy, host: HostFacts) -> list[Enforcement]:
    out = []
    fs = policy.filesystem
    for section in ("read_only", "writable", "exec", "deny", "tmpfs"):
        for e in getattr(fs, section):
            out.append(Enforcement(f"filesystem.{section}[{e.path}]", "selinux",
                                   "file type (runtime labels the mount)"))
    out.append(Enforcement(f"filesystem.root[{fs.root}]", "selinux", "container file type"))
    for sock in policy.network.allow:
        key = sock.family + (f":{sock.type}" if sock.type else "")
        out.append(Enforcement(f"network.allow[{key}]", "selinux", "socket class allow"))
    for port in policy.network.bind:
        out.append(Enforcement(f"network.bind[{port}]", "selinux", "portcon + name_bind"))
    kept = ",".join(c.removeprefix("CAP_") for c in ordered(policy.capabilities.kept))
    out.append(Enforcement(f"capabilities.kept[{kept}]", "selinux", "capability class allow"))
    return out


def compile(policy: Policy, host: HostFacts) -> Artifacts:  # noqa: A001 - the Backend name
    validate_filesystem(policy)  # one glob language for every target (paths.py)
    validate_selinux(policy)
    module = build_module(policy, host)
    base = policy.lsm.selinux.base if policy.lsm.selinux is not None else "container"
    template = BASES[base]
    hint = f"semodule -i {template}.cil {module.name}.cil"
    return Artifacts(
        target="selinux",
        files=(
            Artifact(f"{module.name}.cil", text=cil.render(module),
                     description=f"SELinux CIL module for type {policy.selinux_type}"),
            Artifact(f"{template}.cil", text=template_text(base),
                     description="the container base template the module calls"),
            Artifact("INSTALL", text=hint + "\n", description="install hint"),
        ),
        enforcements=tuple(enforcements(policy, host)),
        notes=(f"install with: {hint}",
               f"run with context system_u:system_r:{policy.selinux_type}:s0"),
    )
