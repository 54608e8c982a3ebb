"""Capability names (linux/capability.h order) and what the running kernel knows."""

from __future__ import annotations

CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBER: dict[str, int] = {name: i for i, name in enumerate(CAPABILITY_NAMES)}

# Docker's default set (moby oci/caps/defaults.go): what `default` keeps.
DOCKER_DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

# Capabilities that alone open a way out (AUDIT.md critical rows); kept ones are warned about.
CRITICAL_CAPS: frozenset[str] = frozenset({
    "CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH", "CAP_SYS_RAWIO",
    "CAP_SYS_BOOT", "CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYSLOG", "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
})


def known_capabilities(cap_last_cap: int | None = None) -> tuple[str, ...]:
    if cap_last_cap is None:
        from stockade.linux.host import cap_last_cap as running_kernel_last_cap

        cap_last_cap = running_kernel_last_cap()
    last = cap_last_cap
    return CAPABILITY_NAMES[: last + 1]


def canonical_cap(name: str) -> str | None:
    """'net_admin', 'CAP_NET_ADMIN', 'Net_Admin' -> 'CAP_NET_ADMIN'; None if unknown."""
    upper = name.strip().upper()
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    return upper if upper in CAP_NUMBER else None


def cap_mask(names: frozenset[str] | set[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAP_NUMBER[name]
    return mask
