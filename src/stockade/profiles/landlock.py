"""Landlock: a ruleset description for a given ABI, applied by the runner.

What the policy says maps onto Landlock like this:
- the root (read-only or writable) is a path-beneath rule on `/`;
- `read_only`, `writable`, `tmpfs` are path-beneath rules with read / read+write rights;
- `exec`: when listed, execute is granted only there; when empty, wherever read is;
- `deny`: Landlock only grants, and rights granted on a directory hold for everything
  below it, so a deny under a readable root cannot be expressed: it is reported in
  `dropped` (AppArmor/SELinux enforce it, `explain` says so);
- `network.bind`: ABI >= 4 handles TCP bind, one port rule per listed port. No `bind`
  key means binding is not restricted (the policy did not speak about it).
- scoping (ABI >= 6): signals are always scoped, and so are abstract unix sockets unless
  `network.host_abstract_sockets` grants them: the payload can neither signal nor
  connect to an abstract socket of a process outside the sandbox (with `network.mode:
  host` it shares the host's abstract namespace: X11, D-Bus, containerd-shim sockets).
  Inside the sandbox both keep working (same domain).
Rights the policy has no words for (ioctl on devices, TCP connect) are not handled, so
Landlock does not restrict them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.policy.paths import subtree_prefix, validate_filesystem
from stockade.profiles.base import Artifact, Artifacts, Enforcement


class FsAccess(enum.IntFlag):
    """LANDLOCK_ACCESS_FS_* (linux/landlock.h)."""

    EXECUTE = 1 << 0
    WRITE_FILE = 1 << 1
    READ_FILE = 1 << 2
    READ_DIR = 1 << 3
    REMOVE_DIR = 1 << 4
    REMOVE_FILE = 1 << 5
    MAKE_CHAR = 1 << 6
    MAKE_DIR = 1 << 7
    MAKE_REG = 1 << 8
    MAKE_SOCK = 1 << 9
    MAKE_FIFO = 1 << 10
    MAKE_BLOCK = 1 << 11
    MAKE_SYM = 1 << 12
    REFER = 1 << 13  # ABI 2
    TRUNCATE = 1 << 14  # ABI 3
    IOCTL_DEV = 1 << 15  # ABI 5


class NetAccess(enum.IntFlag):
    BIND_TCP = 1 << 0  # ABI 4
    CONNECT_TCP = 1 << 1  # ABI 4


class Scope(enum.IntFlag):
    """LANDLOCK_SCOPE_* (the ruleset's `scoped` field, ABI 6): IPC to outside the domain."""

    ABSTRACT_UNIX_SOCKET = 1 << 0
    SIGNAL = 1 << 1


ABI1_FS = FsAccess((1 << 13) - 1)
# The access rights each ABI version knows (the kernel rejects unknown bits with EINVAL).
FS_BY_ABI: dict[int, FsAccess] = {
    1: ABI1_FS,
    2: ABI1_FS | FsAccess.REFER,
    3: ABI1_FS | FsAccess.REFER | FsAccess.TRUNCATE,
    4: ABI1_FS | FsAccess.REFER | FsAccess.TRUNCATE,
    5: ABI1_FS | FsAccess.REFER | FsAccess.TRUNCATE | FsAccess.IOCTL_DEV,
    6: ABI1_FS | FsAccess.REFER | FsAccess.TRUNCATE | FsAccess.IOCTL_DEV,
    7: ABI1_FS | FsAccess.REFER | FsAccess.TRUNCATE | FsAccess.IOCTL_DEV,
}
NET_BY_ABI: dict[int, NetAccess] = {i: NetAccess(0) if i < 4 else NetAccess.BIND_TCP | NetAccess.CONNECT_TCP
                                    for i in FS_BY_ABI}
SCOPE_ABI = 6
NEWEST_KNOWN_ABI = max(FS_BY_ABI)

READ = FsAccess.READ_FILE | FsAccess.READ_DIR
# Write rights: everything that changes the tree, except creating device nodes (which
# needs CAP_MKNOD anyway; a policy never asks for it).
WRITE_ABI1 = (FsAccess.WRITE_FILE | FsAccess.REMOVE_DIR | FsAccess.REMOVE_FILE | FsAccess.MAKE_DIR
              | FsAccess.MAKE_REG | FsAccess.MAKE_SOCK | FsAccess.MAKE_FIFO | FsAccess.MAKE_SYM)
WRITE = WRITE_ABI1 | FsAccess.REFER | FsAccess.TRUNCATE
# Handled = what the policy speaks about. IOCTL_DEV is not: handling it would forbid
# terminal ioctls everywhere and the policy has no key to grant them back.
POLICY_FS = READ | WRITE | FsAccess.EXECUTE | FsAccess.MAKE_CHAR | FsAccess.MAKE_BLOCK


@dataclass(frozen=True, order=True)
class PathRule:
    path: str  # a directory or file; the runner opens it O_PATH inside the new root
    access: int  # FsAccess bits, already limited to the ruleset's handled set
    source: str = ""  # the policy key it came from

    def rights(self) -> list[str]:
        return [f.name or "" for f in FsAccess if f & self.access]


@dataclass(frozen=True, order=True)
class NetPortRule:
    port: int
    access: int  # NetAccess bits


@dataclass(frozen=True)
class LandlockRuleset:
    abi: int  # the ABI this ruleset is written for (0: none)
    mode: str  # best-effort | required | off
    handled_access_fs: int
    handled_access_net: int
    path_rules: tuple[PathRule, ...]
    net_rules: tuple[NetPortRule, ...]
    dropped: list[str] = field(default_factory=list)  # what this ABI/Landlock cannot enforce
    scoped: int = 0  # Scope bits

    @property
    def enabled(self) -> bool:
        return self.abi > 0 and self.mode != "off"

    def to_json(self) -> dict[str, object]:
        return {
            "abi": self.abi,
            "mode": self.mode,
            "handled_access_fs": [f.name for f in FsAccess if f & self.handled_access_fs],
            "handled_access_net": [f.name for f in NetAccess if f & self.handled_access_net],
            "scoped": [f.name for f in Scope if f & self.scoped],
            "path_rules": [{"path": r.path, "access": r.rights(), "source": r.source}
                           for r in self.path_rules],
            "net_rules": [{"port": r.port, "access": [f.name for f in NetAccess if f & r.access]}
                          for r in self.net_rules],
            "dropped": list(self.dropped),
        }


class LandlockUnavailable(StockadeError):
    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


def landlock_rules(policy: Policy, abi: int) -> LandlockRuleset:
    """The ruleset for kernel ABI `abi` (0 = no Landlock). Pure; the runner applies it."""
    mode = policy.lsm.landlock.mode
    if mode == "off":
        return LandlockRuleset(0, mode, 0, 0, (), (), ["landlock: off in the policy"])
    if abi <= 0:
        if mode == "required":
            raise LandlockUnavailable(
                f"policy '{policy.name}': lsm.landlock.mode is 'required' but Landlock is not "
                "available on this kernel (ABI 0: not built in, not in lsm=, or disabled)")
        return LandlockRuleset(0, mode, 0, 0, (), (),
                               ["landlock: not available on this kernel; nothing enforced (best-effort)"])
    dropped: list[str] = []
    effective_abi = min(abi, NEWEST_KNOWN_ABI)
    supported_fs = int(FS_BY_ABI[effective_abi])
    handled_fs = int(POLICY_FS) & supported_fs
    for right in (FsAccess.REFER, FsAccess.TRUNCATE):
        if not right & supported_fs:
            dropped.append(f"landlock ABI {abi}: {right.name} is not handled (needs a newer ABI); "
                           "renames across directories/truncation are not restricted")
    fs = policy.filesystem
    exec_listed = bool(fs.exec)
    read = int(READ) | (0 if exec_listed else int(FsAccess.EXECUTE))
    write = read | int(WRITE)

    grants: dict[str, int] = {}
    sources: dict[str, str] = {}

    def grant(path: str, access: int, source: str) -> None:
        prefix = subtree_prefix(path)
        if prefix is None:
            dropped.append(f"{source}[{path}]: a glob Landlock cannot express (only whole "
                           "subtrees, 'DIR/**'); not enforced by Landlock")
            return
        grants[prefix] = grants.get(prefix, 0) | (access & handled_fs)
        sources.setdefault(prefix, f"{source}[{path}]")

    grant("/", write if fs.root == "writable" else read, "filesystem.root")
    if fs.root != "writable":
        # Every runtime keeps /dev writable under a read-only root (a tmpfs with null, zero,
        # tty...): writing to existing device nodes must work, creating files need not.
        grant("/dev", read | int(FsAccess.WRITE_FILE), "implicit")
    for e in fs.read_only:
        if fs.root == "writable":
            dropped.append(f"filesystem.read_only[{e.path}]: under a writable root Landlock "
                           "cannot take write access away; not enforced by Landlock")
        else:
            grant(e.path, read, "filesystem.read_only")
    for e in fs.writable:
        grant(e.path, write, "filesystem.writable")
    for e in fs.tmpfs:
        grant(e.path, write, "filesystem.tmpfs")
    for e in fs.exec:
        grant(e.path, int(READ) | int(FsAccess.EXECUTE), "filesystem.exec")
    for e in fs.deny:
        dropped.append(f"filesystem.deny[{e.path}]: Landlock only grants, and the root grants "
                       "read below '/'; not enforced by Landlock")

    handled_net = 0
    net_rules: list[NetPortRule] = []
    if policy.network.bind:
        if effective_abi >= 4:
            handled_net = int(NetAccess.BIND_TCP)
            net_rules = [NetPortRule(p, int(NetAccess.BIND_TCP)) for p in sorted(set(policy.network.bind))]
        else:
            dropped.append(f"network.bind: Landlock ABI {abi} has no network rules (needs ABI 4); "
                           "TCP bind is not restricted by Landlock")
    scoped = _scoped(policy, effective_abi, dropped)
    if abi > NEWEST_KNOWN_ABI:
        dropped.append(f"landlock ABI {abi} is newer than stockade knows ({NEWEST_KNOWN_ABI}); "
                       f"written for ABI {NEWEST_KNOWN_ABI}")
    rules = tuple(sorted(PathRule(p, a, sources[p]) for p, a in grants.items() if a))
    return LandlockRuleset(effective_abi, mode, handled_fs, handled_net, rules, tuple(net_rules),
                           dropped, scoped)


def _scoped(policy: Policy, abi: int, dropped: list[str]) -> int:
    """The IPC scopes: signals always (a sandbox has no business signalling the host);
    abstract unix sockets unless the policy grants the host's. Before ABI 6, say what
    stays open where it matters: the host's abstract sockets under `network.mode: host`,
    the host's processes without a pid namespace."""
    scoped = int(Scope.SIGNAL)
    if not policy.network.host_abstract_sockets:
        scoped |= int(Scope.ABSTRACT_UNIX_SOCKET)
    if abi >= SCOPE_ABI:
        return scoped
    if scoped & Scope.ABSTRACT_UNIX_SOCKET and policy.network.mode == "host":
        dropped.append(f"network.mode[host]: Landlock ABI {abi} cannot scope abstract unix "
                       f"sockets (needs ABI {SCOPE_ABI}); the host's abstract sockets are "
                       "reachable")
    if "pid" not in policy.namespaces:
        dropped.append(f"namespaces: no pid namespace and Landlock ABI {abi} cannot scope "
                       f"signals (needs ABI {SCOPE_ABI}); processes outside are signalable "
                       "as far as their uid allows")
    return 0


def enforcements(policy: Policy, host: HostFacts) -> list[Enforcement]:
    if policy.lsm.landlock.mode == "off" or host.landlock_abi <= 0:
        return []
    rs = landlock_rules(policy, host.landlock_abi)
    dropped_keys = " ".join(rs.dropped)
    out = []
    fs = policy.filesystem
    for section in ("read_only", "writable", "exec", "tmpfs"):
        for e in getattr(fs, section):
            key = f"filesystem.{section}[{e.path}]"
            if key not in dropped_keys:
                out.append(Enforcement(key, "landlock", "path-beneath rule"))
    out.append(Enforcement(f"filesystem.root[{fs.root}]", "landlock", "path-beneath rule on /"))
    for port in rs.net_rules:
        out.append(Enforcement(f"network.bind[{port.port}]", "landlock", "net port rule (bind_tcp)"))
    return out


def compile(policy: Policy, host: HostFacts) -> Artifacts:  # noqa: A001 - the Backend name
    validate_filesystem(policy)  # one glob language for every target (paths.py)
    import json

    rs = landlock_rules(policy, host.landlock_abi)
    return Artifacts(
        target="landlock",
        files=(Artifact(f"{policy.name}.landlock.json",
                        text=json.dumps(rs.to_json(), indent=2) + "\n",
                        description=f"Landlock ruleset for ABI {rs.abi}"),),
        enforcements=tuple(enforcements(policy, host)),
        warnings=tuple(rs.dropped),
    )
