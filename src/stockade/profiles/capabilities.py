"""Capabilities: the kept set as OCI, Docker, Kubernetes and systemd spell it.

POLICY.md: one kept set is used for bounding, permitted and effective; inheritable stays
empty; ambient is a subset of `add`, empty unless asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stockade.errors import Location, PolicyError
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.policy.vocab.capabilities import CAP_NUMBER, CRITICAL_CAPS, canonical_cap
from stockade.profiles.base import Artifact, Artifacts, Enforcement

# Numbers (linux/capability.h order) and the audit catalogue's critical list come from
# the policy vocabulary, so the loader, the backends and the audit agree on one table.
CAP_NUMBERS: dict[str, int] = CAP_NUMBER


def normalize_cap(name: str, origin: Location | None = None) -> str:
    """`net_bind_service`, `NET_BIND_SERVICE`, `CAP_NET_BIND_SERVICE` → CAP_NET_BIND_SERVICE.

    Unknown names are a PolicyError with a suggestion (never silently dropped).
    """
    full = canonical_cap(name)
    if full is not None:
        return full
    import difflib

    upper = name.strip().upper()
    close = difflib.get_close_matches(upper if upper.startswith("CAP_") else "CAP_" + upper, CAP_NUMBERS, n=1)
    raise PolicyError(
        origin or Location("<policy>", key_path="capabilities"),
        "unknown capability",
        found=repr(name),
        expected="a Linux capability name such as NET_BIND_SERVICE",
        suggestion=f"did you mean '{close[0].removeprefix('CAP_')}'?" if close else None,
    )


def validate_capabilities(names: Iterable[str], origin: Location | None = None) -> list[str]:
    """Loader hook: check every name (ALL is allowed) and return the normalized list."""
    out = []
    for n in names:
        out.append("ALL" if n.strip().upper() == "ALL" else normalize_cap(n, origin))
    return out


def ordered(caps: Iterable[str], host: HostFacts | None = None) -> list[str]:
    """Sorted by capability number; names beyond the host's cap_last_cap are dropped."""
    last = host.cap_last_cap if host is not None else max(CAP_NUMBERS.values())
    known = [normalize_cap(c) for c in caps]
    return sorted({c for c in known if CAP_NUMBERS[c] <= last}, key=CAP_NUMBERS.__getitem__)


@dataclass(frozen=True)
class CapabilitySets:
    bounding: tuple[str, ...]
    effective: tuple[str, ...]
    permitted: tuple[str, ...]
    inheritable: tuple[str, ...]
    ambient: tuple[str, ...]
    beyond_host: tuple[str, ...]  # kept names the host kernel does not know


def capability_sets(policy: Policy, host: HostFacts) -> CapabilitySets:
    kept = ordered(policy.capabilities.kept, host)
    beyond = tuple(sorted(set(map(normalize_cap, policy.capabilities.kept)) - set(kept)))
    # Ambient caps must also be permitted and inheritable (capabilities(7)); the policy
    # keeps inheritable empty unless ambient asks for it.
    ambient = tuple(c for c in ordered(policy.capabilities.ambient, host) if c in kept)
    return CapabilitySets(
        bounding=tuple(kept),
        effective=tuple(kept),
        permitted=tuple(kept),
        inheritable=ambient,
        ambient=ambient,
        beyond_host=beyond,
    )


def critical_warnings(policy: Policy) -> list[str]:
    kept = {normalize_cap(c) for c in policy.capabilities.kept}
    return [
        f"capabilities: {c} is kept; the audit catalogue rates it critical (container escape vector)"
        for c in sorted(kept & CRITICAL_CAPS, key=CAP_NUMBERS.__getitem__)
    ]


def oci_capabilities(policy: Policy, host: HostFacts) -> dict[str, list[str]]:
    s = capability_sets(policy, host)
    return {
        "bounding": list(s.bounding),
        "effective": list(s.effective),
        "permitted": list(s.permitted),
        "inheritable": list(s.inheritable),
        "ambient": list(s.ambient),
    }


def docker_flags(policy: Policy, host: HostFacts) -> list[str]:
    """`--cap-drop ALL` then one `--cap-add` per kept capability (Docker takes CAP_ names)."""
    flags = ["--cap-drop", "ALL"]
    for cap in capability_sets(policy, host).bounding:
        flags += ["--cap-add", cap]
    return flags


def kubernetes_capabilities(policy: Policy, host: HostFacts) -> dict[str, list[str]]:
    # Kubernetes (like the CRI) spells capabilities without the CAP_ prefix.
    kept = [c.removeprefix("CAP_") for c in capability_sets(policy, host).bounding]
    out: dict[str, list[str]] = {"drop": ["ALL"]}
    if kept:
        out["add"] = kept
    return out


def systemd_lines(policy: Policy, host: HostFacts) -> list[tuple[str, str]]:
    s = capability_sets(policy, host)
    # systemd.exec(5): assigning the empty string resets the bounding set to *empty*
    # (not to "unset"), which is exactly "drop ALL" when nothing is kept.
    lines = [("CapabilityBoundingSet", " ".join(s.bounding))]
    lines.append(("AmbientCapabilities", " ".join(s.ambient)))
    return lines


def enforcements(policy: Policy, host: HostFacts) -> list[Enforcement]:
    kept = ordered(policy.capabilities.kept)
    rule = "capabilities.kept[" + ",".join(c.removeprefix("CAP_") for c in kept) + "]"
    return [Enforcement(rule, "capabilities", "bounding/effective/permitted sets")]


def compile(policy: Policy, host: HostFacts) -> Artifacts:  # noqa: A001 - the Backend name
    import json

    s = capability_sets(policy, host)
    doc = {
        "oci": oci_capabilities(policy, host),
        "docker": docker_flags(policy, host),
        "kubernetes": kubernetes_capabilities(policy, host),
        "systemd": dict(systemd_lines(policy, host)),
    }
    warnings = critical_warnings(policy)
    warnings += [
        f"capabilities: {c} is not known to this host's kernel (cap_last_cap={host.cap_last_cap}); left out"
        for c in s.beyond_host
    ]
    return Artifacts(
        target="capabilities",
        files=(
            Artifact(
                f"{policy.name}.capabilities.json",
                text=json.dumps(doc, indent=2, sort_keys=True) + "\n",
                description="the kept capability set for OCI, Docker, Kubernetes and systemd",
            ),
        ),
        enforcements=tuple(enforcements(policy, host)),
        warnings=tuple(warnings),
    )
