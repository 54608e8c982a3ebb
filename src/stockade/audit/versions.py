"""Version comparison and the known-vulnerable ranges (upstream and Debian)."""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, ...]


def parse(text: str) -> Version:
    """'1.1.5+ds1' -> (1, 1, 5); '1.0.0-rc6' -> (1, 0, 0, -1, 6): an rc sorts before the release."""
    m = re.match(r"(\d+(?:\.\d+)*)(?:-?rc\.?(\d+))?", text)
    if not m:
        return ()
    nums = tuple(int(x) for x in m.group(1).split("."))
    nums = nums + (0,) * (3 - len(nums)) if len(nums) < 3 else nums
    if m.group(2) is not None:
        return nums + (-1, int(m.group(2)))
    return nums + (0,)


@dataclass(frozen=True)
class KernelCve:
    cve: str
    name: str
    introduced: Version
    fixed: tuple[Version, ...]  # first fixed version on each stable branch, newest last


# Stable-branch fix points from the upstream advisories (kernel.org / NVD).
KERNEL_CVES: tuple[KernelCve, ...] = (
    KernelCve("CVE-2016-5195", "Dirty COW", (2, 6, 22), ((4, 4, 26), (4, 7, 9), (4, 8, 3))),
    KernelCve("CVE-2022-0847", "Dirty Pipe", (5, 8, 0), ((5, 10, 102), (5, 15, 25), (5, 16, 11))),
    KernelCve("CVE-2022-0185", "fsconfig heap overflow", (5, 1, 0),
              ((5, 4, 173), (5, 10, 93), (5, 15, 16), (5, 16, 2))),
    KernelCve("CVE-2021-22555", "netfilter heap out-of-bounds write", (2, 6, 19),
              ((4, 4, 267), (4, 9, 267), (4, 14, 231), (4, 19, 188), (5, 4, 113), (5, 10, 31),
               (5, 11, 15), (5, 12, 0))),
    KernelCve("CVE-2022-0492", "cgroup v1 release_agent", (2, 6, 24),
              ((4, 9, 301), (4, 14, 266), (4, 19, 229), (5, 4, 177), (5, 10, 97), (5, 15, 20),
               (5, 16, 6), (5, 17, 0))),
    KernelCve("CVE-2024-1086", "nf_tables use-after-free", (3, 15, 0),
              ((5, 4, 269), (5, 10, 209), (5, 15, 149), (6, 1, 76), (6, 6, 15), (6, 7, 3),
               (6, 8, 0))),
)


def kernel_vulnerable(version: Version, cve: KernelCve) -> bool:
    if version[:3] < cve.introduced:
        return False
    for fixed in cve.fixed:
        if fixed[:2] == version[:2]:
            return version[:3] < fixed
    # no fix on this branch: an end-of-life branch older than the newest fix never got one
    return version[:3] < cve.fixed[-1]


def upstream_kernel(release: str, proc_version: str) -> tuple[Version, bool]:
    """The upstream version and whether it came from a distro string (backports likely)."""
    m = re.search(r"Debian (\d+\.\d+\.\d+)", proc_version) or re.search(r"Ubuntu (\d+\.\d+\.\d+)", proc_version)
    if m:
        return parse(m.group(1)), True
    distro = bool(re.search(r"-(amd64|arm64|generic|aws|azure|gcp|el\d|fc\d)", release))
    return parse(release), distro
