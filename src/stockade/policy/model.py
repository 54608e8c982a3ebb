"""The resolved policy: frozen, fully merged, every name checked.

Backends and the runner only ever see these objects; the YAML edge (schema.py, layers.py,
merge/, resolve.py) is the one place that deals with raw documents.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from stockade.errors import Location


class ActionKind(enum.StrEnum):
    ALLOW = "allow"
    ERRNO = "errno"
    KILL_PROCESS = "kill"
    KILL_THREAD = "kill-thread"
    TRAP = "trap"
    LOG = "log"
    NOTIFY = "notify"


EPERM = 1
ENOSYS = 38


@dataclass(frozen=True, order=True)
class Action:
    """What seccomp does with a syscall; `errno` is set only for ERRNO."""

    kind: ActionKind
    errno: int = 0

    @property
    def is_allow(self) -> bool:
        return self.kind in (ActionKind.ALLOW, ActionKind.LOG)

    def __str__(self) -> str:
        if self.kind is ActionKind.ERRNO:
            from stockade.policy.vocab.errnos import errno_name

            if self.errno == ENOSYS:
                return "enosys"
            return f"errno:{errno_name(self.errno)}"
        return self.kind.value


ALLOW = Action(ActionKind.ALLOW)
DENY_EPERM = Action(ActionKind.ERRNO, EPERM)
DENY_ENOSYS = Action(ActionKind.ERRNO, ENOSYS)


class ArgOp(enum.StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    MASKED_EQ = "masked_eq"


@dataclass(frozen=True, order=True)
class ArgCondition:
    """One comparison on a syscall argument (64-bit, unsigned, as the kernel sees it)."""

    index: int
    op: ArgOp
    value: int
    mask: int = 0

    def holds(self, arg: int) -> bool:
        arg &= 0xFFFFFFFFFFFFFFFF
        match self.op:
            case ArgOp.EQ:
                return arg == self.value
            case ArgOp.NE:
                return arg != self.value
            case ArgOp.LT:
                return arg < self.value
            case ArgOp.LE:
                return arg <= self.value
            case ArgOp.GT:
                return arg > self.value
            case ArgOp.GE:
                return arg >= self.value
            case ArgOp.MASKED_EQ:
                return (arg & self.mask) == self.value
        raise AssertionError(self.op)


def kernel_version(text: str) -> tuple[int, int]:
    """(major, minor) of "MAJOR.MINOR" (a missing minor is 0), as a policy's `min_kernel`
    and a Docker profile's `minKernel` write it. ValueError for anything else."""
    major, minor = (text.split(".") + ["0"])[:2]
    try:
        return int(major), int(minor)
    except ValueError:
        raise ValueError(f"kernel version {text!r}: expected MAJOR.MINOR, e.g. 5.8") from None


@dataclass(frozen=True)
class Condition:
    """`when` / `unless` of a rule. None means "not constrained"."""

    arches: frozenset[str] | None = None
    caps: frozenset[str] | None = None
    min_kernel: tuple[int, int] | None = None

    def holds(self, arch: str, kept_caps: frozenset[str], kernel: tuple[int, int]) -> bool:
        """All given constraints hold (caps: every named cap is kept)."""
        if self.arches is not None and arch not in self.arches:
            return False
        if self.caps is not None and not self.caps <= kept_caps:
            return False
        return not (self.min_kernel is not None and kernel < self.min_kernel)

    def any_holds(self, arch: str, kept_caps: frozenset[str], kernel: tuple[int, int]) -> bool:
        """For `unless` (Docker's `excludes`): any one given constraint excludes the rule."""
        if self.arches is not None and arch in self.arches:
            return True
        if self.caps is not None and self.caps & kept_caps:
            return True
        return self.min_kernel is not None and kernel >= self.min_kernel


@dataclass(frozen=True)
class SyscallRule:
    """A `syscalls.rules` entry: its conditions are ANDed; rules for one syscall are ORed."""

    syscalls: tuple[str, ...]
    action: Action
    args: tuple[ArgCondition, ...] = ()
    when: Condition | None = None
    unless: Condition | None = None
    origin: Location = Location("<policy>")
    comment: str = ""

    def applies(self, arch: str, kept_caps: frozenset[str], kernel: tuple[int, int]) -> bool:
        if self.when is not None and not self.when.holds(arch, kept_caps, kernel):
            return False
        return not (self.unless is not None and self.unless.any_holds(arch, kept_caps, kernel))


@dataclass(frozen=True)
class NamedEntry:
    """A syscall named in allow/deny after group expansion, with where it came from."""

    name: str
    origin: Location
    via_group: str = ""


@dataclass(frozen=True)
class SyscallPolicy:
    default: Action
    unknown: Action
    arches: tuple[str, ...]  # resolved libseccomp arch names, e.g. ("x86_64",)
    allow: Mapping[str, NamedEntry]
    deny: Mapping[str, NamedEntry]
    rules: tuple[SyscallRule, ...]
    deny_action: Action = DENY_EPERM


@dataclass(frozen=True)
class Capabilities:
    drop: tuple[str, ...]
    add: tuple[str, ...]
    ambient: tuple[str, ...]
    kept: frozenset[str]  # CAP_* names; bounding = permitted = effective


@dataclass(frozen=True)
class PathEntry:
    path: str
    origin: Location


@dataclass(frozen=True)
class Filesystem:
    root: str  # "read-only" | "writable"
    read_only: tuple[PathEntry, ...] = ()
    writable: tuple[PathEntry, ...] = ()
    exec: tuple[PathEntry, ...] = ()
    deny: tuple[PathEntry, ...] = ()
    tmpfs: tuple[PathEntry, ...] = ()
    # host paths the runner's default view (the jail) shows read-only
    expose: tuple[PathEntry, ...] = ()


@dataclass(frozen=True, order=True)
class SocketRule:
    family: str  # unix | inet | inet6 | netlink | packet | ...
    type: str | None = None  # tcp | udp | raw | None = any


@dataclass(frozen=True, order=True)
class EgressRule:
    """One `network.egress` entry: traffic to `to` (on `ports`, by `proto`) may leave."""

    to: str  # a canonical CIDR ("10.88.0.0/16"), a host name, or "dns"
    ports: tuple[int, ...] = ()  # empty: every port (and every protocol when proto is None)
    proto: str | None = None  # tcp | udp | None = both

    @property
    def kind(self) -> str:
        """cidr | name | dns: how the runner turns `to` into addresses."""
        if self.to == "dns":
            return "dns"
        return "cidr" if "/" in self.to else "name"


@dataclass(frozen=True, order=True)
class Publish:
    """A `network.publish` entry: host_addr:host_port on the host reaches the sandbox's port."""

    host_addr: str
    host_port: int
    port: int
    proto: str = "tcp"  # tcp | udp


@dataclass(frozen=True)
class Bandwidth:
    egress_bps: int | None = None  # bits per second leaving the sandbox
    ingress_bps: int | None = None  # bits per second into it


@dataclass(frozen=True)
class Network:
    mode: str  # none | loopback | host | private
    allow: tuple[SocketRule, ...] = ()
    bind: tuple[int, ...] = ()
    allow_origin: Location | None = None
    # mode host: the payload may reach abstract unix sockets of processes outside the
    # sandbox (else Landlock scopes them, ABI 6).
    host_abstract_sockets: bool = False
    # mode private only (policy/network.py says how each is enforced)
    egress: tuple[EgressRule, ...] = ()
    publish: tuple[Publish, ...] = ()
    bandwidth: Bandwidth = Bandwidth()


@dataclass(frozen=True)
class IdMapping:
    inside: int
    outside: int
    count: int


@dataclass(frozen=True)
class User:
    uid: int = 0
    gid: int = 0
    map: str = "auto"  # auto | host | explicit
    uid_map: tuple[IdMapping, ...] = ()
    gid_map: tuple[IdMapping, ...] = ()


@dataclass(frozen=True)
class Resources:
    memory: int | None = None  # bytes
    swap: int | None = None  # bytes
    pids: int | None = None
    cpu: float | None = None  # cores
    cpu_weight: int | None = None
    io_weight: int | None = None
    # key -> the file that set it ("<preset:default>"), not part of the policy's meaning
    # (render leaves it out): a rootless run treats limits only presets set as
    # best-effort (runner.plan.without_preset_limits). New Resources start with none.
    origins: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}),
                                       compare=False)


@dataclass(frozen=True)
class AppArmor:
    mode: str  # enforce | complain


@dataclass(frozen=True)
class SELinux:
    type: str
    base: str = "container"


@dataclass(frozen=True)
class Landlock:
    mode: str  # best-effort | required | off


@dataclass(frozen=True)
class Lsm:
    apparmor: AppArmor | None = None
    selinux: SELinux | None = None
    landlock: Landlock = Landlock("best-effort")
    required: bool = False


ALL_NAMESPACES: tuple[str, ...] = ("user", "pid", "mount", "net", "ipc", "uts", "cgroup")


def _frozen_map(m: Mapping[str, int] | None = None) -> Mapping[str, int]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    syscalls: SyscallPolicy
    capabilities: Capabilities
    no_new_privileges: bool
    filesystem: Filesystem
    network: Network
    namespaces: frozenset[str]
    user: User
    resources: Resources
    rlimits: Mapping[str, int] = field(default_factory=_frozen_map)
    lsm: Lsm = Lsm()
    hostname: str | None = None
    # provenance: the files merged, first (deepest preset) to last (the policy itself)
    sources: tuple[str, ...] = ()
    digest: str = ""  # sha256 over the resolved document; keys compile caches

    @property
    def selinux_type(self) -> str:
        if self.lsm.selinux is not None:
            return self.lsm.selinux.type
        return self.name.replace("-", "_") + "_t"
