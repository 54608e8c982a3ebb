"""Plans for the compiled front end's create/run (oci/fastexec.c).

The front end runs a container from a stored plan without an interpreter. When it has
none for a bundle, it hands `create`/`run` to this runtime with STOCKADE_FAST_STAMP (its
build stamp), STOCKADE_FAST_KEY (its FNV-1a of the bundle's real path and config.json)
and STOCKADE_FAST_FRONTEND (itself). `stockade oci` then translates config.json, stores
the plan in `<root>/.fast/<key>` (0600; the KEEP newest are kept) if the front end can
carry it out exactly as the Python runner does, and execs the front end again, which
runs it (once: with STOCKADE_FAST_PLANNED set, a miss goes to Python for good). So the
interpreter's runner is never loaded for such a container, the first time included.

The entry is the executor's plan (executor/plan_json.py, docs/EXECUTOR.md). It holds the
config.json bytes (compared whole, so no hash collision can pick a wrong plan), the build
stamp, the host facts the translation used and the real paths of the symlinked paths it
resolved, all re-checked by the front end.

Not stored (always Python): hooks, a terminal, namespaces joined by path, an LSM profile
or module to load (an exec label alone is stored), newuidmap id maps, an io weight and
swappiness on cgroup v2 (notes to print), warnings (ignored properties), a policy
overlay. Everything else the executor carries out as Python's create would (its steps
are the same code).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from stockade.oci.translate import Container
    from stockade.runner.cgroups import Hierarchy

KEEP = 128  # stored plans kept per state root
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../stockade


BUILD_STAMP = "BUILD_STAMP"  # an installed package's stamp, written by its build (setup.py)


def stamp(top: str = PACKAGE) -> str:
    """The build stamp: the stamp of the package's sources and libseccomp's name, size and
    mtime. A plan is the translation of config.json by this code, so a plan stored by
    other code (an upgrade, an edit) is never used, and a front end built from other
    sources is never given one. The sources' stamp is the one fixed by the package's
    build (BUILD_STAMP) when installed, else (an editable install, a checkout) the name,
    size and mtime of every file of the package (its Python and C sources, vocabularies,
    data). An identity check, not a security boundary (plans are trusted for their owner
    and mode): zlib, not hashlib (which loads OpenSSL): it runs on the path of every new
    config.json."""
    import zlib

    try:
        with open(os.path.join(top, BUILD_STAMP)) as fh:
            entries = [f"built\0{fh.read().strip()}"]
    except FileNotFoundError:
        entries = _files(top)
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


def _files(top: str) -> list[str]:
    """name, size and mtime of every file below top (sorted), bytecode aside."""
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
    return entries


def fix_stamp(top: str) -> None:
    """The build of an installed package: its sources' stamp, written into it (the files
    are copied when installed, so their mtimes there are not the ones built from)."""
    import zlib

    text = f"{zlib.crc32(chr(10).join(_files(top)).encode()):08x}\n"
    with open(os.path.join(top, BUILD_STAMP), "w") as fh:
        fh.write(text)


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
        (bool(p.lsm.apparmor_text) or bool(p.lsm.selinux_modules),
         "an LSM profile or module to load"),
        (plan.seccomp_listener_sock >= 0, "a seccomp listener"),
        (plan.host_root, "the host's root"),
        (h.mode not in ("v1", "hybrid", "v2") or (h.mode == "v2" and h.v2_mount is None),
         f"cgroup mode {h.mode}"),
        (lim.io_weight is not None, "an io weight"),
        (h.mode == "v2" and (lim.swappiness is not None or bool(lim.oom_kill_disable)),
         "swappiness or disableOOMKiller on cgroup v2 (a warning)"),
        (bool(c.warnings), "warnings to log"),
        (plan.mounts[0].kind != "root", "no root mount first"),
    )
    for bad, why in checks:
        if bad:
            return why
    return None


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
    from stockade.executor import plan_json

    build = os.environ.get("STOCKADE_FAST_STAMP", "")
    try:
        if build != stamp():
            return "not stored: the front end was built from other sources"
        with open(os.path.join(c.bundle, "config.json"), "rb") as fh:
            config = fh.read()
        # Stored under the front end's key: were config.json to change in between, the
        # entry (holding the bytes read here) would just never match.
        doc = plan_json.document(c, h, config, plan_json.HostFacts.of_this_host(last_cap),
                                 deps_of(cfg, c), build)
        data = plan_json.dumps(doc)
        directory = os.path.join(root, ".fast")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, key_hex)
        from stockade.runner.cache import write_atomic

        if not write_atomic(path, data):
            return f"not stored: cannot write {path}"
        _prune(directory)
        return f"stored {path}"
    except (plan_json.NotStored, OSError, KeyError, TypeError, ValueError) as exc:
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
