"""Facts about the machine: kernel, LSMs, cgroup mode, runtime versions.

Gathered once per audit run; runtime versions only from the host (inside a container the
host's runc is neither visible nor relevant to what the container can do).
"""

from __future__ import annotations

import gzip
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    version: str  # upstream version as the binary reports it
    package: str = ""  # distro package version, e.g. 1.1.5+ds1-1+deb12u1
    changelog_cves: frozenset[str] = frozenset()  # CVE ids the distro changelog names


@dataclass(frozen=True)
class HostFacts:
    kernel_release: str
    kernel_version: str  # /proc/version: distro kernels name their upstream base here
    lsms: tuple[str, ...]
    apparmor_enabled: bool
    selinux_mode: str  # disabled | permissive | enforcing
    cgroup_mode: str  # v1 | hybrid | v2
    cap_last_cap: int
    runtimes: Mapping[str, RuntimeInfo] = field(default_factory=lambda: MappingProxyType({}))
    from_inside: bool = False


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def cgroup_mode(mountinfo_text: str) -> str:
    types = {line.partition(" - ")[2].split(" ", 1)[0] for line in mountinfo_text.splitlines()}
    if "cgroup" in types:
        return "hybrid" if "cgroup2" in types else "v1"
    return "v2" if "cgroup2" in types else "none"


def _lsms() -> tuple[str, ...]:
    text = _read("/sys/kernel/security/lsm")
    if text:
        return tuple(text.split(","))
    found = []
    if _read("/sys/module/apparmor/parameters/enabled") == "Y":
        found.append("apparmor")
    if os.path.exists("/sys/fs/selinux/enforce"):
        found.append("selinux")
    return tuple(found)


def _apparmor_enabled() -> bool:
    # the module parameter says it is built in and enabled; the LSM list (when securityfs
    # is mounted) says it is actually stacked
    if _read("/sys/module/apparmor/parameters/enabled") != "Y":
        return False
    listed = _read("/sys/kernel/security/lsm")
    return "apparmor" in listed.split(",") if listed else True


def _selinux_mode() -> str:
    value = _read("/sys/fs/selinux/enforce")
    return {"1": "enforcing", "0": "permissive"}.get(value, "disabled")


_VERSION = re.compile(r"version (\S+)")


def runtime_info(name: str, package: str | None = None) -> RuntimeInfo | None:
    binary = shutil.which(name)
    if binary is None:
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION.search(out)
    version = m.group(1) if m else "unknown"
    pkg_version, cves = debian_package(package or name)
    return RuntimeInfo(name, version, pkg_version, cves)


def debian_package(package: str) -> tuple[str, frozenset[str]]:
    """The installed Debian version and the CVE ids its changelog says were fixed."""
    status = _read("/var/lib/dpkg/status")
    version = ""
    for block in status.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", block, re.M) and "Status: install ok installed" in block:
            m = re.search(r"^Version: (\S+)$", block, re.M)
            version = m.group(1) if m else ""
    cves: set[str] = set()
    for path in (f"/usr/share/doc/{package}/changelog.Debian.gz",):
        try:
            with gzip.open(path, "rt", errors="replace") as fh:
                cves.update(re.findall(r"CVE-\d{4}-\d{4,7}", fh.read()))
        except OSError:
            continue
    return version, frozenset(cves)


def gather(*, inside: bool) -> HostFacts:
    last_cap = int(_read("/proc/sys/kernel/cap_last_cap") or "40")
    runtimes: dict[str, RuntimeInfo] = {}
    if not inside:
        for name in ("runc", "crun"):
            info = runtime_info(name)
            if info is not None:
                runtimes[name] = info
    return HostFacts(
        kernel_release=platform.release(),
        kernel_version=_read("/proc/version"),
        lsms=_lsms(),
        apparmor_enabled=_apparmor_enabled(),
        selinux_mode=_selinux_mode(),
        cgroup_mode=cgroup_mode(_read("/proc/self/mountinfo")),
        cap_last_cap=last_cap,
        runtimes=MappingProxyType(runtimes),
        from_inside=inside,
    )
