"""Plans for the compiled front end's create/run (oci/fastexec.c).

The front end runs a container from a stored plan without an interpreter. When it has
none for a bundle, it hands `create`/`run` to this runtime with STOCKADE_FAST_STAMP (its
build stamp), STOCKADE_FAST_KEY (its FNV-1a of the bundle's real path and config.json)
and STOCKADE_FAST_FRONTEND (itself). `stockade oci` then translates config.json, stores
the plan in `<root>/.fast/<key>` (0600; the KEEP newest are kept) if the front end can
carry it out exactly as the Python runner does, and execs the front end again, which
runs it (once: with STOCKADE_FAST_PLANNED set, a miss goes to Python for good). So the
interpreter's runner is never loaded for such a container, the first time included.

The entry holds the config.json bytes (compared whole, so no hash collision can pick a
wrong plan), the build stamp, the host facts the translation used and the real paths of
the symlinked paths it resolved, all re-checked by the front end.

Not stored (always Python): hooks, a terminal, namespaces joined by path, LSM labels,
Landlock, newuidmap id maps, an io weight, swap on cgroup v1, a cpuset, linux.devices,
warnings (ignored properties), a policy overlay.
"""

from __future__ import annotations

import os
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from stockade.oci.translate import Container
    from stockade.runner.cgroups import Hierarchy

MAGIC = b"STKFAST1"
MAX_ITEMS = 64  # fastexec.c FAST_MAX (env: 4x)
KEEP = 128  # stored plans kept per state root
KINDS = {"proc": 1, "sysfs": 2, "tmpfs": 3, "dev": 4, "fs": 5, "bind": 6, "writable": 7,
         "readonly": 8, "mask": 9}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../stockade


def stamp(top: str = PACKAGE) -> str:
    """The build stamp: the name, size and mtime of every file of the installed package
    (its Python and C sources, vocabularies, data) and of libseccomp. A plan is the translation of
    config.json by this code, so a plan stored by other code (an upgrade, an edit) is
    never used, and a front end built from other sources is never given one. An identity
    check, not a security boundary (plans are trusted for their owner and mode): zlib,
    not hashlib (OpenSSL, ~3 ms), ~0.5 ms on the path of a new config.json."""
    import zlib

    entries: list[str] = []
    stack = [top]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as it:
            for e in it:
                if e.name == "__pycache__" or e.name.endswith((".pyc", ".tmp")):
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                    continue
                st = e.stat(follow_symlinks=False)
                entries.append(f"{e.path[len(top):]}\0{st.st_size}\0{st.st_mtime_ns}")
    entries.sort()
    # The seccomp programs in a plan were compiled by this libseccomp.
    arch = getattr(sys.implementation, "_multiarch", "")
    for lib in (f"/usr/lib/{arch}/libseccomp.so.2", f"/lib/{arch}/libseccomp.so.2"):
        try:
            st = os.stat(lib)
        except OSError:
            continue
        entries.append(f"{os.path.realpath(lib)}\0{st.st_size}\0{st.st_mtime_ns}")
        break
    return f"{zlib.crc32(chr(10).join(entries).encode()):08x}-{len(entries)}"


class _Out:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u64(self, *values: int) -> None:
        for v in values:
            self.parts.append(struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

    def raw(self, data: bytes) -> None:
        self.parts.append(struct.pack("<I", len(data)) + data + b"\0")

    def s(self, *texts: str) -> None:
        for text in texts:
            data = text.encode()
            if b"\0" in data:
                raise _NotStored("a NUL byte in a string")
            self.raw(data)

    def count(self, n: int, limit: int = MAX_ITEMS) -> None:
        if n > limit:
            raise _NotStored(f"more than {limit} items in a list")
        self.u64(n)


class _NotStored(Exception):
    pass


def why_not(c: Container, h: Hierarchy) -> str | None:
    """None when the front end can carry this container out; else the reason."""
    plan = c.plan
    p = plan.policy
    lim = p.limits
    checks = (
        (os.geteuid() != 0, "not root"),
        (plan.init, "an init process"),
        (plan.tty, "a terminal"),
        (plan.identity.helper != "direct", "id maps written by newuidmap"),
        (plan.identity.pool is not None, "an id range of the pool (pinned by create)"),
        (bool(c.join), "namespaces joined by path"),
        (bool(c.hooks) or bool(plan.start_hooks) or plan.pause_before_root, "hooks"),
        (p.lsm.apparmor_profile is not None or p.lsm.selinux_label is not None, "an LSM label"),
        (p.landlock.enabled, "Landlock"),
        (plan.seccomp_listener_sock >= 0, "a seccomp listener"),
        (plan.host_root, "the host's root"),
        (h.mode not in ("v1", "hybrid", "v2") or (h.mode == "v2" and h.v2_mount is None),
         f"cgroup mode {h.mode}"),
        (lim.io_weight is not None, "an io weight"),
        (lim.swap is not None and h.mode != "v2", "swap on cgroup v1"),
        (lim.cpuset, "a cpuset (its directories take their parent's cpus and mems)"),
        (h.mode == "v2" and (lim.swappiness is not None or bool(lim.oom_kill_disable)),
         "swappiness or disableOOMKiller on cgroup v2 (a warning)"),
        (bool(c.warnings), "warnings to log"),
        (any(m.kind == "dev" and m.data for m in plan.mounts), "linux.devices"),
        (plan.mounts[0].kind != "root", "no root mount first"),
    )
    for bad, why in checks:
        if bad:
            return why
    return None


def encode(c: Container, h: Hierarchy, config: bytes, last_cap: int,
           deps: list[tuple[str, str]], build: str) -> bytes:
    """The entry (fastexec.c load_plan/read_plan read it in this order)."""
    plan = c.plan
    p = plan.policy
    o = _Out()
    o.parts.append(MAGIC)
    o.s(build)
    o.s(c.bundle)
    o.raw(config)
    o.u64(last_cap)
    o.u64(os.geteuid())
    o.s(os.environ.get("STOCKADE_TEST_CGROUP_V2", ""))  # a test-only switch of detect()
    o.s(os.uname().release)  # the seccomp program was compiled for this kernel
    o.count(len(deps))
    for path, real in deps:
        o.s(path, real)
    o.u64(plan.clone_flags)
    o.u64(int(plan.cgroup_ns))
    o.u64(int(p.network == "loopback"))
    o.s(plan.hostname or "")
    o.count(len(plan.sysctl))
    for k, v in plan.sysctl:
        o.s(k, v)
    _cgroup(o, c, h)
    o.u64(int(c.oom_score_adj is not None))
    o.u64(c.oom_score_adj or 0)
    root = plan.mounts[0]
    o.s(plan.rootfs)
    from stockade.runner.linux_consts import PROPAGATION

    # rootfs.build: every mount is rslave as made; another rootfsPropagation is applied
    # to the new root after pivot_root.
    o.u64(0 if plan.propagation == "rslave" else PROPAGATION[plan.propagation])
    o.u64(int(root.readonly))
    rest = plan.mounts[1:]
    o.count(len(rest))
    for m in rest:
        if m.kind not in KINDS:
            raise _NotStored(f"mount kind {m.kind}")
        o.u64(KINDS[m.kind])
        o.s(m.dst, m.src)
        o.u64(int(m.readonly), int(m.optional))
        o.s(m.fstype)
        o.u64(m.attrs)
        o.s(m.source)
        o.u64(m.propagation)
        o.count(len(m.data))
        for opt, opt_value in m.data:
            o.s(opt)
            o.u64(int(opt_value is not None))
            o.s(opt_value or "")
    ident = plan.identity
    o.u64(int(ident.userns))
    o.s("".join(f"{m.inside} {m.outside} {m.count}\n" for m in ident.uid_map))
    o.s("".join(f"{m.inside} {m.outside} {m.count}\n" for m in ident.gid_map))
    o.u64(int(any(m.inside == 0 for m in ident.uid_map)
              and any(m.inside == 0 for m in ident.gid_map)))  # child._maps_root
    o.u64(ident.uid, ident.gid, int(ident.setgroups == "allow"))
    o.count(len(ident.groups))
    for g in ident.groups:
        o.u64(g)
    caps = p.caps
    o.u64(caps.bounding, caps.permitted, caps.effective, caps.inheritable, caps.last_cap)
    o.count(len(caps.ambient))
    for cap in caps.ambient:
        o.u64(cap)
    from stockade.runner.plan import RLIMIT_NAMES

    o.count(len(p.rlimits))
    for name, soft, hard in p.rlimits:
        o.u64(RLIMIT_NAMES[name], soft, hard)
    o.u64(int(p.no_new_privs))
    o.u64(p.seccomp_flags)
    o.raw(p.seccomp_bpf)
    o.raw(p.seccomp_extra)
    o.s(plan.cwd)
    o.u64(int(plan.umask is not None))
    o.u64(plan.umask or 0)
    o.count(len(plan.argv))
    for a in plan.argv:
        o.s(a)
    env = dict(plan.env)  # as the runner's execve: the last of a repeated key wins
    o.count(len(env), MAX_ITEMS * 4)
    for k, v in env.items():
        o.s(f"{k}={v}")
    # No HOME in config.json: the front end reads it from the rootfs's /etc/passwd when
    # it runs the plan (translate's _home, the same rules), appended last as translate does.
    o.u64(int("HOME" not in env), plan.identity.uid)
    o.s(dict(plan.env).get("PATH", DEFAULT_PATH))
    o.s(c.rootfs)
    o.count(len(c.annotations))
    for k, v in c.annotations:
        o.s(k, v)
    o.count(len(plan.notes))  # printed by create, as launch_held's notes
    for note in plan.notes:
        o.s(note)
    return b"".join(o.parts)


def _cgroup(o: _Out, c: Container, h: Hierarchy) -> None:
    """launcher.launch_held + cgroups.create + apply: as root a cgroup always exists.
    v1: a directory per controller; v2: one, born into with clone3, the device rules an
    eBPF program. Controller directories are given by their mount; fastexec.c adds the
    runtime's own cgroup for a relative (or the default stockade/<id>) path."""
    lim = c.plan.policy.limits
    absolute = c.cgroups_path is not None and c.cgroups_path.startswith("/")
    leaf = (c.cgroups_path or "").lstrip("/")
    if h.mode == "v2" and h.v2_mount is not None:
        from stockade.runner.cgroups.devices_bpf import program
        from stockade.runner.cgroups.v2 import WANTED, v2_writes

        o.u64(2)
        o.count(1)
        o.s("", h.v2_mount)
        o.u64(int(absolute))
        o.s(leaf)
        v2 = v2_writes(lim)
        o.count(len(v2))
        for _ctrl, _key, name, value in v2:
            o.s("", name, value)
        enable = WANTED if not leaf else ()  # V2Cgroup.create: only below stockade/
        o.count(len(enable))
        o.s(*enable)
        o.raw(program(lim.devices_allow) if lim.devices_allow is not None else b"")
        return
    from stockade.runner.cgroups.v1 import NEEDED, v1_writes

    mounts = {name: mnt for name, mnt, _ in h.v1_mounts}
    ctrls = list(NEEDED) + (["devices"] if lim.devices_allow is not None else [])
    ctrls += ["freezer"] if "freezer" in mounts else []  # as launch_held (pause/resume)
    o.u64(1)
    o.count(len(ctrls))
    for name in ctrls:
        if name not in mounts:
            raise _NotStored(f"the {name} controller is not mounted")
        o.s(name, mounts[name])
        o.u64(int(absolute))
    o.s(leaf)
    v1 = v1_writes(lim)
    o.count(len(v1))
    for ctrl, name, value in v1:
        o.s(ctrl, name, value)
    o.count(0)
    o.raw(b"")


def deps_of(cfg: dict[str, Any], c: Container) -> list[tuple[str, str]]:
    """What the translation read besides config.json: (path, real path) of the paths
    whose symlinks it resolved (root.path, bind sources); the front end checks each
    still resolves the same. (It reads HOME from the rootfs's /etc/passwd itself.)"""
    out: list[tuple[str, str]] = []
    raw = cfg["root"]["path"]
    out.append((raw if os.path.isabs(raw) else os.path.join(c.bundle, raw), c.rootfs))
    for m in cfg.get("mounts", []):
        src = m.get("source")
        opts = m.get("options", []) or []
        if isinstance(src, str) and src and (m.get("type") == "bind" or "bind" in opts
                                             or "rbind" in opts):
            path = src if os.path.isabs(src) else os.path.join(c.bundle, src)
            out.append((path, os.path.realpath(path)))
    return out


def offer(root: str, c: Container, cfg: dict[str, Any], last_cap: int) -> str:
    """The front end asks for the plan (STOCKADE_FAST_STAMP, STOCKADE_FAST_KEY: it has
    seen this bundle and config.json before). Never raises: a plan not stored only means
    the next call goes through Python again."""
    key_hex = os.environ.get("STOCKADE_FAST_KEY", "")
    if len(key_hex) != 16 or not all(ch in "0123456789abcdef" for ch in key_hex):
        return "not stored: no key from the front end"
    from stockade.runner.cgroups import detect_cached  # loaded by create already

    h = detect_cached()
    why = why_not(c, h)
    if why is not None:
        return f"not stored: {why}"
    return store(root, c, h, cfg, last_cap, key_hex)


def hand_back() -> None:
    """exec the front end (STOCKADE_FAST_FRONTEND) with this command's arguments, now that
    its plan is stored; it falls back to Python without asking again. Returns only if
    that cannot be done."""
    import sys

    front_end = os.environ.get("STOCKADE_FAST_FRONTEND", "")
    argv = sys.argv
    if not os.path.isabs(front_end) or len(argv) < 2 or argv[1] != "oci":
        return
    for name in ("STOCKADE_FAST_STAMP", "STOCKADE_FAST_KEY", "STOCKADE_FAST_FRONTEND"):
        os.environ.pop(name, None)
    os.environ["STOCKADE_FAST_PLANNED"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(front_end, [front_end, *argv[2:]])
    except OSError:
        os.environ.pop("STOCKADE_FAST_PLANNED", None)


def store(root: str, c: Container, h: Hierarchy, cfg: dict[str, Any], last_cap: int,
          key_hex: str) -> str:
    """Store the plan (offer checked that the front end can run it); what was done."""
    build = os.environ.get("STOCKADE_FAST_STAMP", "")
    try:
        if build != stamp():
            return "not stored: the front end was built from other sources"
        with open(os.path.join(c.bundle, "config.json"), "rb") as fh:
            config = fh.read()
        # Stored under the front end's key: were config.json to change in between, the
        # entry (holding the bytes read here) would just never match.
        data = encode(c, h, config, last_cap, deps_of(cfg, c), build)
        directory = os.path.join(root, ".fast")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, key_hex)
        from stockade.runner.cache import write_atomic

        if not write_atomic(path, data):
            return f"not stored: cannot write {path}"
        _prune(directory)
        return f"stored {path}"
    except (_NotStored, OSError, KeyError, TypeError, ValueError) as exc:
        return f"not stored: {exc}"


def _prune(directory: str) -> None:
    """Keep the KEEP newest plans: the rest are configs that were seen once."""
    with os.scandir(directory) as it:
        found = [(e.stat().st_mtime_ns, e.path) for e in it
                 if e.is_file() and e.name != "seen"]
    for _, path in sorted(found, reverse=True)[KEEP:]:
        try:  # noqa: SIM105 - no contextlib here
            os.unlink(path)
        except FileNotFoundError:
            pass
