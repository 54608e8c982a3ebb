"""SELinux backend: a CIL module per policy, built from typed nodes (cil.py) and
validated in tests by the real `secilc` against the base shipped in base/base.cil.

Why a shipped base and not Debian's selinux-policy-default: that package ships only
compiled `.pp` modules and a prebuilt store, which `secilc` cannot read, and reference
policy has no udica-style container template for a module to inherit from. A small
CIL base makes the check self-contained and deterministic on any machine, and still
runs the real compiler over every type, class, permission, macro call and neverallow
of the generated module.
"""

from __future__ import annotations

from importlib import resources

from stockade.policy.model import Policy
from stockade.profiles.base import Artifact, Artifacts, Enforcement, HostFacts
from stockade.profiles.capabilities import ordered
from stockade.profiles.selinux import cil
from stockade.profiles.selinux.module import BASES, build_module, validate_selinux

__all__ = ["compile", "build_module", "validate_selinux", "template_text", "base_text"]


def template_text(base: str = "container") -> str:
    return resources.files("stockade.profiles.selinux").joinpath(
        "templates", f"{base}.cil").read_text()


def base_text() -> str:
    return resources.files("stockade.profiles.selinux").joinpath("base", "base.cil").read_text()


def enforcements(policy: Policy) -> list[Enforcement]:
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
        enforcements=tuple(enforcements(policy)),
        notes=(f"install with: {hint}",
               f"run with context system_u:system_r:{policy.selinux_type}:s0"),
    )
