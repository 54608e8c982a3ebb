"""The frozen plan: everything the runner will do, decided before any process exists.

`policy_part()` is the policy-derived half (cacheable: it holds the compiled seccomp
program); `build_plan()` adds the invocation (argv, env, rootfs, binds, tty). Both are
pure apart from the host facts passed in. `--dry-run` prints `describe(plan)`.
"""

from __future__ import annotations

import os

from stockade.runner import linux_consts as L
from stockade.runner._record import frozen
from stockade.runner.codes import runner_error

# runc's defaults (libcontainer/specconv/example.go): masked with /dev/null or an empty
# read-only tmpfs, so kernel state (kcore, keys, timers, firmware) stays unreadable.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/proc/scsi",
)
# ...and read-only: writing /proc/sys/kernel/core_pattern or /proc/sysrq-trigger is the
# classic way out of a container that kept write access to procfs.
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)
DEV_NODES: tuple[str, ...] = ("null", "zero", "full", "random", "urandom", "tty")
RLIMIT_NAMES: dict[str, int] = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
    "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12,
    "nice": 13, "rtprio": 14, "rttime": 15,
}
RLIM_INFINITY = 0xFFFFFFFFFFFFFFFF
# Outside range used for `map: auto` when running as root: far above systemd's
# container range (524288-1879048191) and below 2^31; preflight checks it is unused.
AUTO_RANGE_BASE = 2_000_000_000
AUTO_RANGE_COUNT = 65536
CPU_PERIOD_US = 100_000
_LL_MAKE_CHAR = 1 << 6
_LL_MAKE_BLOCK = 1 << 11


@frozen
class IdMap:
    inside: int
    outside: int
    count: int


@frozen
class IdentityPlan:
    uid: int  # identity of the payload inside
    gid: int
    userns: bool
    uid_map: tuple[IdMap, ...] = ()
    gid_map: tuple[IdMap, ...] = ()
    setgroups: str = "allow"  # allow | deny (unprivileged maps must deny, CVE-2014-8989)
    helper: str = "direct"  # direct | newuidmap
    groups: tuple[int, ...] = ()  # supplementary groups (OCI additionalGids)


@frozen
class MountOp:
    """One step of the rootfs build, in order. `src` is a host path for host binds."""

    kind: str  # root | proc | dev | sysfs | tmpfs | bind | readonly | writable | mask
    dst: str
    src: str = ""
    readonly: bool = False
    why: str = ""
    optional: bool = False  # a missing dst is skipped (masks), not an error
    # kind "fs" only (OCI mounts: mqueue, tmpfs with options): a fresh filesystem of this
    # type, its fsconfig options and extra MOUNT_ATTR_* flags.
    fstype: str = ""
    data: tuple[tuple[str, str | None], ...] = ()
    attrs: int = 0


@frozen
class Limits:
    memory: int | None = None
    swap: int | None = None
    pids: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int = CPU_PERIOD_US
    cpu_weight: int | None = None
    io_weight: int | None = None
    # OCI bundles: cpu.shares as written (no weight round trip), and the device cgroup's
    # rules in v1 syntax ("a", "c 1:3 rwm"), the first one a deny-all.
    cpu_shares: int | None = None
    devices_allow: tuple[str, ...] | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.memory, self.swap, self.pids,
                                            self.cpu_quota_us, self.cpu_weight, self.io_weight,
                                            self.cpu_shares, self.devices_allow))


@frozen
class CapsPlan:
    bounding: int
    permitted: int
    effective: int
    inheritable: int
    ambient: tuple[int, ...]
    last_cap: int


@frozen
class LandlockPlan:
    mode: str  # off | best-effort | required
    abi: int
    handled_fs: int = 0
    handled_net: int = 0
    paths: tuple[tuple[str, int], ...] = ()
    ports: tuple[tuple[int, int], ...] = ()

    @property
    def enabled(self) -> bool:
        return self.mode != "off" and self.abi > 0


@frozen
class LsmPlan:
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    required: bool = False


@frozen
class PolicyPart:
    """Everything taken from the Policy (and host facts): cacheable, plain data."""

    name: str
    digest: str
    namespaces: tuple[str, ...]
    network: str
    hostname: str | None
    fs_root: str
    fs_tmpfs: tuple[str, ...]
    fs_writable: tuple[str, ...]
    fs_read_only: tuple[str, ...]
    fs_deny: tuple[str, ...]
    user_uid: int
    user_gid: int
    user_map: str
    uid_map: tuple[IdMap, ...]
    gid_map: tuple[IdMap, ...]
    limits: Limits
    rlimits: tuple[tuple[str, int, int], ...]
    caps: CapsPlan
    no_new_privs: bool
    landlock: LandlockPlan
    lsm: LsmPlan
    seccomp_bpf: bytes  # b"" only for OCI bundles without linux.seccomp (runc loads none)
    notes: tuple[str, ...] = ()
    seccomp_flags: int = 0  # SECCOMP_FILTER_FLAG_* (OCI linux.seccomp.flags)
    seccomp_extra: bytes = b""  # a second filter (an OCI bundle's, under a policy overlay)
    # The init may posix_spawn() the payload (runner.spawn_check): decided when compiled.
    spawn: bool = False


@frozen
class Bind:
    src: str
    dst: str
    readonly: bool = False

    @staticmethod
    def parse(spec: str) -> Bind:
        parts = spec.split(":")
        if len(parts) == 2:
            src, dst, mode = parts[0], parts[1], "rw"
        elif len(parts) == 3:
            src, dst, mode = parts
        else:
            raise runner_error("preflight", f"--bind {spec!r}: expected SRC:DST[:ro]")
        if mode not in ("ro", "rw") or not src or not dst.startswith("/"):
            raise runner_error("preflight",
                               f"--bind {spec!r}: expected SRC:DST[:ro] with an absolute DST")
        return Bind(src, dst, mode == "ro")


@frozen
class RunSpec:
    """The invocation: what varies per run."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    rootfs: str | None = None  # None: the host's / read-only
    binds: tuple[Bind, ...] = ()
    cwd: str = "/"
    tty: bool = False
    hostname: str | None = None
    init: bool = True  # a tiny init as PID 1 when there is a pid namespace


@frozen
class Plan:
    policy: PolicyPart
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str
    tty: bool
    init: bool
    clone_flags: int  # everything but CLONE_NEWCGROUP (entered after the cgroup attach)
    cgroup_ns: bool
    hostname: str | None
    identity: IdentityPlan
    host_root: bool
    rootfs: str
    mounts: tuple[MountOp, ...]
    landlock_extra: tuple[tuple[str, int], ...] = ()  # rw --bind targets
    notes: tuple[str, ...] = ()
    # `stockade learn` only: a unix socket the payload sends its seccomp listener fd to
    # (runner.seccomp.load); -1 = a normal run. Set with replace() after build_plan.
    seccomp_listener_sock: int = -1
    sysctl: tuple[tuple[str, str], ...] = ()  # written in the new namespaces, before pivot
    propagation: str = "rslave"  # of the new root's mounts: rslave | rprivate
    umask: int | None = None  # OCI process.user.umask (None: inherited)
    # OCI hooks.startContainer: (path, args, env, timeout s), run inside the container
    # after `start` and before execve, with the state `start` sends through the gate.
    start_hooks: tuple[tuple[str, tuple[str, ...], tuple[str, ...], int | None], ...] = ()
    # OCI createRuntime/createContainer hooks: the init stops once its namespaces exist,
    # before the root is built (pivot_root), until the parent has run them.
    pause_before_root: bool = False
    console_size: tuple[int, int] | None = None  # OCI consoleSize (rows, cols) of the pty


def spawns(plan: Plan) -> bool:
    """The init posix_spawn()s the payload (see runner.spawn_check); a terminal, the
    learner's listener or a second filter need the payload's own steps."""
    p = plan.policy
    return (p.spawn and plan.init and not plan.tty and plan.seccomp_listener_sock < 0
            and not p.seccomp_extra)


def build_plan(part: PolicyPart, spec: RunSpec, *, euid: int | None = None,
               subids: tuple[IdMap, IdMap] | None = None) -> Plan:
    """Combine the policy part and the invocation; raises RunnerError('preflight')."""
    if not spec.argv:
        raise runner_error("preflight", "no command given")
    euid = os.geteuid() if euid is None else euid
    ns = set(part.namespaces)
    notes = list(part.notes)
    if "mount" not in ns:
        raise runner_error("preflight", "the runner needs a mount namespace (namespaces: mount)")
    if part.network != "host" and "net" not in ns:
        raise runner_error("preflight", f"network.mode {part.network} needs the net namespace")
    if part.network == "host":
        ns.discard("net")
    hostname = spec.hostname or part.hostname
    if not hostname and "uts" in ns:
        hostname = part.name  # never leak the host's name into a new uts namespace
    if hostname and "uts" not in ns:
        raise runner_error("preflight", "a hostname needs the uts namespace")
    if spec.tty and spec.init is False and "pid" in ns:
        pass
    flags = 0
    for name in ns:
        if name != "cgroup":
            flags |= L.NS_FLAGS[name]
    identity = _identity(part, ns, euid, subids)
    host_root = spec.rootfs is None
    rootfs = "/" if spec.rootfs is None else os.path.realpath(spec.rootfs)
    mounts = _mounts(part, spec, ns, host_root, rootfs)
    # A writable --bind is an explicit grant: Landlock must not take it back.
    write = part.landlock.handled_fs & ~(_LL_MAKE_CHAR | _LL_MAKE_BLOCK)
    extra = tuple((b.dst, write) for b in spec.binds if not b.readonly)
    return Plan(
        policy=part, argv=spec.argv, env=spec.env, cwd=spec.cwd, tty=spec.tty,
        init=spec.init and "pid" in ns, clone_flags=flags, cgroup_ns="cgroup" in ns,
        hostname=hostname or None, identity=identity, host_root=host_root, rootfs=rootfs,
        mounts=mounts, landlock_extra=extra if part.landlock.enabled else (),
        notes=tuple(notes),
    )


def _identity(part: PolicyPart, ns: set[str], euid: int,
              subids: tuple[IdMap, IdMap] | None) -> IdentityPlan:
    uid, gid = part.user_uid, part.user_gid
    if "user" not in ns or part.user_map == "host":
        if euid != 0:
            raise runner_error("preflight", "without a user namespace the runner needs root")
        return IdentityPlan(uid, gid, userns=False)
    if part.user_map == "explicit":
        return IdentityPlan(uid, gid, True, part.uid_map, part.gid_map,
                            "allow" if euid == 0 else "deny",
                            "direct" if euid == 0 else "newuidmap")
    if euid == 0:
        # An unused range, never the identity map: inside root is an unprivileged host id.
        m = (IdMap(0, AUTO_RANGE_BASE, AUTO_RANGE_COUNT),)
        return IdentityPlan(uid, gid, True, m, m, "allow", "direct")
    if subids is not None:
        # newuidmap: inside uid -> the invoker, the rest from /etc/subuid.
        um = (IdMap(uid, euid, 1), IdMap(0 if uid else 1, subids[0].outside, subids[0].count))
        gm = (IdMap(gid, os.getegid(), 1), IdMap(0 if gid else 1, subids[1].outside,
                                                 subids[1].count))
        if uid == 0 and gid == 0:
            um = (IdMap(0, euid, 1), IdMap(1, subids[0].outside, subids[0].count))
            gm = (IdMap(0, os.getegid(), 1), IdMap(1, subids[1].outside, subids[1].count))
            return IdentityPlan(uid, gid, True, um, gm, "allow", "newuidmap")
    # Rootless, no helper: one id each way, and setgroups denied (CVE-2014-8989).
    return IdentityPlan(uid, gid, True, (IdMap(uid, euid, 1),), (IdMap(gid, os.getegid(), 1),),
                        "deny", "direct")


def _mounts(part: PolicyPart, spec: RunSpec, ns: set[str], host_root: bool,
            rootfs: str) -> tuple[MountOp, ...]:
    ops: list[MountOp] = [MountOp("root", "/", rootfs, readonly=part.fs_root != "writable",
                                  why="host / read-only" if host_root else "rootfs directory")]
    if "pid" in ns:
        ops.append(MountOp("proc", "/proc", why="fresh procfs for the new pid namespace"))
    else:
        ops.append(MountOp("bind", "/proc", "/proc", why="no pid namespace: host procfs"))
    ops.append(MountOp("dev", "/dev", why="minimal /dev: " + " ".join(DEV_NODES) + " pts shm"))
    if "net" in ns:
        ops.append(MountOp("sysfs", "/sys", readonly=True, why="fresh sysfs for the net ns"))
    seen = {"/proc", "/dev", "/sys"}
    if host_root:
        for path, why in (("/tmp", "private /tmp"),
                          ("/run", "hide host sockets (docker.sock, containerd)")):
            ops.append(MountOp("tmpfs", path, why=why))
            seen.add(path)
    for path in part.fs_tmpfs:
        if path not in seen:
            ops.append(MountOp("tmpfs", path, why="filesystem.tmpfs"))
            seen.add(path)
    for path in part.fs_writable:
        if path in seen:
            continue
        # Host root: bind the host's path. Rootfs: re-bind the path *inside* the new root
        # (src ""), resolved there: a symlink in the rootfs must not pick a host directory.
        ops.append(MountOp("writable", path, path if host_root else "",
                           why="filesystem.writable"))
    if part.fs_root == "writable":
        for path in part.fs_read_only:
            ops.append(MountOp("readonly", path, readonly=True, why="filesystem.read_only"))
    for b in spec.binds:
        ops.append(MountOp("bind", b.dst, os.path.realpath(b.src), readonly=b.readonly,
                           why="--bind"))
    for path in part.fs_deny:
        ops.append(MountOp("mask", path, why="filesystem.deny", optional=True))
    for path in MASKED_PATHS:
        if path not in part.fs_deny:
            ops.append(MountOp("mask", path, why="runc masked path", optional=True))
    for path in READONLY_PATHS:
        ops.append(MountOp("readonly", path, readonly=True, why="runc read-only path",
                           optional=True))
    return tuple(ops)


def _caps_text(mask: int, last: int) -> str:
    from stockade.policy.vocab.capabilities import CAPABILITY_NAMES

    names = [CAPABILITY_NAMES[i] for i in range(min(last + 1, len(CAPABILITY_NAMES)))
             if mask >> i & 1]
    return f"{mask:#018x} " + (",".join(n[4:].lower() for n in names) or "-")


def describe(plan: Plan) -> str:
    """The dry-run text: every namespace, map, mount, limit, cap set and the filter size."""
    p = plan.policy
    ident = plan.identity
    lines = [
        f"policy      {p.name} (digest {p.digest[:16] or '-'})",
        f"command     {' '.join(plan.argv)}",
        f"env         {' '.join(k + '=' + v for k, v in plan.env) or '(empty)'}",
        f"cwd         {plan.cwd}",
        f"tty         {'yes' if plan.tty else 'no'}",
        f"namespaces  {' '.join(sorted(p.namespaces if p.network != 'host' else set(p.namespaces) - {'net'}))}",
        f"init        {'tiny init as PID 1, payload is PID 2' if plan.init else 'payload is the first process'}",
        "start       " + ("the init applies every inherited step to itself, then posix_spawn()s "
                          "the payload" if spawns(plan) else
                          "the payload is a fork of the init, last steps its own"),
        f"network     {p.network}",
        f"hostname    {plan.hostname or '-'}",
        f"identity    uid {ident.uid} gid {ident.gid}"
        + (f" (user ns, setgroups {ident.setgroups}, {ident.helper})" if ident.userns else " (no user ns)"),
    ]
    for m in ident.uid_map:
        lines.append(f"uid_map     {m.inside} {m.outside} {m.count}")
    for m in ident.gid_map:
        lines.append(f"gid_map     {m.inside} {m.outside} {m.count}")
    lines.append(f"rootfs      {plan.rootfs} ({'host root' if plan.host_root else 'directory'}, "
                 f"{'read-only' if p.fs_root != 'writable' else 'writable'}), pivot_root, old root detached")
    for op in plan.mounts:
        src = f" <- {op.src}" if op.src and op.kind != "root" else ""
        ro = " ro" if op.readonly else ""
        lines.append(f"mount       {op.kind:9s} {op.dst}{src}{ro}  # {op.why}")
    lim = p.limits
    lines.append("cgroup      " + (", ".join(
        f"{k}={v}" for k, v in (("memory", lim.memory), ("swap", lim.swap), ("pids", lim.pids),
                                ("cpu_quota_us", lim.cpu_quota_us),
                                ("cpu_period_us", lim.cpu_period_us if lim.cpu_quota_us else None),
                                ("cpu_weight", lim.cpu_weight), ("io_weight", lim.io_weight))
        if v is not None) or "none (no resources in the policy)"))
    for name, soft, hard in p.rlimits:
        lines.append(f"rlimit      {name} soft={_lim(soft)} hard={_lim(hard)}")
    c = p.caps
    lines += [
        f"cap bnd     {_caps_text(c.bounding, c.last_cap)}",
        f"cap prm     {_caps_text(c.permitted, c.last_cap)}",
        f"cap eff     {_caps_text(c.effective, c.last_cap)}",
        f"cap inh     {_caps_text(c.inheritable, c.last_cap)}",
        f"cap amb     {_caps_text(sum(1 << a for a in c.ambient), c.last_cap)}",
        f"nnp         {'yes' if p.no_new_privs else 'no'}",
    ]
    ll = p.landlock
    lines.append(f"landlock    mode {ll.mode}, abi {ll.abi}, {len(ll.paths)} path rules, "
                 f"{len(ll.ports)} port rules" + ("" if ll.enabled else " (not applied)"))
    for path, access in ll.paths:
        lines.append(f"landlock    {path} access={access:#x}")
    lines.append(f"lsm         apparmor={p.lsm.apparmor_profile or '-'} "
                 f"selinux={p.lsm.selinux_label or '-'} required={p.lsm.required}")
    lines.append(f"seccomp     {len(p.seccomp_bpf) // 8} instructions ({len(p.seccomp_bpf)} bytes), "
                 "loaded last, just before execve")
    lines.append("hygiene     setsid, fds > 2 closed on exec, cwd checked inside the root, "
                 "runner binary unreachable (non-dumpable init, read-only binds)")
    for note in plan.notes:
        lines.append(f"note        {note}")
    return "\n".join(lines)


def _lim(v: int) -> str:
    return "unlimited" if v == RLIM_INFINITY else str(v)
