"""Capability names and masks (numbers from linux/capability.h)."""

from __future__ import annotations

CAP_NAMES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
CAP = {name: bit for bit, name in enumerate(CAP_NAMES)}

# Docker's default capability set (moby oci/caps/defaults.go).
DOCKER_DEFAULT = 0xA80425FB

DANGEROUS = ("SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_RAWIO", "NET_ADMIN",
             "BPF", "PERFMON", "SYSLOG", "SYS_BOOT", "SYS_TIME", "MAC_ADMIN", "MAC_OVERRIDE")


def has(mask: int, name: str) -> bool:
    return bool(mask >> CAP[name] & 1)


def names(mask: int) -> list[str]:
    out = []
    bit = 0
    while mask >> bit:
        if mask >> bit & 1:
            out.append(CAP_NAMES[bit] if bit < len(CAP_NAMES) else f"CAP_{bit}")
        bit += 1
    return out


def bits_of(names_: list[str]) -> int:
    mask = 0
    for n in names_:
        mask |= 1 << CAP[n]
    return mask
