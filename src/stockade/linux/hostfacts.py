"""HostFacts: the one record of what the machine is, and its one detector.

Compilers (profiles/) take it as an argument and read nothing of the host themselves,
so the same inputs give byte-identical artifacts (golden files pass a fixed record);
the runner plans with it; the audit reports it. Every field has a default so a test
builds the host it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from stockade.linux import host
from stockade.linux.runtimes import RuntimeInfo, runtime_info
from stockade.linux.syscall_table import native_arch

_RUNTIMES = ("runc", "crun")


@dataclass(frozen=True)
class HostFacts:
    arch: str = "x86_64"  # libseccomp arch name of the native arch
    kernel: tuple[int, int] = (6, 1)
    cap_last_cap: int = 40
    landlock_abi: int = 0  # 0: Landlock not available
    kernel_release: str = ""
    kernel_version: str = ""  # /proc/version: distro kernels name their upstream base here
    lsms: tuple[str, ...] = ()  # active, in stacking order
    apparmor_enabled: bool = False
    selinux_mode: str = "disabled"  # disabled | permissive | enforcing
    cgroup_mode: str = "none"  # v1 | hybrid | v2 | none
    # Only the audit asks for these (a subprocess per runtime); empty otherwise.
    runtimes: Mapping[str, RuntimeInfo] = field(default_factory=lambda: MappingProxyType({}))
    from_inside: bool = False  # gathered inside a container: the host's runtimes unseen

    @staticmethod
    def detect(*, runtimes: bool = False, from_inside: bool = False) -> HostFacts:
        """This machine. runtimes: also run `runc/crun --version` (never from inside a
        container, where the host's binaries are neither visible nor relevant)."""
        lsms = host.active_lsms()
        found: dict[str, RuntimeInfo] = {}
        if runtimes and not from_inside:
            for name in _RUNTIMES:
                info = runtime_info(name)
                if info is not None:
                    found[name] = info
        return HostFacts(
            arch=native_arch(),
            kernel=host.kernel(),
            cap_last_cap=host.cap_last_cap(),
            landlock_abi=host.landlock_abi(),
            kernel_release=host.kernel_release(),
            kernel_version=host.kernel_version(),
            lsms=lsms,
            apparmor_enabled="apparmor" in lsms,
            selinux_mode=host.selinux_mode(),
            cgroup_mode=host.own_cgroup_mode(),
            runtimes=MappingProxyType(found),
            from_inside=from_inside,
        )
