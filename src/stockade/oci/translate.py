"""config.json -> the runner's frozen Plan (plus what the OCI layer does itself).

Pure apart from reading the host's cap_last_cap, arch and the bundle's paths. Where
stockade is deliberately stricter than runc the difference is written next to the code
and listed in docs/OCI.md (binds are always nosuid,nodev; /dev is a read-only tmpfs with
a fixed set of nodes; sysfs is always read-only; a `cgroup` mount is an empty read-only
tmpfs; a new mount namespace is always used).
"""

from __future__ import annotations

import os

from stockade.linux import consts as L
from stockade.oci.config import ConfigError
from stockade.oci.hooks import Hook
from stockade.runner._record import frozen
from stockade.runner.plan import (
    RLIMIT_NAMES,
    CapsPlan,
    IdentityPlan,
    IdMap,
    LandlockPlan,
    Limits,
    LsmPlan,
    MountOp,
    Plan,
    PolicyPart,
)

TYPE_CHECKING = False  # not typing's: `oci create` loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from typing import Any

NS_TYPES = {"pid": "pid", "network": "net", "mount": "mount", "ipc": "ipc", "uts": "uts",
            "user": "user", "cgroup": "cgroup"}
JOINABLE = ("network", "ipc", "uts", "pid", "cgroup")  # setns by the creating process
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")
# runc always allows these (libcontainer/specconv AllowedDevices): the nodes of its /dev.
DEFAULT_DEVICE_RULES = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm",
                        "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm", "c 5:2 rwm", "c 136:* rwm")
_NODES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
          "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}
# Mount options: flag options map to mount attributes; propagation options (L.PROPAGATION)
# are set on the mount inside the container's namespace, where every mount is a slave of
# the host's or private: even (r)shared shares only within the container.
_ATTR_OPTS = {"ro": L.MOUNT_ATTR_RDONLY, "noexec": L.MOUNT_ATTR_NOEXEC,
              "nosuid": 0, "nodev": 0, "rw": 0, "suid": 0, "dev": 0, "exec": 0,
              "relatime": 0, "norelatime": 0, "strictatime": 0, "noatime": 0,
              "nodiratime": 0, "bind": 0, "rbind": 0, "tmpcopyup": 0}
_DATA_OPTS = ("size", "mode", "uid", "gid", "nr_inodes", "newinstance", "ptmxmode")
_NAMESPACED_SYSCTL = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                      "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                      "kernel.shm_rmid_forced")


@frozen
class Container:
    """Everything `create` needs: the plan and what the OCI layer does around it."""

    plan: Plan
    bundle: str
    rootfs: str
    join: tuple[tuple[str, str], ...]  # (OCI namespace type, path), joined before clone
    hooks: tuple[tuple[str, tuple[Hook, ...]], ...]
    oom_score_adj: int | None
    cgroups_path: str | None
    annotations: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()
    # What config.json asks for that is ignored, as the spec or runc does (unknown
    # properties, kernel memory): logged by create (stderr and --log), never an error.
    warnings: tuple[str, ...] = ()

    def hooks_of(self, kind: str) -> tuple[Hook, ...]:
        return dict(self.hooks).get(kind, ())


def _err(field: str, why: str) -> ConfigError:
    return ConfigError(f"config.json: {field}: {why}")


def _int(value: Any, field: str, lo: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(field, "must be an integer")
    if lo is not None and value < lo:
        raise _err(field, f"must be >= {lo}")
    return value


def _strs(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(field, "must be a list of strings")
    return tuple(value)


def rootfs_path(cfg: dict[str, Any], bundle: str) -> str:
    """The rootfs directory. A relative root.path must stay inside the bundle once every
    symlink is resolved (an escape is attacker input, not a layout choice)."""
    raw = cfg["root"]["path"]
    bundle_real = os.path.realpath(bundle)
    if os.path.isabs(raw):
        path = os.path.realpath(raw)
    else:
        path = os.path.realpath(os.path.join(bundle_real, raw))
        if os.path.commonpath([path, bundle_real]) != bundle_real:
            raise _err("root.path", f"{raw} resolves to {path}, outside the bundle")
    if not os.path.isdir(path):
        raise _err("root.path", f"{path} is not a directory")
    return path


def translate(cfg: dict[str, Any], bundle: str, cid: str, *, last_cap: int,
              euid: int | None = None, native: str = "x86_64", home: bool = True) -> Container:
    """config.json -> the runner's plan and what the OCI layer does around it.
    home=False: no HOME from the rootfs's /etc/passwd when config.json sets none (a plan
    for the compiled front end, which looks it up itself when it runs the plan)."""
    euid = os.geteuid() if euid is None else euid
    bundle = os.path.realpath(bundle)
    proc = cfg["process"]
    linux = cfg.get("linux", {})
    notes: list[str] = []
    from stockade.oci.config import validate

    warnings = [f"config.json: {path}: unknown property, ignored" for path in validate(cfg)]
    rootfs = rootfs_path(cfg, bundle)
    hooks = _hooks(cfg.get("hooks", {}))

    new_ns, join = _namespaces(linux, notes)
    hostname = cfg.get("hostname")
    if hostname is not None and not isinstance(hostname, str):
        raise _err("hostname", "must be a string")
    # A uts namespace joined by path counts: the hostname is set in it, as runc does.
    uts = "uts" in new_ns or any(kind == "uts" for kind, _ in join)
    if hostname and not uts:
        raise _err("hostname", "needs a uts namespace of the container's own "
                   "(linux.namespaces: new, or joined by path)")
    identity = _identity(proc, linux, "user" in new_ns, euid)
    caps = _caps(proc.get("capabilities", {}), last_cap)
    rlimits = _rlimits(proc.get("rlimits", []))
    limits = _limits(linux.get("resources", {}), warnings)
    devices = _devices(linux.get("devices", []))
    seccomp_bpf, seccomp_flags = _seccomp(linux.get("seccomp"), proc, native)
    sysctl = _sysctl(linux.get("sysctl", {}), new_ns, dict(join))
    domainname = cfg.get("domainname")
    if domainname:
        if not uts:
            raise _err("domainname", "needs a uts namespace of the container's own "
                       "(linux.namespaces: new, or joined by path)")
        # setdomainname(2) is this sysctl's write: the same step in both paths.
        sysctl = (*[kv for kv in sysctl if kv[0] != "kernel.domainname"],
                  ("kernel.domainname", domainname))
    mounts = _mounts(cfg, bundle, rootfs, new_ns, linux, devices)
    # Applied to the new root after pivot_root (runc's order). Every mount is made rslave
    # first, so "slave" is rslave, and (r)shared shares within the container only.
    propagation = linux.get("rootfsPropagation") or "rslave"
    if propagation == "slave":
        propagation = "rslave"
    if propagation not in L.PROPAGATION:
        raise _err("linux.rootfsPropagation", f"{propagation!r} is not a propagation "
                   f"({', '.join(L.PROPAGATION)})")
    args = _strs(proc.get("args", []), "process.args")
    if not args:
        raise _err("process.args", "must name a program")
    env = []
    for item in _strs(proc.get("env", []), "process.env"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _err("process.env", f"{item!r} is not KEY=VALUE")
        env.append((key, value))
    if home and not any(k == "HOME" for k, _ in env):
        # runc's behaviour: HOME from the rootfs's /etc/passwd for the user, else "/".
        env.append(("HOME", _home(rootfs, identity.uid)))
    cwd = proc.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise _err("process.cwd", "must be an absolute path")
    terminal = proc.get("terminal", False)
    if not isinstance(terminal, bool):
        raise _err("process.terminal", "must be true or false")
    nnp = proc.get("noNewPrivileges", False)
    lsm = LsmPlan(proc.get("apparmorProfile") or None, proc.get("selinuxLabel") or None,
                  required=True)  # fail closed: a label asked for and not applied is an error
    oom = proc.get("oomScoreAdj")
    if oom is not None:
        oom = _int(oom, "process.oomScoreAdj", -1000)
        if oom > 1000:
            raise _err("process.oomScoreAdj", "must be in -1000..1000")
    part = PolicyPart(
        name=cid, digest="", namespaces=tuple(sorted(new_ns)),
        network="loopback" if "net" in new_ns else "host", hostname=hostname or None,
        fs_root="read-only" if cfg["root"].get("readonly") else "writable",
        fs_tmpfs=(), fs_writable=(), fs_read_only=(), fs_deny=(),
        user_uid=identity.uid, user_gid=identity.gid, user_map="explicit",
        uid_map=identity.uid_map, gid_map=identity.gid_map, limits=limits, rlimits=rlimits,
        caps=caps, no_new_privs=bool(nnp), landlock=LandlockPlan("off", 0), lsm=lsm,
        seccomp_bpf=seccomp_bpf, seccomp_flags=seccomp_flags,
    )
    flags = 0
    for name in new_ns:
        if name != "cgroup":
            flags |= L.NS_FLAGS[name]
    plan = Plan(
        policy=part, argv=args, env=tuple(env), cwd=cwd, tty=terminal, init=False,
        clone_flags=flags, cgroup_ns="cgroup" in new_ns, hostname=hostname or None,
        identity=identity, host_root=False, rootfs=rootfs, mounts=mounts,
        notes=tuple(notes), sysctl=sysctl, propagation=propagation,
        umask=_umask(proc.get("user", {}).get("umask")),
        start_hooks=tuple((h.path, h.args, h.env, h.timeout) for h in
                          dict(hooks).get("startContainer", ())),
        console_size=_console_size(proc.get("consoleSize")),
        pause_before_root=any(k in dict(hooks) for k in ("prestart", "createRuntime",
                                                          "createContainer")),
    )
    cg_path = cgroups_path(linux.get("cgroupsPath"))
    ann = cfg.get("annotations", {})
    if not isinstance(ann, dict):
        raise _err("annotations", "must be an object")
    return Container(plan=plan, bundle=bundle, rootfs=rootfs, join=join,
                     hooks=hooks, oom_score_adj=oom,
                     cgroups_path=cg_path,
                     annotations=tuple(sorted((str(k), str(v)) for k, v in ann.items())),
                     notes=tuple(notes), warnings=tuple(warnings))


def cgroups_path(value: Any) -> str | None:
    """linux.cgroupsPath, cleaned as runc does (libcontainer/utils.CleanPath): as if
    rooted, so `..` stops at the top and the path stays inside each hierarchy; absolute
    keeps its leading "/" (below the hierarchy's root), relative has none (below the
    runtime's own cgroup). A path that cleans to the top itself is refused: the
    container would share (and its delete kill) that whole cgroup."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or ":" in value:
        raise _err("linux.cgroupsPath", "must be a path (the systemd slice:prefix:name "
                   "form needs a systemd cgroup driver, which stockade does not have)")
    clean = os.path.normpath("/" + value).lstrip("/")  # normpath keeps a leading "//"
    if not clean:
        where = "the hierarchy's root" if value.startswith("/") else "the runtime's own cgroup"
        raise _err("linux.cgroupsPath", f"{value!r} names {where}, not a cgroup of the "
                   "container's own (e.g. /stockade/ID)")
    return "/" + clean if value.startswith("/") else clean


def _console_size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    h = _int(value.get("height", 0), "process.consoleSize.height", 0)
    w = _int(value.get("width", 0), "process.consoleSize.width", 0)
    if h > 0xFFFF or w > 0xFFFF:
        raise _err("process.consoleSize", "out of range")
    return (h, w)


def _umask(value: Any) -> int | None:
    if value is None:
        return None
    if _int(value, "process.user.umask", 0) > 0o777:
        raise _err("process.user.umask", "must be <= 0o777")
    return int(value)


def _home(rootfs: str, uid: int) -> str:
    """The user's home in the rootfs's /etc/passwd, read inside the root (symlinks in
    the rootfs are resolved against it, never against the host)."""
    from stockade.linux import syscalls as _linux

    try:
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = _linux.openat2(root, "etc/passwd", os.O_RDONLY | os.O_CLOEXEC,
                                _linux.RESOLVE_IN_ROOT | _linux.RESOLVE_NO_MAGICLINKS)
        finally:
            os.close(root)
        with os.fdopen(fd, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                f = line.rstrip("\n").split(":")
                if len(f) >= 6 and f[2] == str(uid):
                    return f[5] or "/"
    except OSError:
        pass
    return "/"


def _namespaces(linux: dict[str, Any], notes: list[str]) -> tuple[set[str], tuple[tuple[str, str], ...]]:
    new: set[str] = set()
    join: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, ns in enumerate(linux.get("namespaces", [])):
        kind = ns.get("type")
        field = f"linux.namespaces[{i}]"
        if not isinstance(kind, str) or kind not in NS_TYPES:
            raise _err(field, f"type {kind!r} is not supported")
        if kind in seen:
            raise _err(field, f"{kind} is listed twice")
        seen.add(kind)
        path = ns.get("path")
        if path:
            if kind not in JOINABLE:
                why = {"mount": "the rootfs would be built in (and change) that namespace; "
                                "stockade builds it in a new one",
                       "user": "the id maps and capabilities would be another's"}
                raise _err(field, f"joining a {kind} namespace by path is not supported"
                           + (f": {why[kind]}" if kind in why else ""))
            if not os.path.exists(path):
                raise _err(field, f"{path} does not exist")
            join.append((kind, path))
        else:
            new.add(NS_TYPES[kind])
    if "mount" not in new:
        # Stricter than runc: the rootfs is always built in a private mount namespace.
        new.add("mount")
        notes.append("linux.namespaces: a new mount namespace is always used")
    return new, tuple(join)


def _maps(items: list[dict[str, Any]], field: str) -> tuple[IdMap, ...]:
    out = []
    for i, m in enumerate(items):
        f = f"{field}[{i}]"
        out.append(IdMap(_int(m.get("containerID"), f + ".containerID", 0),
                         _int(m.get("hostID"), f + ".hostID", 0),
                         _int(m.get("size"), f + ".size", 1)))
    return tuple(out)


def _identity(proc: dict[str, Any], linux: dict[str, Any], userns: bool,
              euid: int) -> IdentityPlan:
    user = proc.get("user", {})
    uid = _int(user.get("uid", 0), "process.user.uid", 0)
    gid = _int(user.get("gid", 0), "process.user.gid", 0)
    groups = tuple(_int(g, "process.user.additionalGids", 0)
                   for g in user.get("additionalGids", []))
    um = _maps(linux.get("uidMappings", []), "linux.uidMappings")
    gm = _maps(linux.get("gidMappings", []), "linux.gidMappings")
    if not userns:
        if um or gm:
            raise _err("linux.uidMappings", "mappings need a new user namespace")
        if euid != 0:
            raise ConfigError("config.json: linux.namespaces: without a user namespace "
                              "stockade needs root")
        return IdentityPlan(uid, gid, False, groups=groups)
    if not um or not gm:
        raise _err("linux.uidMappings", "a new user namespace needs uid and gid mappings")
    if euid == 0:
        return IdentityPlan(uid, gid, True, um, gm, "allow", "direct", groups)
    # Rootless: only our own ids can be mapped without a helper (setgroups denied).
    if [(m.outside, m.count) for m in um] != [(euid, 1)] or \
            [(m.outside, m.count) for m in gm] != [(os.getegid(), 1)]:
        raise _err("linux.uidMappings", "unprivileged: only the invoker's own uid/gid "
                   "(one id each) can be mapped")
    if groups:
        raise _err("process.user.additionalGids", "unprivileged maps deny setgroups")
    return IdentityPlan(uid, gid, True, um, gm, "deny", "direct", groups)


def _caps(c: dict[str, Any], last_cap: int) -> CapsPlan:
    from stockade.policy.vocab.capabilities import CAP_NUMBER

    masks: dict[str, int] = {}
    for key in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        mask = 0
        for name in _strs(c.get(key, []), f"process.capabilities.{key}"):
            num = CAP_NUMBER.get(name.upper())
            if num is None:
                raise _err(f"process.capabilities.{key}", f"unknown capability {name}")
            if num > last_cap:
                raise _err(f"process.capabilities.{key}",
                           f"{name} is not known to this kernel (cap_last_cap {last_cap})")
            mask |= 1 << num
        masks[key] = mask
    # Ambient needs the cap in permitted and inheritable: the kernel refuses the others,
    # and runc skips them (`runc spec` lists ambient caps with an empty inheritable set).
    # Dropping them is what both runtimes end up with.
    amb = masks["ambient"] & masks["permitted"] & masks["inheritable"]
    extra = masks["effective"] & ~masks["permitted"]
    if extra:
        raise _err("process.capabilities.effective", f"{_cap_names(extra)} not in permitted: "
                   "the kernel refuses an effective capability that is not permitted")
    return CapsPlan(masks["bounding"], masks["permitted"], masks["effective"],
                    masks["inheritable"], tuple(i for i in range(last_cap + 1) if amb >> i & 1),
                    last_cap)


def _cap_names(mask: int) -> str:
    from stockade.policy.vocab.capabilities import CAPABILITY_NAMES

    return ", ".join(CAPABILITY_NAMES[i] if i < len(CAPABILITY_NAMES) else str(i)
                     for i in range(mask.bit_length()) if mask >> i & 1)


def check_grantable(plan: Plan, status: str) -> None:
    """Refuse (at create, as runc fails there) the capabilities this runtime cannot give
    the container's process: capset would fail in it, and without no_new_privs that
    happens after `start` (the filter goes first), where nothing reports it. status: the
    runtime's /proc/self/status. Without a user namespace the process keeps the
    runtime's permitted set at most; in one it holds every capability of it. The
    inheritable set may only grow within the bounding set (root, CAP_SETPCAP) or the
    permitted set (another user)."""
    own = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("CapInh", "CapPrm", "CapBnd"):
            own[key] = int(value.strip(), 16)
    caps, ident = plan.policy.caps, plan.identity
    everything = (1 << (caps.last_cap + 1)) - 1
    held = everything if ident.userns else own.get("CapPrm", 0)
    lacking = caps.permitted & ~held
    if lacking:
        raise _err("process.capabilities.permitted", f"{_cap_names(lacking)}: the runtime "
                   "does not hold it, so it cannot grant it (run it with that capability "
                   "or drop it from the config)")
    if ident.uid == 0:
        room = (caps.bounding & own.get("CapBnd", everything)) | own.get("CapInh", 0)
    else:
        room = held | own.get("CapInh", 0)
    lacking = caps.inheritable & ~room
    if lacking:
        raise _err("process.capabilities.inheritable", f"{_cap_names(lacking)}: outside "
                   "the bounding set, the kernel refuses it")


def _rlimits(items: list[dict[str, Any]]) -> tuple[tuple[str, int, int], ...]:
    out: dict[str, tuple[str, int, int]] = {}
    for i, r in enumerate(items):
        f = f"process.rlimits[{i}]"
        kind = str(r.get("type", ""))
        name = kind.upper().removeprefix("RLIMIT_").lower()
        if not kind.upper().startswith("RLIMIT_") or name not in RLIMIT_NAMES:
            raise _err(f, f"unknown rlimit type {kind!r}")
        if name in out:
            raise _err(f, f"{kind} is set twice")
        soft, hard = _int(r.get("soft"), f + ".soft", 0), _int(r.get("hard"), f + ".hard", 0)
        if soft > hard:
            raise _err(f, "soft is above hard")
        out[name] = (name, soft, hard)
    return tuple(out.values())


def _opt_int(value: Any, field: str) -> int | None:
    """An optional limit: absent, or an integer where -1 (0 for some) means unlimited."""
    if value is None:
        return None
    return _int(value, field)


def _limits(res: dict[str, Any], warnings: list[str]) -> Limits:
    mem = res.get("memory", {})
    if mem.get("kernel") or mem.get("kernelTCP"):
        # As runc (1.1): the kernel deprecated kernel memory limits; set, they are ignored.
        warnings.append("linux.resources.memory.kernel/kernelTCP: kernel memory settings "
                        "are ignored (deprecated by the kernel; runc ignores them too)")
    reservation = _opt_int(mem.get("reservation"), "linux.resources.memory.reservation")
    reservation = None if reservation is None or reservation <= 0 else reservation
    swappiness = _opt_int(mem.get("swappiness"), "linux.resources.memory.swappiness")
    if swappiness is not None and not 0 <= swappiness <= 100:
        raise _err("linux.resources.memory.swappiness", "must be in 0..100")
    oom_off = mem.get("disableOOMKiller") or None
    cpuset = {}
    for key in ("cpus", "mems"):
        value = res.get("cpu", {}).get(key)
        if value:
            if not all(ch in "0123456789,-" for ch in value):
                raise _err(f"linux.resources.cpu.{key}", f"{value!r} is not a list of "
                           "numbers and ranges (0-3,6)")
            cpuset[key] = value
    memory = _opt_int(mem.get("limit"), "linux.resources.memory.limit")
    memory = None if memory is None or memory < 0 else memory
    swap_total = _opt_int(mem.get("swap"), "linux.resources.memory.swap")
    swap = None
    if swap_total is not None and swap_total >= 0:
        if memory is None or swap_total < memory:
            raise _err("linux.resources.memory.swap", "is memory+swap: needs a limit and "
                       "must be >= it")
        swap = swap_total - memory
    pids = _opt_int(res.get("pids", {}).get("limit"), "linux.resources.pids.limit")
    pids = None if pids is None or pids <= 0 else pids
    cpu = res.get("cpu", {})
    quota = _opt_int(cpu.get("quota"), "linux.resources.cpu.quota")
    quota = None if quota is None or quota <= 0 else quota
    period = _opt_int(cpu.get("period"), "linux.resources.cpu.period") or None  # 0: unset (runc)
    if period is not None and period < 1000:
        raise _err("linux.resources.cpu.period", "must be >= 1000 (microseconds)")
    shares = _opt_int(cpu.get("shares"), "linux.resources.cpu.shares") or None
    devices = None
    if "devices" in res:
        devices = _device_rules(res["devices"])
    return Limits(memory=memory, swap=swap, pids=pids, cpu_quota_us=quota,
                  cpu_period_us=period or 100_000, cpu_shares=shares, devices_allow=devices,
                  memory_reservation=reservation, swappiness=swappiness,
                  oom_kill_disable=oom_off, cpuset_cpus=cpuset.get("cpus"),
                  cpuset_mems=cpuset.get("mems"))


def _device_rules(items: list[dict[str, Any]]) -> tuple[str, ...]:
    """The device cgroup: deny all, runc's default nodes, then the config's allows.

    A config that starts with something other than a deny-all still gets one first
    (stricter). A later deny that no earlier allow of the config overlaps denies what is
    denied already (docker sends `deny c 10:229` after its allows): skipped, as runc's
    cgroup ends up the same (its default nodes come after the config's rules). A deny
    that would cut into an earlier allow is refused rather than approximated."""
    rules = list(DEFAULT_DEVICE_RULES)
    allowed: list[tuple[str, str, str, str]] = []  # the config's allows so far
    for i, d in enumerate(items):
        f = f"linux.resources.devices[{i}]"
        allow = d.get("allow")
        if not isinstance(allow, bool):
            raise _err(f + ".allow", "must be true or false")
        kind = d.get("type", "a")
        major = d.get("major", -1)
        minor = d.get("minor", -1)
        access = d.get("access", "rwm")
        if kind not in ("a", "c", "b") or not isinstance(access, str) or \
                not set(access) <= set("rwm") or not access:
            raise _err(f, "type must be a, c or b and access a subset of rwm")
        whole = kind == "a" and major in (-1, None) and minor in (-1, None)
        ma = "*" if major in (-1, None) else str(_int(major, f + ".major", 0))
        mi = "*" if minor in (-1, None) else str(_int(minor, f + ".minor", 0))
        if not allow:
            if whole and access == "rwm" and i == 0:
                continue  # the leading deny-all: always applied anyway
            if any(_overlaps((kind, ma, mi, access), rule) for rule in allowed):
                raise _err(f, "a deny rule that cuts into an earlier allow is not supported")
            continue
        allowed.append((kind, ma, mi, access))
        rules.append("a" if kind == "a" else f"{kind} {ma}:{mi} {access}")
    return tuple(rules)


def _overlaps(a: tuple[str, str, str, str], b: tuple[str, str, str, str]) -> bool:
    """Two device rules (type, major, minor, access) match a common device and access."""
    def same(x: str, y: str, wild: str) -> bool:
        return wild in (x, y) or x == y

    return (same(a[0], b[0], "a") and (a[0] == "a" or b[0] == "a" or
                                       (same(a[1], b[1], "*") and same(a[2], b[2], "*")))
            and bool(set(a[3]) & set(b[3])))


def _devices(items: list[dict[str, Any]]) -> tuple[tuple[str, str | None], ...]:
    """linux.devices beyond the nodes stockade's /dev always has, as the "dev" MountOp's
    data: (path below /dev, "TYPE MAJOR MINOR MODE UID GID"). Made in the container's
    /dev (mknod; in a user namespace, which cannot mknod, the host's node at the same
    path is bound instead, as runc does). The device cgroup is not widened: allow rules
    are linux.resources.devices' (runc's rule too)."""
    out: dict[str, tuple[str, str | None]] = {}
    for i, d in enumerate(items):
        f = f"linux.devices[{i}]"
        path = d.get("path")
        kind = d.get("type", "c")
        major, minor = d.get("major"), d.get("minor")
        if _NODES.get(str(path)) == (major, minor) and kind == "c":
            continue  # one of the fixed nodes, bound from the host always
        if not isinstance(path, str) or not path.startswith("/dev/") or \
                os.path.normpath(path) != path or path in _NODES or path == "/dev/console":
            raise _err(f + ".path", f"{path!r}: must be a clean path below /dev/ (stockade's "
                       "/dev is its own tmpfs) other than its fixed nodes "
                       f"({', '.join(sorted(_NODES))}) and /dev/console")
        if kind not in ("c", "b", "u", "p"):
            raise _err(f + ".type", f"{kind!r}: must be c, b, u or p")
        kind = "c" if kind == "u" else kind
        if kind == "p":
            major = minor = 0
        major = _int(major, f + ".major", 0)
        minor = _int(minor, f + ".minor", 0)
        # Engines send the type bits too (podman: 0o20666); the permission bits count.
        mode = _int(d.get("fileMode", 0o666), f + ".fileMode", 0) & 0o777
        uid = _int(d.get("uid", 0), f + ".uid", 0)
        gid = _int(d.get("gid", 0), f + ".gid", 0)
        out[path] = (path[len("/dev/"):], f"{kind} {major} {minor} {mode} {uid} {gid}")
    return tuple(out.values())


def _seccomp(sec: dict[str, Any] | None, proc: dict[str, Any],
             native: str) -> tuple[bytes, int]:
    if sec is None:
        return b"", 0
    from stockade.seccomp.runc_build import compile_docker_profile

    if "defaultAction" not in sec:
        raise _err("linux.seccomp.defaultAction", "is missing")
    actions = [sec["defaultAction"]] + [s.get("action") for s in sec.get("syscalls", [])]
    for i, action in enumerate(actions):
        if not isinstance(action, str) or not action.startswith("SCMP_ACT_"):
            where = "defaultAction" if i == 0 else f"syscalls[{i - 1}].action"
            raise _err(f"linux.seccomp.{where}", f"unknown action {action!r}")
    if "SCMP_ACT_NOTIFY" in actions:
        raise _err("linux.seccomp", "SCMP_ACT_NOTIFY needs a listenerPath, not supported")
    flags = 0
    for name in _strs(sec.get("flags", []), "linux.seccomp.flags"):
        if name not in L.OCI_SECCOMP_FLAGS:
            raise _err("linux.seccomp.flags", f"unknown flag {name}")
        flags |= L.OCI_SECCOMP_FLAGS[name]
    from stockade.linux.syscall_table import canonical_arch

    for a in sec.get("architectures", []):
        if canonical_arch(str(a)) is None:
            raise _err("linux.seccomp.architectures", f"unknown architecture {a}")
    try:
        caps = frozenset(proc.get("capabilities", {}).get("bounding", []))
        bpf = compile_docker_profile(sec, caps=caps, native=native)
    except (KeyError, ValueError, OSError, TypeError) as exc:
        raise _err("linux.seccomp", f"does not compile: {exc}") from exc
    return bpf, flags


def _is_hosts_netns(path: str, field: str) -> bool:
    """A network namespace file is init's or this runtime's own (engines run the
    runtime in the host's): a net sysctl written there would change the host, not the
    container. init's may be closed to us (ptrace access mode): then our own decides."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _err(field, f"{path}: {exc.strerror}") from exc
    import contextlib

    hosts = [os.stat("/proc/self/ns/net")]
    with contextlib.suppress(OSError):
        hosts.append(os.stat("/proc/1/ns/net"))
    return any((st.st_dev, st.st_ino) == (o.st_dev, o.st_ino) for o in hosts)


def _sysctl(items: Any, new_ns: set[str],
            joined: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Namespaced sysctls only. A net one also in a network namespace joined by path
    (podman, CNI: the container's own, made by the engine), unless that is the host's."""
    if not isinstance(items, dict):
        raise _err("linux.sysctl", "must be an object")
    out = []
    for key, value in sorted(items.items()):
        field = f"linux.sysctl.{key}"
        if key in _NAMESPACED_SYSCTL or key.startswith("fs.mqueue."):
            if "ipc" not in new_ns:
                raise _err(field, "an ipc sysctl needs a new ipc namespace")
        elif key.startswith("net."):
            netns = joined.get("network")
            if "net" not in new_ns and netns is None:
                raise _err(field, "a net sysctl needs a network namespace of the "
                           "container's own (new, or joined by path)")
            if netns is not None and _is_hosts_netns(netns, field):
                raise _err(field, f"linux.namespaces joins {netns}, the host's network "
                           "namespace: the sysctl would change the host")
        elif key in ("kernel.hostname", "kernel.domainname"):
            if "uts" not in new_ns:
                raise _err(field, "needs a new uts namespace")
        else:
            raise _err(field, "not a namespaced sysctl: it would change the host")
        if "/" in key or ".." in key:
            raise _err(field, "bad name")
        out.append((key, str(value)))
    return tuple(out)


def _options(opts: tuple[str, ...],
             field: str) -> tuple[int, tuple[tuple[str, str | None], ...], bool, int]:
    """(MOUNT_ATTR_* flags, fsconfig data, a bind?, propagation flags: the last given)."""
    attrs = 0
    data: list[tuple[str, str | None]] = []
    bind = False
    propagation = 0
    for opt in opts:
        name, sep, value = opt.partition("=")
        if name in ("bind", "rbind"):
            bind = True
        if opt in L.PROPAGATION:
            propagation = L.PROPAGATION[opt]
        elif opt in _ATTR_OPTS:
            attrs |= _ATTR_OPTS[opt]
        elif name in _DATA_OPTS:
            data.append((name, value if sep else None))
        else:
            raise _err(field, f"mount option {opt!r} is not supported")
    return attrs, tuple(data), bind, propagation


def _mounts(cfg: dict[str, Any], bundle: str, rootfs: str, new_ns: set[str],
            linux: dict[str, Any],
            devices: tuple[tuple[str, str | None], ...]) -> tuple[MountOp, ...]:
    ops = [MountOp("root", "/", rootfs, readonly=bool(cfg["root"].get("readonly")),
                   why="root.path")]
    have_dev = False
    for i, m in enumerate(cfg.get("mounts", [])):
        field = f"mounts[{i}]"
        dst = m.get("destination")
        if not isinstance(dst, str) or not dst.startswith("/"):
            raise _err(field + ".destination", "must be an absolute path")
        dst = os.path.normpath(dst)
        kind = m.get("type", "")
        attrs, data, bind, prop = _options(_strs(m.get("options", []), field + ".options"),
                                           field + ".options")
        ro = bool(attrs & L.MOUNT_ATTR_RDONLY)
        why = f"{field} {kind or 'bind'}"
        source = m.get("source") or kind  # mountinfo's source field, as runc mounts it
        if bind or kind == "bind":
            src = m.get("source")
            if not isinstance(src, str) or not src:
                raise _err(field + ".source", "a bind needs a source")
            src = src if os.path.isabs(src) else os.path.join(bundle, src)
            if not os.path.exists(src):
                raise _err(field + ".source", f"{src} does not exist")
            ops.append(MountOp("bind", dst, os.path.realpath(src), readonly=ro, why=why,
                               propagation=prop))
        elif kind == "proc":
            ops.append(MountOp("proc", dst, why=why, source=source, propagation=prop))
        elif kind == "tmpfs" and dst == "/dev":
            # Stricter than runc: stockade's /dev is its own read-only tmpfs with a fixed
            # set of nodes, a fresh devpts and /dev/shm.
            ops.append(MountOp("dev", "/dev", why=why, source=source, data=devices))
            have_dev = True
        elif kind == "devpts" and dst == "/dev/pts" and have_dev:
            continue  # part of stockade's /dev (newinstance, ptmxmode=0666, mode=0620)
        elif kind == "tmpfs" and dst == "/dev/shm" and have_dev:
            continue  # part of stockade's /dev
        elif kind == "sysfs":
            ops.append(MountOp("sysfs", dst, readonly=True, why=why,  # always read-only
                               source=source, propagation=prop))
        elif kind == "cgroup":
            # Stricter than runc: the container's cgroup files are not shown (an empty
            # read-only tmpfs instead), so limits cannot be raised or read from inside.
            ops.append(MountOp("fs", dst, fstype="tmpfs", data=(("mode", "0555"),),
                               attrs=L.MOUNT_ATTR_RDONLY | L.MOUNT_ATTR_NOEXEC, why=why,
                               source="tmpfs"))  # runc's /sys/fs/cgroup is a tmpfs too
        elif kind in ("tmpfs", "mqueue"):
            ops.append(MountOp("fs", dst, fstype=kind, data=data if kind == "tmpfs" else (),
                               attrs=attrs, readonly=ro, why=why, source=source,
                               propagation=prop))
        else:
            raise _err(field, f"mount type {kind!r} is not supported")
    if not have_dev:
        ops.insert(1, MountOp("dev", "/dev", why="stockade's minimal /dev (always)",
                              source="tmpfs", data=devices))
    for p in _strs(linux.get("maskedPaths", []), "linux.maskedPaths"):
        ops.append(MountOp("mask", p, why="linux.maskedPaths", optional=True))
    for p in _strs(linux.get("readonlyPaths", []), "linux.readonlyPaths"):
        ops.append(MountOp("readonly", p, readonly=True, why="linux.readonlyPaths",
                           optional=True))
    return tuple(ops)


def _hooks(hooks: dict[str, Any]) -> tuple[tuple[str, tuple[Hook, ...]], ...]:
    out = []
    for kind in HOOK_KINDS:
        items = []
        for i, h in enumerate(hooks.get(kind, [])):
            f = f"hooks.{kind}[{i}]"
            path = h.get("path")
            if not isinstance(path, str) or not os.path.isabs(path):
                raise _err(f + ".path", "must be an absolute path")
            timeout = h.get("timeout")
            if timeout is not None and _int(timeout, f + ".timeout", 1) <= 0:
                raise _err(f + ".timeout", "must be > 0")
            items.append(Hook(path, _strs(h.get("args", [path]), f + ".args"),
                              _strs(h.get("env", []), f + ".env"), timeout))
        if items:
            out.append((kind, tuple(items)))
    return tuple(out)
