"""Policies for the profile tests: the shared examples, loaded with the real loader when
it is available, otherwise built directly as equivalent model objects.

The hand-built versions mirror examples/*.yaml key for key; their syscall
sets are small stand-ins (the profile backends other than seccomp never read them).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from types import MappingProxyType

from stockade.errors import Location
from stockade.policy import model as m

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"
# Every shared example: new ones are picked up as they are added (POLICY.md: examples
# must always load and compile). `built()` mirrors the three that existed first.
EXAMPLE_NAMES = tuple(sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml"))) or (
    "batch-job", "legacy-daemon", "web-api")


def _loc(name: str, key: str) -> Location:
    return Location(str(EXAMPLES_DIR / f"{name}.yaml"), key_path=key)


def _paths(name: str, key: str, *paths: str) -> tuple[m.PathEntry, ...]:
    return tuple(m.PathEntry(p, _loc(name, key)) for p in paths)


def _named(name: str, *syscalls: str) -> MappingProxyType[str, m.NamedEntry]:
    return MappingProxyType({s: m.NamedEntry(s, _loc(name, "syscalls")) for s in syscalls})


_BASIC = ("read", "write", "openat", "close", "exit_group", "execve", "brk", "mmap",
          "munmap", "mprotect", "fstat", "newfstatat", "rt_sigaction", "rt_sigreturn")


def _syscalls(name: str, default: m.Action, deny: tuple[str, ...], arches: tuple[str, ...]) -> m.SyscallPolicy:
    return m.SyscallPolicy(
        default=default,
        unknown=m.DENY_ENOSYS,
        arches=arches,
        allow=_named(name, *_BASIC),
        deny=_named(name, *deny),
        rules=(),
    )


def built(name: str) -> m.Policy:
    if name == "web-api":
        return m.Policy(
            name="web-api",
            description="A small HTTP service that serves files and talks TCP only.",
            syscalls=_syscalls(name, m.DENY_EPERM, ("ptrace", "personality", "mount", "umount2"),
                               ("x86_64",)),
            capabilities=m.Capabilities(("ALL",), ("NET_BIND_SERVICE",), (),
                                        frozenset({"CAP_NET_BIND_SERVICE"})),
            no_new_privileges=True,
            filesystem=m.Filesystem(
                root="read-only",
                writable=_paths(name, "filesystem.writable", "/tmp", "/var/cache/web"),
                deny=_paths(name, "filesystem.deny", "/proc/kcore", "/sys/firmware", "/etc/shadow"),
            ),
            network=m.Network("loopback", (m.SocketRule("unix"), m.SocketRule("inet", "tcp"),
                                           m.SocketRule("inet6", "tcp")), (8080,)),
            namespaces=frozenset(m.ALL_NAMESPACES),
            user=m.User(),
            resources=m.Resources(memory=256 * 2**20, pids=64, cpu=0.5),
            rlimits=MappingProxyType({"nofile": 1024, "core": 0}),
            lsm=m.Lsm(apparmor=m.AppArmor("enforce"), landlock=m.Landlock("best-effort")),
            hostname="web-api",
            sources=(str(EXAMPLES_DIR / "web-api.yaml"),),
        )
    if name == "legacy-daemon":
        return m.Policy(
            name="legacy-daemon",
            description="A daemon that still needs a few privileges, confined as far as it allows.",
            syscalls=_syscalls(name, m.DENY_EPERM, ("setns", "unshare"), ("x86_64", "x86", "aarch64")),
            capabilities=m.Capabilities(
                ("ALL",), ("CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE", "DAC_OVERRIDE"), (),
                frozenset({"CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_NET_BIND_SERVICE",
                           "CAP_DAC_OVERRIDE"})),
            no_new_privileges=True,
            filesystem=m.Filesystem(
                root="writable",
                read_only=_paths(name, "filesystem.read_only", "/etc", "/usr"),
                deny=_paths(name, "filesystem.deny", "/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger"),
            ),
            network=m.Network("host", (m.SocketRule("inet"), m.SocketRule("inet6"), m.SocketRule("unix"))),
            namespaces=frozenset(m.ALL_NAMESPACES),
            user=m.User(),
            resources=m.Resources(memory=2**30, pids=512),
            lsm=m.Lsm(apparmor=m.AppArmor("complain"), selinux=m.SELinux("legacy_daemon_t", "container")),
            sources=(str(EXAMPLES_DIR / "legacy-daemon.yaml"),),
        )
    if name == "batch-job":
        return m.Policy(
            name="batch-job",
            description="Untrusted batch computation; no network, no privileges, tight limits.",
            syscalls=_syscalls(name, m.Action(m.ActionKind.KILL_PROCESS), ("reboot", "ptrace"), ("x86_64",)),
            capabilities=m.Capabilities(("ALL",), (), (), frozenset()),
            no_new_privileges=True,
            filesystem=m.Filesystem(
                root="read-only",
                tmpfs=_paths(name, "filesystem.tmpfs", "/tmp"),
                deny=_paths(name, "filesystem.deny", "/proc/kcore"),
            ),
            network=m.Network("none"),
            namespaces=frozenset(m.ALL_NAMESPACES),
            user=m.User(uid=1000, gid=1000, map="auto"),
            resources=m.Resources(memory=128 * 2**20, swap=0, pids=32, cpu=1.0),
            rlimits=MappingProxyType({"nofile": 256, "core": 0, "nproc": 64}),
            lsm=m.Lsm(landlock=m.Landlock("required")),
            sources=(str(EXAMPLES_DIR / "batch-job.yaml"),),
        )
    raise KeyError(name)


@functools.cache
def example(name: str) -> m.Policy:
    """The shared example, through load_policy when the loader exists (cached: frozen)."""
    try:
        from stockade.policy.loader import load_policy
    except ImportError:
        return built(name)
    return load_policy(str(EXAMPLES_DIR / f"{name}.yaml"))


def with_fs(policy: m.Policy, **changes: object) -> m.Policy:
    return dataclasses.replace(policy, filesystem=dataclasses.replace(policy.filesystem, **changes))  # type: ignore[arg-type]
