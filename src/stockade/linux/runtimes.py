"""Which container runtimes the host has installed, and the CVE fixes their distro
package names (the audit's version checks)."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    version: str  # upstream version as the binary reports it
    package: str = ""  # distro package version, e.g. 1.1.5+ds1-1+deb12u1
    changelog_cves: frozenset[str] = frozenset()  # CVE ids the distro changelog names


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
    try:
        with open("/var/lib/dpkg/status") as fh:
            status = fh.read()
    except OSError:
        status = ""
    version = ""
    for block in status.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", block, re.M) and "Status: install ok installed" in block:
            m = re.search(r"^Version: (\S+)$", block, re.M)
            version = m.group(1) if m else ""
    cves: set[str] = set()
    try:
        with gzip.open(f"/usr/share/doc/{package}/changelog.Debian.gz", "rt", errors="replace") as fh:
            cves.update(re.findall(r"CVE-\d{4}-\d{4,7}", fh.read()))
    except OSError:
        pass
    return version, frozenset(cves)
