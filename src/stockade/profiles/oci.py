"""OCI: a config.json fragment (runtime-spec 1.0.2) to merge into a bundle's config.

`merge_into(config, fragment)` is the merge the tests use on a real `runc spec` config.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.policy.paths import has_glob, validate_filesystem
from stockade.policy.units import cpu_shares
from stockade.profiles import capabilities as caps
from stockade.profiles.base import Artifact, Artifacts, Enforcement
from stockade.profiles.registry import constituent_enforcements

OCI_VERSION = "1.0.2"
# Docker's and runc's defaults (moby oci/defaults.go): masked and read-only paths every
# container gets; the policy's deny / read_only entries are added to them.
DEFAULT_MASKED = ("/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                  "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                  "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware")
DEFAULT_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_NS_TYPES = {"user": "user", "pid": "pid", "mount": "mount", "net": "network", "ipc": "ipc",
             "uts": "uts", "cgroup": "cgroup"}
_NS_ORDER = ("pid", "network", "ipc", "uts", "mount", "cgroup", "user")
# user.map: auto, when compiling for a root-run runtime: an unused subordinate range.
# The runner picks one at run time; a static config needs a fixed one (documented).
SUBID_BASE = 100000
SUBID_COUNT = 65536
CPU_PERIOD = 100000


def selinux_label(policy: Policy) -> str:
    return f"system_u:system_r:{policy.selinux_type}:s0"


def namespaces(policy: Policy) -> list[str]:
    wanted = {_NS_TYPES[n] for n in policy.namespaces if n in _NS_TYPES}
    if policy.network.mode == "host":
        wanted.discard("network")
    if policy.user.map == "host":
        wanted.discard("user")
    return [n for n in _NS_ORDER if n in wanted]


def id_mappings(policy: Policy) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    u = policy.user
    if u.uid_map:
        uids = [{"containerID": m.inside, "hostID": m.outside, "size": m.count} for m in u.uid_map]
        gids = [{"containerID": m.inside, "hostID": m.outside, "size": m.count}
                for m in (u.gid_map or u.uid_map)]
        return uids, gids
    one = [{"containerID": 0, "hostID": SUBID_BASE, "size": SUBID_COUNT}]
    return one, copy.deepcopy(one)


def resources(policy: Policy) -> dict[str, Any]:
    r = policy.resources
    out: dict[str, Any] = {}
    memory: dict[str, int] = {}
    if r.memory is not None:
        memory["limit"] = r.memory
        if r.swap is not None:
            memory["swap"] = r.memory + r.swap  # OCI swap = memory + swap
    if memory:
        out["memory"] = memory
    if r.pids is not None:
        out["pids"] = {"limit": r.pids}
    cpu: dict[str, int] = {}
    if r.cpu is not None:
        cpu["quota"] = int(round(r.cpu * CPU_PERIOD))
        cpu["period"] = CPU_PERIOD
    if r.cpu_weight is not None:
        cpu["shares"] = cpu_shares(r.cpu_weight)
    if cpu:
        out["cpu"] = cpu
    if r.io_weight is not None:
        # v1 blkio.weight is 10..1000; cgroup v2 io.weight 1..10000 scales by 10.
        out["blockIO"] = {"weight": max(10, min(1000, r.io_weight // 10))}
    return out


def rlimits(policy: Policy) -> list[dict[str, Any]]:
    return [{"type": f"RLIMIT_{name.upper()}", "hard": value, "soft": value}
            for name, value in sorted(policy.rlimits.items())]


def fragment(policy: Policy, host: HostFacts) -> tuple[dict[str, Any], list[str]]:
    from stockade.seccomp.docker_json import oci_seccomp

    warnings: list[str] = []
    fs = policy.filesystem
    process: dict[str, Any] = {
        "user": {"uid": policy.user.uid, "gid": policy.user.gid},
        "noNewPrivileges": policy.no_new_privileges,
        "capabilities": caps.oci_capabilities(policy, host),
    }
    if policy.rlimits:
        process["rlimits"] = rlimits(policy)
    if policy.lsm.apparmor is not None:
        process["apparmorProfile"] = policy.name
    if policy.lsm.selinux is not None:
        process["selinuxLabel"] = selinux_label(policy)

    masked = set(DEFAULT_MASKED)
    for e in fs.deny:
        if has_glob(e.path):
            warnings.append(f"oci: filesystem.deny[{e.path}] is a glob; maskedPaths takes plain paths")
        else:
            masked.add(e.path)
    readonly = set(DEFAULT_READONLY) - masked
    if fs.root == "writable":
        for e in fs.read_only:
            if has_glob(e.path):
                warnings.append(f"oci: filesystem.read_only[{e.path}] is a glob; readonlyPaths takes plain paths")
            else:
                readonly.add(e.path)

    linux: dict[str, Any] = {
        "namespaces": [{"type": n} for n in namespaces(policy)],
        "maskedPaths": sorted(masked),
        "readonlyPaths": sorted(readonly),
        "resources": resources(policy),
        "seccomp": oci_seccomp(policy, host),
    }
    if "user" in namespaces(policy):
        linux["uidMappings"], linux["gidMappings"] = id_mappings(policy)
    mounts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for section, entries in (("tmpfs", fs.tmpfs), ("writable", fs.writable)):
        for e in entries:
            if has_glob(e.path):
                warnings.append(f"oci: filesystem.{section}[{e.path}] is a glob; no mount emitted")
                continue
            if (fs.root == "writable" and section == "writable") or e.path in seen:
                continue  # already writable / already a tmpfs
            seen.add(e.path)
            mounts.append({"destination": e.path, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1777"]})
            if section == "writable":
                warnings.append(f"oci: filesystem.writable[{e.path}]: a tmpfs under the read-only "
                                "root; bind a volume there for data that must persist")
    ns = namespaces(policy)
    if "user" in ns and "network" not in ns:
        # sysfs can only be mounted by the owner of the network namespace: a new user
        # namespace sharing the host's network must bind the host's /sys instead
        # (what podman does for rootless containers with host networking).
        mounts.append({"destination": "/sys", "type": "bind", "source": "/sys",
                       "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    doc: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "root": {"readonly": fs.root != "writable"},
        "process": process,
        "linux": linux,
    }
    if mounts:
        doc["mounts"] = sorted(mounts, key=lambda m: m["destination"])
    if policy.hostname:
        doc["hostname"] = policy.hostname
    return doc, warnings


def merge_into(config: dict[str, Any], frag: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `frag` into a copy of `config`: objects merge, lists and scalars replace,
    except `mounts`, where the fragment's entries replace those at the same destination."""
    out = copy.deepcopy(config)
    for key, value in frag.items():
        if key == "mounts":
            dests = {m["destination"] for m in value}
            out["mounts"] = [m for m in out.get("mounts", []) if m["destination"] not in dests] + value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_into(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def enforcements(policy: Policy, host: HostFacts) -> list[Enforcement]:
    out = [Enforcement("no_new_privileges", "oci", "process.noNewPrivileges")]
    for e in policy.filesystem.deny:
        if not has_glob(e.path):
            out.append(Enforcement(f"filesystem.deny[{e.path}]", "oci", "linux.maskedPaths"))
    if policy.filesystem.root == "writable":
        for e in policy.filesystem.read_only:
            out.append(Enforcement(f"filesystem.read_only[{e.path}]", "oci", "linux.readonlyPaths"))
    out.append(Enforcement(f"filesystem.root[{policy.filesystem.root}]", "oci", "root.readonly"))
    return out


def compile(policy: Policy, host: HostFacts) -> Artifacts:  # noqa: A001 - the Backend name
    validate_filesystem(policy)  # one glob language for every target (paths.py)
    doc, warnings = fragment(policy, host)
    notes = ["merge config.fragment.json into the bundle's config.json (objects merge, lists replace)"]
    if "apparmorProfile" in doc["process"]:
        notes.append(f"load the AppArmor profile first: stockade compile --target apparmor; "
                     f"apparmor_parser -r {policy.name}.apparmor")
    return Artifacts(
        target="oci",
        files=(Artifact("config.fragment.json", text=json.dumps(doc, indent=2, sort_keys=True) + "\n",
                        description="OCI runtime-spec config.json fragment"),),
        enforcements=tuple(enforcements(policy, host))
        + constituent_enforcements(policy, host, "oci"),
        warnings=tuple(warnings + caps.critical_warnings(policy)),
        notes=tuple(notes),
    )
