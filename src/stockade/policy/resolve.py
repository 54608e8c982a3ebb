"""Resolve a policy: follow `extends`, merge the layers section by section, check, freeze.

Merge rules (POLICY.md): lists are unioned, scalars are overridden by the later file; a
later file's allow of a syscall removes it from earlier deny (and the reverse). Each
section's rules live in its merger (policy/merge/); this module only composes them.
"""

from __future__ import annotations

import dataclasses
import os

from stockade.policy import model as m
from stockade.policy.layers import Layer, load_layers
from stockade.policy.merge.base import LatestValue, SectionMerger
from stockade.policy.merge.capabilities import CapabilitiesMerger
from stockade.policy.merge.filesystem import FilesystemMerger
from stockade.policy.merge.lsm import LsmMerger
from stockade.policy.merge.network import NetworkMerger
from stockade.policy.merge.resources import ResourcesMerger, RlimitsMerger
from stockade.policy.merge.syscalls import SyscallsMerger
from stockade.policy.merge.user import NamespacesMerger, UserMerger
from stockade.policy.paths import validate_filesystem
from stockade.policy.render import policy_digest


def load_policy(ref: str | os.PathLike[str]) -> m.Policy:
    """Load a policy file or preset name, follow `extends`, and return the frozen Policy."""
    return resolve(load_layers(os.fspath(ref)))


def resolve(layers: list[Layer]) -> m.Policy:
    assert layers, "at least the policy itself"
    top = layers[-1]
    syscalls = SyscallsMerger(top)
    capabilities = CapabilitiesMerger()
    no_new_privileges = LatestValue(lambda s: s.no_new_privileges, True)
    filesystem = FilesystemMerger()
    network = NetworkMerger(top)
    namespaces = NamespacesMerger()
    user = UserMerger()
    resources = ResourcesMerger()
    rlimits = RlimitsMerger()
    lsm = LsmMerger()
    hostname: LatestValue[str | None] = LatestValue(lambda s: s.hostname, None)
    # in the order a file's sections are checked, so the first mistake is the one reported
    mergers: tuple[SectionMerger, ...] = (syscalls, capabilities, no_new_privileges, filesystem, network,
                                          namespaces, user, resources, rlimits, lsm, hostname)
    for layer in layers:
        for merger in mergers:
            merger.add(layer)

    # checks that need a merged section, in this order
    syscall_policy = syscalls.result()
    capability_set = capabilities.result(top)
    network_policy = network.result()
    user_policy = user.result()
    policy = m.Policy(
        name=top.spec.name,
        description=top.spec.description,  # not merged: it describes this file
        syscalls=syscall_policy,
        capabilities=capability_set,
        no_new_privileges=no_new_privileges.value,
        filesystem=filesystem.result(),
        network=network_policy,
        namespaces=namespaces.result(network_policy, user_policy),
        user=user_policy,
        resources=resources.result(),
        rlimits=rlimits.result(),
        lsm=lsm.result(top.spec.name),
        hostname=hostname.value,
        sources=tuple(layer.doc.file for layer in layers),
    )
    # Checks that need the whole merged policy (globs the path backends must express).
    validate_filesystem(policy)
    if policy.lsm.selinux is not None:
        # only a policy that asks for SELinux pays for importing its compiler
        from stockade.profiles.selinux.module import validate_selinux

        validate_selinux(policy)
    return dataclasses.replace(policy, digest=policy_digest(policy))


__all__ = ["load_policy", "resolve"]
