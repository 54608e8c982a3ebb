"""The catalogue: one module per family, registered explicitly (order = report order)."""

from __future__ import annotations

from collections.abc import Mapping

from stockade.audit import registry
from stockade.audit.checks import (
    caps,
    cgroups,
    confinement,
    devices,
    kernelfs,
    leaks,
    mounts,
    namespaces,
    network,
    sockets,
    versions,
)
from stockade.audit.registry import Check

ALL: Mapping[str, Check] = registry.build((
    caps.CHECKS, confinement.CHECKS, namespaces.CHECKS, network.CHECKS, sockets.CHECKS,
    mounts.CHECKS, kernelfs.CHECKS, devices.CHECKS, cgroups.CHECKS, versions.CHECKS,
    leaks.CHECKS,
))
