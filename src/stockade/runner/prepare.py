"""Policy -> PolicyPart (and the CLI's cache of it, keyed by the policy's source files).

Loading a policy (YAML, extends, vocabulary) and compiling seccomp take ~0.2 s; a CLI
run must start in a few ms, so the resolved part is cached and revalidated against the
mtime/size of every file the policy was merged from.
"""

from __future__ import annotations

import marshal
import os

from stockade.linux import host as this_host
from stockade.runner._record import from_plain, to_plain
from stockade.runner.cache import cache_dir, read_trusted, write_atomic
from stockade.runner.codes import runner_error
from stockade.runner.network.spec import NetPolicy, net_policy
from stockade.runner.plan import (
    CPU_PERIOD_US,
    RLIM_INFINITY,
    RLIMIT_NAMES,
    CapsPlan,
    IdMap,
    LandlockPlan,
    Limits,
    LsmPlan,
    PolicyPart,
)

TYPE_CHECKING = False  # not typing's: the run path loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from typing import Any

    from stockade.linux.hostfacts import HostFacts
    from stockade.policy.model import Policy

_CACHE_FORMAT = 3  # 3: marshal of plain tuples (was pickle)


def policy_part(policy: Policy, host: HostFacts | None = None,
                seccomp_bpf: bytes | None = None) -> PolicyPart:
    """Resolve everything the runner needs from the policy; raises RunnerError."""
    from stockade.policy.vocab.capabilities import CAP_NUMBER
    from stockade.runner import seccomp

    if host is None:
        from stockade.linux.hostfacts import HostFacts

        host = HostFacts.detect()
    notes: list[str] = []
    r = policy.resources
    if r.cpu is not None and r.cpu <= 0:
        raise runner_error("preflight", f"resources.cpu must be > 0, got {r.cpu}")
    limits = Limits(
        memory=r.memory, swap=r.swap, pids=r.pids,
        cpu_quota_us=None if r.cpu is None else max(1, round(r.cpu * CPU_PERIOD_US)),
        cpu_weight=r.cpu_weight, io_weight=r.io_weight,
    )
    rlimits: list[tuple[str, int, int]] = []
    for name, value in sorted(policy.rlimits.items()):
        if name not in RLIMIT_NAMES:
            raise runner_error("preflight", f"rlimits.{name}: unknown rlimit")
        v = RLIM_INFINITY if value < 0 else value
        rlimits.append((name, v, v))
    last = host.cap_last_cap
    kept = 0
    for name in policy.capabilities.kept:
        n = CAP_NUMBER[name]
        if n > last:
            raise runner_error("preflight", f"capability {name} is unknown to this kernel")
        kept |= 1 << n
    ambient = tuple(sorted(CAP_NUMBER[_canon(a)] for a in policy.capabilities.ambient))
    for a in ambient:
        if not kept >> a & 1:
            raise runner_error("preflight", "capabilities.ambient must be a subset of add")
    amb_mask = sum(1 << a for a in ambient)
    caps = CapsPlan(bounding=kept, permitted=kept, effective=kept, inheritable=amb_mask,
                    ambient=ambient, last_cap=last)
    landlock = _landlock(policy, host.landlock_abi, notes)
    lsm = _lsm(policy, host, notes)
    if seccomp_bpf is None:
        bpf = seccomp.compiled_filter(policy, host, policy.digest,
                                      seccomp.host_key(host.arch, host.kernel, host.cap_last_cap))
    else:
        bpf = seccomp.check_program(seccomp_bpf)
    fs = policy.filesystem
    return PolicyPart(
        name=policy.name, digest=policy.digest,
        namespaces=tuple(sorted(policy.namespaces)), network=policy.network.mode,
        hostname=policy.hostname, fs_root=fs.root,
        fs_tmpfs=tuple(e.path for e in fs.tmpfs), fs_writable=tuple(e.path for e in fs.writable),
        fs_read_only=tuple(e.path for e in fs.read_only), fs_deny=tuple(e.path for e in fs.deny),
        fs_expose=tuple(e.path for e in fs.expose),
        limits_best_effort=bool(r.origins) and all(
            o.startswith("<preset:") for o in r.origins.values()),
        user_uid=policy.user.uid, user_gid=policy.user.gid, user_map=policy.user.map,
        uid_map=tuple(IdMap(m.inside, m.outside, m.count) for m in policy.user.uid_map),
        gid_map=tuple(IdMap(m.inside, m.outside, m.count) for m in policy.user.gid_map),
        limits=limits, rlimits=tuple(rlimits), caps=caps,
        no_new_privs=policy.no_new_privileges, landlock=landlock, lsm=lsm,
        seccomp_bpf=bpf, notes=tuple(notes),
        net=net_policy(policy.network),
    )


def _canon(name: str) -> str:
    n = name.upper()
    return n if n.startswith("CAP_") else "CAP_" + n


def _landlock(policy: Policy, abi: int, notes: list[str]) -> LandlockPlan:
    mode = policy.lsm.landlock.mode
    if mode == "off":
        return LandlockPlan("off", abi)
    if abi <= 0:
        if mode == "required":
            raise runner_error("landlock", "lsm.landlock.mode is 'required' but Landlock is "
                               "not available on this kernel")
        notes.append("landlock: not available on this kernel; not applied (best-effort)")
        return LandlockPlan(mode, 0)
    from stockade.profiles.landlock import landlock_rules

    rs = landlock_rules(policy, abi)
    for d in rs.dropped:
        # filesystem.deny is enforced by the runner's masks (bind /dev/null, empty tmpfs).
        if not d.startswith("filesystem.deny["):
            notes.append(d)
    return LandlockPlan(
        mode=mode, abi=rs.abi, handled_fs=rs.handled_access_fs,
        handled_net=rs.handled_access_net,
        paths=tuple((r.path, r.access) for r in rs.path_rules),
        ports=tuple((r.port, r.access) for r in rs.net_rules), scoped=rs.scoped,
    )


def _lsm(policy: Policy, host: HostFacts, notes: list[str]) -> LsmPlan:
    lsm = policy.lsm
    if lsm.apparmor is None and lsm.selinux is None:
        return LsmPlan(required=lsm.required)
    active = host.lsms
    aa: str | None = None
    se: str | None = None
    if lsm.apparmor is not None:
        if "apparmor" in active:
            aa = policy.name
        elif lsm.required:
            raise runner_error("lsm", "lsm.apparmor is set and lsm.required is true, but "
                               "AppArmor is not an active LSM on this host")
        else:
            notes.append("apparmor: not active on this host; exec profile NOT applied "
                         "(best-effort: lsm.required is false)")
    if lsm.selinux is not None:
        if "selinux" in active:
            se = f"system_u:system_r:{policy.selinux_type}:s0"
        elif lsm.required:
            raise runner_error("lsm", "lsm.selinux is set and lsm.required is true, but "
                               "SELinux is not an active LSM on this host")
        else:
            notes.append("selinux: not active on this host; exec label NOT applied "
                         "(best-effort: lsm.required is false)")
    from stockade.lsm.compiled import lsm_plan

    # the compiled profile / module travel in the plan: the runner loads them (lsm.load)
    return lsm_plan(policy, host, apparmor=aa is not None, selinux=se is not None)


# --- the CLI's cache: policy reference -> PolicyPart ----------------------------------


def _source_path(source: str) -> str | None:
    if source.startswith("<preset:") and source.endswith(">"):
        name = source[len("<preset:"):-1]
        return os.path.join(os.path.dirname(os.path.dirname(__file__)), "policy", "presets",
                            f"{name}.yaml")
    return source if source.startswith("/") else os.path.abspath(source)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _where(ref: str) -> str:
    """A preset's name as is; a policy file by its absolute path."""
    return ref if "/" not in ref and not ref.endswith((".yaml", ".yml")) else os.path.abspath(ref)


def _host_key() -> str:
    """The host facts a cached part depends on: fixed for this boot, so computed once
    per process (a function attribute: no module-level mutable state to reset)."""
    cached: str | None = getattr(_host_key, "value", None)
    if cached is None:
        from stockade import __version__

        # The Landlock ABI is fixed for a boot, and asking the kernel for it takes ctypes
        # and libseccomp on every run: the boot id stands for it (one miss per boot).
        landlock = this_host.boot_id() or f"landlock {this_host.landlock_abi()}"
        cached = (f"{_CACHE_FORMAT}\0{__version__}\0{landlock}\0{this_host.kernel()}"
                  f"\0{this_host.cap_last_cap()}\0{_layout()}")
        _host_key.value = cached  # type: ignore[attr-defined]
    return cached


def _cache_key(ref: str) -> tuple[str, str]:
    """(file name, full key). The full key is stored in the entry and compared on load,
    so the short name (crc32, no hashlib import on the run path) may collide harmlessly."""
    import zlib

    raw = f"{_where(ref)}\0{_host_key()}"
    return f"{zlib.crc32(raw.encode()):08x}-{len(raw)}", raw


_RECORDS: dict[str, type] = {
    r.__name__: r for r in (PolicyPart, Limits, CapsPlan, LandlockPlan, LsmPlan, IdMap,
                            NetPolicy)}


def _layout() -> str:
    """The cached records' field names: a part stored before a field was added to one of
    them would load without it (TypeError, or a shifted field), so a new layout is
    a new key."""
    records = (PolicyPart, Limits, CapsPlan, LandlockPlan, LsmPlan, IdMap, NetPolicy)
    return ";".join(f"{r.__name__}:{','.join(getattr(r, '_fields', ()))}" for r in records)


_Stamps = tuple[tuple[str, tuple[int, int, int]], ...]


def _fresh(stamps: _Stamps) -> bool:
    return bool(stamps) and all(_stamp(p) == tuple(s) for p, s in stamps)


def load_part(ref: str) -> PolicyPart:
    """The PolicyPart for a policy file or preset name, from the cache when still valid.

    Two levels: this process's memo (a service calling stockade.run() in a loop pays
    only a stat() per source file), then the on-disk cache shared by CLI runs."""
    memo: dict[str, tuple[_Stamps, PolicyPart]] = _MEMO
    where = _where(ref)
    hit = memo.get(where)
    if hit is not None and _fresh(hit[0]):
        return hit[1]
    directory = cache_dir("plans")
    name, key = _cache_key(ref)
    path = None if directory is None else os.path.join(directory, name + ".part")
    if path is not None:
        data = read_trusted(path)
        if data is not None:
            try:
                stored_key, stamps, plain = marshal.loads(data)
                part = from_plain(plain, _RECORDS) if stored_key == key else None
            except (EOFError, ValueError, TypeError, KeyError, IndexError):
                stored_key, stamps, part = None, None, None
            if stored_key == key and isinstance(part, PolicyPart) and _fresh(stamps):
                memo[where] = (tuple((p, tuple(s)) for p, s in stamps), part)
                return part
    from stockade.errors import StockadeError
    from stockade.policy.loader import load_policy

    try:
        policy = load_policy(ref)
    except StockadeError:
        raise
    except OSError as exc:
        raise runner_error("policy", f"cannot load policy {ref!r}: {exc}") from exc
    part = policy_part(policy)
    if path is not None:
        stamps = []
        for src in policy.sources:
            sp = _source_path(src)
            st = None if sp is None else _stamp(sp)
            if sp is None or st is None:
                return part  # a source we cannot revalidate: do not cache
            stamps.append((sp, st))
        if stamps:
            entry: Any = (key, tuple(stamps), to_plain(part, _RECORDS))  # see to_plain
            write_atomic(path, marshal.dumps(entry))
            memo[where] = (tuple(stamps), part)
    return part


# policy reference -> (source stamps, part): a cache of immutable values, revalidated on
# every use like the on-disk one.
_MEMO: dict[str, tuple[_Stamps, PolicyPart]] = {}
