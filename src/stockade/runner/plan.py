"""The frozen plan: everything the runner will do, decided before any process exists.

`policy_part()` is the policy-derived half (cacheable: it holds the compiled seccomp
program); `build_plan()` adds the invocation (argv, env, rootfs, binds, tty). Both are
pure apart from the host facts passed in. `--dry-run` prints `describe(plan)`.
"""

from __future__ import annotations

import os

from stockade.linux import consts as L
from stockade.runner._record import frozen
from stockade.runner._record import replace as _replace
from stockade.runner.codes import runner_error

TYPE_CHECKING = False  # not typing's: the run path loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from stockade.runner.network.spec import NetPolicy

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
# Outside ids for `map: auto` when running as root: far above systemd's container range
# (524288-1879048191) and below 2^31. Each concurrent sandbox gets its own range of
# AUTO_RANGE_COUNT ids out of a pool of AUTO_POOL_RANGES of them (runner.idalloc;
# $STOCKADE_ID_POOL=START:COUNT moves or resizes the pool).
AUTO_RANGE_BASE = 2_000_000_000
AUTO_RANGE_COUNT = 65536
AUTO_POOL_RANGES = 2048  # ends at 2134217727, still below 2^31
CPU_PERIOD_US = 100_000
_LL_MAKE_CHAR = 1 << 6
_LL_MAKE_BLOCK = 1 << 11


@frozen
class IdMap:
    inside: int
    outside: int
    count: int


@frozen
class IdPool:
    """Where `map: auto` takes its outside ids as root: a free range of `range_size` ids
    out of [start, start + size), locked under `lock_dir` for the sandbox's life."""

    start: int
    size: int
    lock_dir: str
    range_size: int = AUTO_RANGE_COUNT


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
    # Set: the maps name the pool's first range, a placeholder; the launcher moves them to
    # the range it locked (runner.idalloc) and clears this.
    pool: IdPool | None = None
    # The host uid that creates (owns) the user namespace; None: the runner's own. The
    # kernel charges per-user counts inside the namespace (inotify instances, ...) to its
    # owner as well: a pooled range owns its namespace, so sandboxes share no count.
    owner: int | None = None


@frozen
class MountOp:
    """One step of the rootfs build, in order. `src` is a host path for host binds."""

    kind: str  # root | proc | dev | sysfs | tmpfs | bind | readonly | writable | mask
    dst: str
    src: str = ""
    readonly: bool = False
    why: str = ""
    optional: bool = False  # a missing dst is skipped (masks), not an error
    # kind "fs" (OCI mounts: mqueue, tmpfs with options): a fresh filesystem of this
    # type, its fsconfig options and extra MOUNT_ATTR_* flags. kind "dev": data lists
    # the OCI linux.devices to add, (path below /dev, "TYPE MAJOR MINOR MODE UID GID").
    fstype: str = ""
    data: tuple[tuple[str, str | None], ...] = ()
    attrs: int = 0
    # Fresh filesystems (proc, sysfs, dev, tmpfs, fs): mountinfo's source field (the OCI
    # mount's `source`); empty: the type's name.
    source: str = ""
    # OCI propagation options: MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE, | MS_REC for
    # the r- forms; set on the mount inside the container's namespace (0: unchanged).
    propagation: int = 0


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
    # OCI bundles (runc's): memory.reservation (a soft limit), swappiness and
    # disableOOMKiller (cgroup v1 only), the cpuset's cpus and mems lists.
    memory_reservation: int | None = None
    swappiness: int | None = None
    oom_kill_disable: bool | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.memory, self.swap, self.pids,
                                            self.cpu_quota_us, self.cpu_weight, self.io_weight,
                                            self.cpu_shares, self.devices_allow,
                                            self.memory_reservation, self.swappiness,
                                            self.oom_kill_disable, self.cpuset_cpus,
                                            self.cpuset_mems))

    @property
    def cpuset(self) -> bool:
        return self.cpuset_cpus is not None or self.cpuset_mems is not None


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
    scoped: int = 0  # LANDLOCK_SCOPE_* (ABI 6): abstract unix sockets, signals

    @property
    def enabled(self) -> bool:
        return self.mode != "off" and self.abi > 0


@frozen
class LsmPlan:
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    required: bool = False
    # What the runner loads before the run when the kernel lacks it (stockade.lsm.load):
    # the compiled profile / CIL modules and their sha256, so a cached plan loads the
    # same text and a changed policy replaces it.
    apparmor_mode: str = ""
    apparmor_text: str = ""
    apparmor_digest: str = ""
    selinux_modules: tuple[tuple[str, str], ...] = ()  # (module name, CIL), template first
    selinux_digest: str = ""
    # the policy's writable file type, given to the sandbox's fresh tmpfs mounts
    # (context=): the type may write there, and nothing else is labelled so
    selinux_file_context: str = ""


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
    net: NetPolicy | None = None  # network.mode private: runner.network sets it up
    # filesystem.expose: host paths the default view (the jail) shows read-only.
    fs_expose: tuple[str, ...] = ()
    # Every resource limit comes from a preset (none from the policy's own files): a
    # user who cannot create cgroups runs without them (without_preset_limits).
    limits_best_effort: bool = False


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
    # The default view (no --rootfs): a read-only tmpfs root with the host's system
    # directories only (runner.view); host_root is also set (its sources are host paths).
    jail: bool = False
    # Source trees the parent made before the clone (runner.idmount: idmapped, which
    # needs the host's CAP_SYS_ADMIN): (host path, detached mount fd). Set with replace().
    premade: tuple[tuple[str, int], ...] = ()
    # --image: the root gets an idmapped mount too (runner.idmount), so the image's
    # root-owned files are root's inside and its writable layer takes root's writes.
    idmap_root: bool = False
    # runner.setid_guard: a filter loaded after the policy's when a writable host tree is
    # idmapped (no set-id modes, openat2, io_uring, new user namespaces); b"": none.
    setid_guard: bytes = b""


def tree_key(index: int) -> str:
    """The key of plan.mounts[index]'s premade source tree (Plan.premade; the executor's
    `fds.trees`): one tree per mount, so two binds of one source each get their own."""
    return f"mount {index}"


def build_plan(part: PolicyPart, spec: RunSpec, *, euid: int | None = None,
               subids: tuple[IdMap, IdMap] | None = None, pool: IdPool | None = None) -> Plan:
    """Combine the policy part and the invocation; raises RunnerError('preflight').
    pool: where root's `map: auto` ranges come from (default: runner.idalloc's)."""
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
    if part.net is not None and euid != 0:
        from stockade.runner.network.rootless import refusal

        why = refusal(part.net, part.caps.bounding)  # rules inside: NET_ADMIN must go
        if why is not None:
            raise runner_error("preflight", why)
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
    if subids is None and euid != 0 and "user" in ns and part.user_map == "auto":
        from stockade.runner.idmap import host_subids  # rootless: newuidmap's ranges

        subids = host_subids(euid)
    identity = _identity(part, ns, euid, subids, pool)
    # `--rootfs /` (or any path to the host's root directory) is the host-root mode, with
    # its private /tmp and hidden /run: not a rootfs directory that shows the host's sockets.
    host_root = spec.rootfs is None or _is_host_root(spec.rootfs)
    jail = spec.rootfs is None
    rootfs = "/" if spec.rootfs is None else os.path.realpath(spec.rootfs)
    mounts = _mounts(part, spec, ns, host_root, rootfs, jail, hostname or None)
    if part.fs_expose and not jail:
        notes.append("filesystem.expose applies to the default view only (no --rootfs, "
                     "--image or --bundle): not used here")
    # A writable --bind is an explicit grant: Landlock must not take it back.
    write = part.landlock.handled_fs & ~(_LL_MAKE_CHAR | _LL_MAKE_BLOCK)
    extra = tuple((b.dst, write) for b in spec.binds if not b.readonly)
    return Plan(
        policy=part, argv=spec.argv, env=spec.env, cwd=spec.cwd, tty=spec.tty,
        init=spec.init and "pid" in ns, clone_flags=flags, cgroup_ns="cgroup" in ns,
        hostname=hostname or None, identity=identity, host_root=host_root, rootfs=rootfs,
        jail=jail,
        mounts=mounts, landlock_extra=extra if part.landlock.enabled else (),
        notes=tuple(notes),
    )


def without_preset_limits(plan: Plan, why: str) -> tuple[Plan, str]:
    """The plan without its cgroup limits, for a user who cannot create cgroups, when
    only presets set them (limits a policy file sets itself fail closed instead): pids
    becomes RLIMIT_NPROC, counted per user inside the sandbox's own user namespace."""
    part = plan.policy
    rlimits = part.rlimits
    pids = part.limits.pids
    if pids is not None and "nproc" not in {n for n, _, _ in rlimits}:
        rlimits = (*rlimits, ("nproc", pids, pids))
    # nproc binds the payload's own forks: the payload sets it, after the init's fork
    part = _replace(part, limits=Limits(), rlimits=rlimits)
    dropped = ", ".join(f"{k}={v}" for k, v in (("memory", plan.policy.limits.memory),
                                                ("swap", plan.policy.limits.swap),
                                                ("pids", pids),
                                                ("cpu_quota_us", plan.policy.limits.cpu_quota_us),
                                                ("cpu_weight", plan.policy.limits.cpu_weight),
                                                ("io_weight", plan.policy.limits.io_weight))
                        if v is not None)
    note = (f"the preset's cgroup limits ({dropped}) are not applied: {why}; "
            + (f"pids capped by RLIMIT_NPROC={pids} in the sandbox's user namespace"
               if pids is not None else "nothing caps them")
            + " (limits set by the policy file itself are never skipped)")
    return _replace(plan, policy=part), note


def _is_host_root(path: str) -> bool:
    """`path` is the host's / itself (through symlinks or a bind mount of it)."""
    try:
        st, root = os.stat(path), os.stat("/")
    except OSError:
        return False  # preflight names a missing rootfs
    return (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino)


def _identity(part: PolicyPart, ns: set[str], euid: int,
              subids: tuple[IdMap, IdMap] | None, pool: IdPool | None) -> IdentityPlan:
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
        # A range of its own, never the identity map: inside root is an unprivileged host
        # id that no other sandbox shares (per-uid limits, signals between equal uids).
        if pool is None:
            from stockade.runner.idalloc import configured_pool

            pool = configured_pool()
        m = (IdMap(0, pool.start, pool.range_size),)
        return IdentityPlan(uid, gid, True, m, m, "allow", "direct", pool=pool)
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
            rootfs: str, jail: bool = False, hostname: str | None = None) -> tuple[MountOp, ...]:
    if jail:
        from stockade.runner.view import system_ops

        # src "": a fresh tmpfs, read-only once every mountpoint is made (runner.view)
        ops = [MountOp("root", "/", "", readonly=part.fs_root != "writable",
                       why="jail: an empty tmpfs with the host's system only")]
        ops += system_ops(hostname)
    else:
        ops = [MountOp("root", "/", rootfs, readonly=part.fs_root != "writable",
                       why="host / read-only" if host_root else "rootfs directory")]
    if "pid" in ns:
        ops.append(MountOp("proc", "/proc", why="fresh procfs for the new pid namespace"))
    else:
        ops.append(MountOp("bind", "/proc", "/proc", why="no pid namespace: host procfs"))
    ops.append(MountOp("dev", "/dev", why="minimal /dev: " + " ".join(DEV_NODES) + " pts shm"))
    # filesystem.deny: [/sys] (strict) means no sysfs at all, not a masked one
    if "net" in ns and "/sys" not in part.fs_deny:
        ops.append(MountOp("sysfs", "/sys", readonly=True, why="fresh sysfs for the net ns"))
    seen = {"/proc", "/dev", "/sys"}
    tmpfs: list[str] = []
    label = part.lsm.selinux_file_context
    context: tuple[tuple[str, str | None], ...] = (("context", label),) if label else ()
    if host_root:
        for path, why in (("/tmp", "private /tmp"),
                          ("/run", "hide host sockets (docker.sock, containerd)")):
            ops.append(MountOp("tmpfs", path, why=why, data=context))
            seen.add(path)
            tmpfs.append(path)
    for path in part.fs_tmpfs:
        if path not in seen:
            ops.append(MountOp("tmpfs", path, why="filesystem.tmpfs", data=context))
            seen.add(path)
            tmpfs.append(path)
    shown: list[str] = []  # host paths bound in (their secrets are masked in the jail)
    if jail:
        for path in part.fs_expose:
            if not os.path.exists(path):
                raise runner_error("preflight", f"filesystem.expose {path}: no such file or "
                                   "directory on the host")
            ops.append(MountOp("bind", path, path, readonly=True, why="filesystem.expose"))
            shown.append(path)
    for path in part.fs_writable:
        if path in seen:
            continue
        # Host root: bind the host's path. Rootfs: re-bind the path *inside* the new root
        # (src ""), resolved there: a symlink in the rootfs must not pick a host directory.
        ops.append(MountOp("writable", path, path if host_root else "",
                           why="filesystem.writable"))
        shown.append(path)
    bound = [*shown, *(b.dst for b in spec.binds)]
    for path in part.fs_read_only:
        if any(c in path for c in "*?[]{}"):
            continue  # a glob: a Landlock/AppArmor rule, nothing the runner mounts
        hider = next((t for t in tmpfs if path != t and _under(path, t)), None)
        if hider is not None and not any(_under(path, b) for b in bound):
            # It would vanish under the fresh tmpfs (while a writable path there is bound).
            raise runner_error(
                "preflight", f"filesystem.read_only {path}: under the tmpfs {hider}, which "
                f"hides it; expected a path outside every tmpfs; to show the host's {path} "
                f"read-only there, list it in filesystem.expose")
    if part.fs_root == "writable":
        for path in part.fs_read_only:
            ops.append(MountOp("readonly", path, readonly=True, why="filesystem.read_only"))
    for b in spec.binds:
        ops.append(MountOp("bind", b.dst, os.path.realpath(b.src), readonly=b.readonly,
                           why="--bind"))
    for path in part.fs_deny:
        ops.append(MountOp("mask", path, why="filesystem.deny", optional=True))
    if host_root:
        from stockade.runner.view import secret_masks

        ops += secret_masks(["/"] if not jail else
                            [*shown, *(o.dst for o in ops if o.why == "/etc allow-list")])
    for path in MASKED_PATHS:
        if path not in part.fs_deny:
            ops.append(MountOp("mask", path, why="runc masked path", optional=True))
    for path in READONLY_PATHS:
        ops.append(MountOp("readonly", path, readonly=True, why="runc read-only path",
                           optional=True))
    return tuple(ops)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


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
        f"network     {p.network}",
        *_net_lines(p.net),
        f"hostname    {plan.hostname or '-'}",
        f"identity    uid {ident.uid} gid {ident.gid}"
        + (f" (user ns, setgroups {ident.setgroups}, {ident.helper})" if ident.userns else " (no user ns)"),
    ]
    for m in ident.uid_map:
        lines.append(f"uid_map     {m.inside} {m.outside} {m.count}")
    for m in ident.gid_map:
        lines.append(f"gid_map     {m.inside} {m.outside} {m.count}")
    if ident.pool is not None:
        pool = ident.pool
        lines.append(f"id range    the first free range of {pool.range_size} ids in the pool "
                     f"{pool.start}-{pool.start + pool.size - 1}, locked in {pool.lock_dir} "
                     "while the sandbox runs (the maps above show the first)")
    kind = "jail" if plan.jail else "host root" if plan.host_root else "directory"
    where = "a fresh tmpfs" if plan.jail else plan.rootfs
    lines.append(f"rootfs      {where} ({kind}, "
                 f"{'read-only' if p.fs_root != 'writable' else 'writable'}), pivot_root, old root detached")
    for op in plan.mounts:
        src = f" <- {op.src}" if op.src and op.kind != "root" else ""
        src = f" -> {op.src}" if op.kind == "symlink" else src
        ro = " ro" if op.readonly else ""
        lines.append(f"mount       {op.kind:9s} {op.dst}{src}{ro}  # {op.why}")
    lines += _idmap_lines(plan)
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
                 f"{len(ll.ports)} port rules, scoped {ll.scoped:#x}"
                 + ("" if ll.enabled else " (not applied)"))
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


def _idmap_lines(plan: Plan) -> list[str]:
    """What runner.idmount and runner.setid_guard will do at run time to the plan's
    writable host trees and image root (the caps above are before the guard's drop)."""
    from stockade.runner import idmount  # idmount imports this module

    todo = idmount.wanted(plan)
    if not todo or not plan.identity.userns:
        return []
    if idmount.rootless(plan):
        return [f"idmap       {', '.join(sorted({src for _, src in todo}))}: no idmapped "
                "mount (rootless): files show as their host owners"]
    if not idmount.needs_mapping(plan):
        return []
    lines = [f"idmap       {src}: " + (
        "the image's overlay rebuilt on idmapped layers (Linux 5.19+), else without them"
        if key == "/" else "idmapped through the sandbox's maps (Linux 5.12+), else a plain "
        "bind") + ", with a note" for key, src in todo]
    if any(key != "/" for key, _ in todo):
        lines.append("idmap       set-id guard: CAP_SETFCAP dropped from every set, a second "
                     "seccomp filter refuses set-id modes, io_uring_setup, new user namespaces")
    return lines


def _net_lines(net: NetPolicy | None) -> list[str]:
    if net is None:
        return []
    from stockade.runner.network.jail import describe_lines

    return describe_lines(net)


def _lim(v: int) -> str:
    return "unlimited" if v == RLIM_INFINITY else str(v)
