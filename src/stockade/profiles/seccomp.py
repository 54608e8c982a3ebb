"""The seccomp targets (seccomp-bpf, seccomp-docker, seccomp-oci): the `stockade.seccomp`
outputs as artifacts, with the warnings and enforcement records that concern each.
"""

from __future__ import annotations

import json

from stockade.linux.hostfacts import HostFacts
from stockade.policy import model as m
from stockade.profiles.base import Artifact, Artifacts, Enforcement
from stockade.seccomp.arches import BIG_ENDIAN, bpf_buildable
from stockade.seccomp.docker_json import as_oci, json_profile
from stockade.seccomp.filter import CompiledFilter, compile_filter
from stockade.seccomp.plan import skipped_notes


def compile_seccomp(policy: m.Policy, host: HostFacts, only: str | None = None) -> Artifacts:
    """All three seccomp outputs, or the one named `only`, with the warnings that concern
    it. The BPF program is built whenever this machine can (building it checks the shared
    plan); a JSON output for a host of the other byte order goes without that check."""
    wants_bpf = only in (None, "seccomp.bpf")
    compiled = compile_filter(policy, host) if wants_bpf or bpf_buildable(host) else None
    docker, json_warnings = json_profile(policy, host, compiled.escalation if compiled else None)
    oci = as_oci(docker)
    enforcements = tuple(
        Enforcement(rule=f"syscalls.{kind}[{name}]", backend="seccomp", how=f"BPF {kind}")
        for kind, entries in (("allow", policy.syscalls.allow), ("deny", policy.syscalls.deny))
        for name in entries
    ) + tuple(
        Enforcement(rule=f"syscalls.rules[{','.join(r.syscalls)}]", backend="seccomp", how="BPF argument check")
        for r in policy.syscalls.rules
    ) + tuple(
        Enforcement(rule=f"network.allow[{s.family}{':' + s.type if s.type else ''}]", backend="seccomp",
                    how="socket() family/type check (EAFNOSUPPORT)")
        for s in policy.network.allow
    )
    files: tuple[Artifact, ...] = (
        Artifact("seccomp.json", text=json.dumps(docker, indent=2) + "\n",
                 description="Docker/podman: --security-opt seccomp=seccomp.json"),
        Artifact("seccomp-oci.json", text=json.dumps(oci, indent=2) + "\n",
                 description="OCI config.json linux.seccomp (runc, crun)"),
    )
    warnings: list[str] = []
    if wants_bpf and compiled is not None:
        files = (Artifact("seccomp.bpf", data=compiled.program, description=(
            f"{compiled.instructions} BPF instructions for {', '.join(compiled.arches)}")), *files)
        warnings += _bpf_warnings(policy, host, compiled)
    if only is not None:
        files = tuple(a for a in files if a.filename == only)
    if any(a.filename.endswith(".json") for a in files):
        warnings += json_warnings
    return Artifacts(target="seccomp", files=files, enforcements=enforcements,
                     warnings=tuple(warnings) + tuple(skipped_notes(policy)))


def _bpf_warnings(policy: m.Policy, host: HostFacts, compiled: CompiledFilter) -> list[str]:
    left_out = [a for a in policy.syscalls.arches if a not in compiled.arches]
    out = []
    if left_out:
        order = "big" if host.arch in BIG_ENDIAN else "little"
        out.append(f"the BPF program leaves out {', '.join(left_out)}: one program holds one byte order and "
                   f"a kernel on {host.arch} runs only {order}-endian tasks (the Docker/OCI JSON lists every "
                   "arch; compile with --arch for the others)")
    out += [f"{arch}: argument rules for {name} collide in the multiplexed socketcall()/ipc(); "
            "the stricter one is kept there" for arch, name in sorted(compiled.lossy)]
    return out


def _single(policy: m.Policy, host: HostFacts, filename: str, target: str) -> Artifacts:
    full = compile_seccomp(policy, host, only=filename)
    return Artifacts(target=target, files=full.files, enforcements=full.enforcements, warnings=full.warnings)


def target_bpf(policy: m.Policy, host: HostFacts) -> Artifacts:
    return _single(policy, host, "seccomp.bpf", "seccomp-bpf")


def target_docker(policy: m.Policy, host: HostFacts) -> Artifacts:
    return _single(policy, host, "seccomp.json", "seccomp-docker")


def target_oci(policy: m.Policy, host: HostFacts) -> Artifacts:
    return _single(policy, host, "seccomp-oci.json", "seccomp-oci")
