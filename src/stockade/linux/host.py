"""What this host is, one probe per fact (HostFacts.detect gathers them all; the runner's
cache key reads the few it depends on on every run, without HostFacts' imports)."""

from __future__ import annotations

import os

from stockade.linux import consts as _c

_CAPABILITY_COUNT = 41  # CAP_CHOWN .. CAP_CHECKPOINT_RESTORE (linux/capability.h, 5.9+)


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def kernel_release() -> str:
    return os.uname().release


def kernel() -> tuple[int, int]:
    """(major, minor) of the running kernel; (0, 0) when the release does not say."""
    parts = kernel_release().split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def kernel_version() -> str:
    """/proc/version: distro kernels name their upstream base here."""
    return _read("/proc/version")


def cap_last_cap() -> int:
    try:
        return int(_read("/proc/sys/kernel/cap_last_cap"))
    except ValueError:
        return _CAPABILITY_COUNT - 1


def boot_id() -> str:
    """This boot's random id (the kernel's); "" when /proc does not say."""
    return _read("/proc/sys/kernel/random/boot_id")


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0: Landlock not available."""
    from stockade.linux import syscalls  # ctypes: not loaded for the other facts (oci_bench)

    return syscalls.landlock_abi()


def active_lsms() -> tuple[str, ...]:
    """The active LSMs in stacking order: lsm_list_modules (6.8+), else securityfs, else
    the module parameters (a container without securityfs)."""
    from stockade.linux import syscalls

    ids = syscalls.lsm_active_ids()
    if ids is not None:
        return tuple(_c.LSM_NAMES.get(i, f"lsm{i}") for i in ids)
    listed = _read("/sys/kernel/security/lsm")
    if listed:
        return tuple(listed.split(","))
    found = []
    if _read("/sys/module/apparmor/parameters/enabled") == "Y":
        found.append("apparmor")
    if os.path.exists("/sys/fs/selinux/enforce"):
        found.append("selinux")
    return tuple(found)


def selinux_mode() -> str:
    """disabled | permissive | enforcing."""
    return {"1": "enforcing", "0": "permissive"}.get(_read("/sys/fs/selinux/enforce"), "disabled")


def cgroup_mode(mountinfo_text: str) -> str:
    """v1 | hybrid | v2 | none, from a mountinfo's file-system types."""
    types = {line.partition(" - ")[2].split(" ", 1)[0] for line in mountinfo_text.splitlines()}
    if "cgroup" in types:
        return "hybrid" if "cgroup2" in types else "v1"
    return "v2" if "cgroup2" in types else "none"


def own_cgroup_mode() -> str:
    return cgroup_mode(_read("/proc/self/mountinfo"))
