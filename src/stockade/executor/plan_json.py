"""The plan the compiled executor carries out, as one versioned JSON document.

Produced only here (document + dumps); read by the executor (executor/plan_read.c) with
json-c, which refuses a document of another `version` or with a missing or mistyped
field (the front end then hands the call to Python, as for any miss). docs/EXECUTOR.md describes every field and
the order in which the executor applies them; tests/data/plans/ holds a golden document
per plan kind (tools/regen_plans.py rewrites them).

A value JSON cannot hold exactly is written as documented there: byte strings (seccomp
filters, the device program) as lowercase hex, RLIM_INFINITY as -1.
"""

from __future__ import annotations

import json
import os

from stockade.linux.consts import PROPAGATION
from stockade.runner._record import frozen
from stockade.runner.plan import RLIM_INFINITY, RLIMIT_NAMES, Plan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from stockade.oci.translate import Container
    from stockade.runner.cgroups import Hierarchy

VERSION = 2
MAX_ITEMS = 64  # every other list in a plan; executor.h FAST_MAX
MAX_ARGS = 4096  # a command's arguments, its environment, a hook's; executor.h MAX_ARGS
MAX_MOUNTS = 256  # but the mounts (the jail alone has about 60); executor.h MAX_MOUNTS
MAX_LANDLOCK_RULES = 1024  # each Landlock rule list; plan_read.c LANDLOCK_MAX
MOUNT_KINDS = ("proc", "sysfs", "tmpfs", "dev", "fs", "bind", "writable", "readonly", "mask",
               "symlink", "file")
EXEC_MODES = ("create", "run", "exec")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNLIMITED = -1  # RLIM_INFINITY in `rlimits`


class NotStored(Exception):
    """The container cannot be written as a plan the executor carries out exactly."""


@frozen
class HostFacts:
    """What the translation took from the host; the executor re-checks each one."""

    cap_last_cap: int
    euid: int
    kernel: str  # the seccomp filters were compiled for this kernel release

    @classmethod
    def of_this_host(cls, cap_last_cap: int) -> HostFacts:
        return cls(cap_last_cap, os.geteuid(), os.uname().release)


def _text(value: str) -> str:
    if "\0" in value:
        raise NotStored("a NUL byte in a string")
    return value


def _text_or_none(value: str | None) -> str | None:
    return _text(value) if value else None


def _texts(values: Any, limit: int = MAX_ITEMS) -> list[str]:
    out = [_text(v) for v in values]
    return _bounded(out, limit)


def _bounded(items: list[Any], limit: int = MAX_ITEMS) -> list[Any]:
    if len(items) > limit:
        raise NotStored(f"more than {limit} items in a list")
    return items


def _rlim(value: int) -> int:
    return UNLIMITED if value in (RLIM_INFINITY, -1) else value


def document(c: Container, h: Hierarchy, config: bytes, host: HostFacts,
             deps: list[tuple[str, str]], build: str) -> dict[str, Any]:
    """The stored plan of this container for the front end: a JSON-ready dict, keys in
    the documented order. Raises NotStored for what it cannot express."""
    plan = c.plan
    try:
        config_text = config.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotStored("config.json is not UTF-8") from exc
    env = dict(plan.env)
    # no HOME in config.json: read from the rootfs's /etc/passwd for this uid when the
    # plan runs (translate's _home, the same rules), appended last
    home_of_uid = plan.identity.uid if "HOME" not in env else None
    setup = _setup(plan, "create", home_of_uid)
    return {
        "version": VERSION,
        "build": _text(build),
        "bundle": _text(c.bundle),
        "config": config_text,
        "host": {"cap_last_cap": host.cap_last_cap, "euid": host.euid,
                 "kernel": _text(host.kernel)},
        "deps": _bounded([[_text(path), _text(real)] for path, real in deps]),
        "namespaces": setup.pop("namespaces"),
        "cgroups": _cgroups(c, h),
        "oom_score_adj": c.oom_score_adj,
        **{key: setup.pop(key) for key in ("root", "mounts", "identity", "lsm", "caps",
                                           "rlimits", "no_new_privs", "seccomp", "process")},
        "state": {
            "rootfs": _text(c.rootfs),
            "annotations": _bounded([[_text(k), _text(v)] for k, v in c.annotations]),
        },
        "notes": _texts(plan.notes),
        **setup,
    }


@frozen
class ExecFds:
    """The fds the runtime hands the executor (-1: none); docs/EXECUTOR.md "Run documents"."""

    report: int  # the executor writes the container process's pid here
    err: int
    sync: int
    status: int
    created: int = -1
    gate: int = -1
    tty_slave: int = -1
    tty_socket: int = -1
    listener: int = -1
    trees: tuple[tuple[str, int], ...] = ()  # premade (idmapped) trees: "/" or "mount N"


@frozen
class Join:
    """`oci exec`: what the executor enters before its clone (cgroups, then namespaces)."""

    cgroup_procs: tuple[int, ...]  # cgroup.procs files, opened by the runtime
    namespaces: tuple[tuple[str, int], ...]  # (name, fd) in setns order


def run_document(plan: Plan, exec_mode: str, fds: ExecFds, join: Join | None = None,
                 cgroups: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plan of one launch (`stockade run`, the API, Python `oci create`, `oci exec`):
    the set-up keys, the fds and what to join. The runtime keys of a stored plan (build,
    bundle, host, deps, state, notes) are not the executor's business here. cgroups: the
    section runner.cgroups.plan made (None: no cgroup, `mode` "none")."""
    setup = _setup(plan, exec_mode, None)
    return {
        "version": VERSION,
        "namespaces": setup.pop("namespaces"),
        "cgroups": _checked_cgroups(cgroups) if cgroups else {"mode": "none", "controllers": [], "absolute": False,
                               "leaf": "", "name": "", "record": False, "writes": [],
                               "enable": [], "device_program": ""},
        "oom_score_adj": None,
        **{key: setup.pop(key) for key in ("root", "mounts", "identity", "lsm", "caps",
                                           "rlimits", "no_new_privs", "seccomp", "process")},
        "state": {"rootfs": "", "annotations": []},
        "notes": [],
        **setup,
        "fds": {
            "report": fds.report, "err": fds.err, "sync": fds.sync, "status": fds.status,
            "created": fds.created, "gate": fds.gate, "tty_slave": fds.tty_slave,
            "tty_socket": fds.tty_socket, "listener": fds.listener,
            "trees": _bounded([[_text(key), fd] for key, fd in fds.trees]),
        },
        "join": None if join is None else {
            "cgroup_procs": _bounded(list(join.cgroup_procs)),
            "namespaces": _bounded([[_text(name), fd] for name, fd in join.namespaces]),
        },
    }


def _checked_cgroups(section: dict[str, Any]) -> dict[str, Any]:
    """A cgroups section within the executor's bounds, every string free of NUL."""
    for ctl in _bounded(section["controllers"]):
        _text(ctl["mount"])
    for w in _bounded(section["writes"]):
        for key in ("controller", "key", "file", "value"):
            _text(w[key])
    _texts(section["enable"])
    _text(section["leaf"])
    _text(section["name"])
    return section


def _setup(plan: Plan, exec_mode: str, home_of_uid: int | None) -> dict[str, Any]:
    """The set-up keys of a plan (both kinds of document)."""
    p = plan.policy
    if not plan.mounts or plan.mounts[0].kind != "root":
        raise NotStored("no root mount first")
    if exec_mode not in EXEC_MODES:
        raise NotStored(f"exec mode {exec_mode}")
    root = plan.mounts[0]
    env = dict(plan.env)  # as the runner's execve: the last of a repeated key wins
    ident = plan.identity
    caps = p.caps
    ll = p.landlock
    filters = [f for f in (p.seccomp_bpf, p.seccomp_extra, plan.setid_guard) if f]
    listener = plan.seccomp_listener_sock >= 0
    if listener:  # `stockade learn`: the guard first, then the recorder (its listener)
        filters = [f for f in (plan.setid_guard, p.seccomp_bpf) if f]
    return {
        "namespaces": {
            "clone_flags": plan.clone_flags,
            "cgroup_ns": plan.cgroup_ns,
            "loopback": p.network == "loopback",
            "hostname": None if plan.hostname is None else _text(plan.hostname),
            "sysctl": _bounded([[_text(k), _text(v)] for k, v in plan.sysctl]),
        },
        "root": {
            "path": _text(root.src),  # "": the jail's own tmpfs
            "readonly": root.readonly,
            # every mount is rslave as made; another rootfsPropagation is applied to the
            # new root after pivot_root (0: none)
            "propagation": 0 if plan.propagation == "rslave" else PROPAGATION[plan.propagation],
            "host": plan.host_root,
            "jail": plan.jail,
        },
        "mounts": _bounded([_mount(m) for m in plan.mounts[1:]], MAX_MOUNTS),
        "identity": {
            "userns": ident.userns,
            "uid_map": _bounded([[m.inside, m.outside, m.count] for m in ident.uid_map]),
            "gid_map": _bounded([[m.inside, m.outside, m.count] for m in ident.gid_map]),
            "uid": ident.uid,
            "gid": ident.gid,
            "setgroups": ident.setgroups == "allow",
            "groups": _bounded(list(ident.groups)),
            "owner": ident.owner,
            # direct: the executor writes the maps; newuidmap: the runtime runs it
            "helper": ident.helper,
        },
        # the exec label (written through the new root's /proc, the first identity step)
        "lsm": {
            "apparmor_profile": _text_or_none(p.lsm.apparmor_profile),
            "selinux_label": _text_or_none(p.lsm.selinux_label),
        },
        "caps": {
            "bounding": caps.bounding, "permitted": caps.permitted,
            "effective": caps.effective, "inheritable": caps.inheritable,
            "ambient": _bounded(list(caps.ambient)), "last_cap": caps.last_cap,
        },
        "rlimits": _bounded([[RLIMIT_NAMES[name], _rlim(soft), _rlim(hard)]
                             for name, soft, hard in p.rlimits]),
        "no_new_privs": p.no_new_privs,
        "seccomp": {
            "flags": p.seccomp_flags,
            "filters": [f.hex() for f in filters],
            "listener": listener,
        },
        "process": {
            "argv": _texts(plan.argv, MAX_ARGS),
            "env": _texts((f"{k}={v}" for k, v in env.items()), MAX_ARGS),
            "cwd": _text(plan.cwd),
            "umask": plan.umask,
            "home_of_uid": home_of_uid,
            "path": _text(env.get("PATH", DEFAULT_PATH)),
        },
        "init": plan.init,
        "tty": {"console_size": None if plan.console_size is None
                else list(plan.console_size)},
        "landlock": None if not ll.enabled else {
            "mode": ll.mode, "abi": ll.abi, "handled_fs": ll.handled_fs,
            "handled_net": ll.handled_net, "scoped": ll.scoped,
            "paths": _bounded([[_text(path), access] for path, access in ll.paths],
                              MAX_LANDLOCK_RULES),
            "extra": _bounded([[_text(path), access] for path, access in plan.landlock_extra],
                              MAX_LANDLOCK_RULES),
            "ports": _bounded([[port, access] for port, access in ll.ports], MAX_LANDLOCK_RULES),
        },
        "pids_limit": p.limits.pids,
        "hooks": {
            "pause_before_root": plan.pause_before_root,
            "start": _bounded([{"path": _text(path), "args": _texts(args, MAX_ARGS),
                                "env": _texts(env_, MAX_ARGS),
                                "timeout": timeout}
                               for path, args, env_, timeout in plan.start_hooks]),
        },
        "exec_mode": exec_mode,
    }


def _mount(m: Any) -> dict[str, Any]:
    if m.kind not in MOUNT_KINDS:
        raise NotStored(f"mount kind {m.kind}")
    return {
        "kind": m.kind,
        "destination": _text(m.dst),
        "source": _text(m.src),
        "readonly": m.readonly,
        "optional": m.optional,
        "fstype": _text(m.fstype),
        "attrs": m.attrs,
        "fs_source": _text(m.source),
        "propagation": m.propagation,
        "data": _bounded([[_text(k), None if v is None else _text(v)] for k, v in m.data]),
        "why": _text(m.why),
    }


def _cgroups(c: Container, h: Hierarchy) -> dict[str, Any]:
    """The container's cgroups as Python `oci create` plans them (runner.cgroups.plan):
    as root a cgroup always exists; v1: a directory per controller (freezer for pause and
    resume), v2: one, born into with clone3, the device rules an eBPF program. The front
    end names them after the container id it is given (`name` "")."""
    from stockade.runner.cgroupfs import CgroupError
    from stockade.runner.cgroups import plan as plan_cgroups

    lim = c.plan.policy.limits
    try:
        planned = plan_cgroups(h, "", lim, path=c.cgroups_path,
                               devices=lim.devices_allow is not None, freezer=True,
                               cpuset=lim.cpuset)
    except CgroupError as exc:
        raise NotStored(str(exc)) from exc
    if planned.notes:
        raise NotStored("a limit this host cannot apply (a note to print)")
    return _checked_cgroups(planned.section)


def dumps(doc: dict[str, Any]) -> bytes:
    """The stored form: UTF-8 JSON, keys in document order, one field a line (golden
    files compare it exactly)."""
    return (json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()


class PlanError(ValueError):
    """A document that is not a plan of this version (the executor refuses it too)."""


# The document's shape: what the C reader (executor/plan_read.c) checks, checked here
# the same way.
_INT, _BOOL, _STR = "int", "bool", "str"
_SHAPE: dict[str, Any] = {
    "version": _INT, "build": _STR, "bundle": _STR, "config": _STR,
    "host": {"cap_last_cap": _INT, "euid": _INT, "kernel": _STR},
    "deps": [[_STR, _STR]],
    "namespaces": {"clone_flags": _INT, "cgroup_ns": _BOOL, "loopback": _BOOL,
                   "hostname": (_STR, None), "sysctl": [[_STR, _STR]]},
    "cgroups": {"mode": _STR, "controllers": [{"name": _STR, "mount": _STR}],
                "absolute": _BOOL, "leaf": _STR, "name": _STR, "record": _BOOL,
                "writes": [{"controller": _STR, "key": _STR, "file": _STR, "value": _STR,
                            "absent": ([_STR, _STR], None)}],
                "enable": [_STR], "device_program": _STR},
    "oom_score_adj": (_INT, None),
    "root": {"path": _STR, "readonly": _BOOL, "propagation": _INT, "host": _BOOL,
             "jail": _BOOL},
    "mounts": [{"kind": _STR, "destination": _STR, "source": _STR, "readonly": _BOOL,
                "optional": _BOOL, "fstype": _STR, "attrs": _INT, "fs_source": _STR,
                "propagation": _INT, "data": [[_STR, (_STR, None)]], "why": _STR}],
    "identity": {"userns": _BOOL, "uid_map": [[_INT, _INT, _INT]],
                 "gid_map": [[_INT, _INT, _INT]], "uid": _INT, "gid": _INT,
                 "setgroups": _BOOL, "groups": [_INT], "owner": (_INT, None),
                 "helper": _STR},
    "lsm": {"apparmor_profile": (_STR, None), "selinux_label": (_STR, None)},
    "caps": {"bounding": _INT, "permitted": _INT, "effective": _INT, "inheritable": _INT,
             "ambient": [_INT], "last_cap": _INT},
    "rlimits": [[_INT, _INT, _INT]],
    "no_new_privs": _BOOL,
    "seccomp": {"flags": _INT, "filters": [_STR], "listener": _BOOL},
    "process": {"argv": [_STR], "env": [_STR], "cwd": _STR, "umask": (_INT, None),
                "home_of_uid": (_INT, None), "path": _STR},
    "state": {"rootfs": _STR, "annotations": [[_STR, _STR]]},
    "notes": [_STR],
    "init": _BOOL,
    "tty": {"console_size": ([_INT, _INT], None)},
    "landlock": ({"mode": _STR, "abi": _INT, "handled_fs": _INT, "handled_net": _INT,
                  "scoped": _INT, "paths": [[_STR, _INT]], "extra": [[_STR, _INT]],
                  "ports": [[_INT, _INT]]}, None),
    "pids_limit": (_INT, None),
    "hooks": {"pause_before_root": _BOOL,
              "start": [{"path": _STR, "args": [_STR], "env": [_STR], "timeout": (_INT, None)}]},
    "exec_mode": _STR,
}


def _check(value: Any, shape: Any, where: str) -> None:
    if isinstance(shape, tuple):  # a type or null
        if value is None:
            return
        shape = shape[0]
    if shape == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif shape == _BOOL:
        ok = isinstance(value, bool)
    elif shape == _STR:
        ok = isinstance(value, str)
    elif isinstance(shape, dict):
        if not isinstance(value, dict):
            raise PlanError(f"{where}: an object expected")
        for key, sub in shape.items():
            if key not in value:
                raise PlanError(f"{where}.{key}: missing")
            _check(value[key], sub, f"{where}.{key}")
        return
    elif isinstance(shape, list) and len(shape) == 1:  # a list of one kind
        if not isinstance(value, list):
            raise PlanError(f"{where}: a list expected")
        for i, item in enumerate(value):
            _check(item, shape[0], f"{where}[{i}]")
        return
    else:  # a fixed-length list (a tuple)
        if not isinstance(value, list) or len(value) != len(shape):
            raise PlanError(f"{where}: a list of {len(shape)} expected")
        for i, (item, sub) in enumerate(zip(value, shape, strict=True)):
            _check(item, sub, f"{where}[{i}]")
        return
    if not ok:
        raise PlanError(f"{where}: {shape} expected, found {type(value).__name__}")


def loads(data: bytes) -> dict[str, Any]:
    """A stored plan, checked as the executor checks it. Raises PlanError."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f"plan: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise PlanError("plan: an object expected")
    if doc.get("version") != VERSION:
        raise PlanError(f"plan.version: {VERSION} expected, found {doc.get('version')!r}")
    _check(doc, _SHAPE, "plan")
    _check_values(doc)
    return doc


def _check_values(doc: dict[str, Any]) -> None:
    """The values the executor refuses besides types (executor/plan_read.c read_plan)."""
    for i, m in enumerate(doc["mounts"]):
        if m["kind"] not in MOUNT_KINDS:
            raise PlanError(f"plan.mounts[{i}].kind: {m['kind']!r} is not a mount kind")
    if doc["cgroups"]["mode"] not in ("v1", "v2", "none"):
        raise PlanError("plan.cgroups.mode: v1, v2 or none expected, found "
                        f"{doc['cgroups']['mode']!r}")
    if doc["exec_mode"] not in EXEC_MODES:
        raise PlanError(f"plan.exec_mode: one of {', '.join(EXEC_MODES)} expected, found "
                        f"{doc['exec_mode']!r}")
    programs = [("seccomp.filters", f) for f in doc["seccomp"]["filters"]]
    for where, text in [*programs, ("cgroups.device_program", doc["cgroups"]["device_program"])]:
        if len(text) % 16 or text.strip("0123456789abcdef"):
            raise PlanError(f"plan.{where}: not lowercase hex of whole BPF instructions")
    if len(doc["seccomp"]["filters"]) > 3:
        raise PlanError("plan.seccomp.filters: at most 3")
    if not doc["process"]["argv"]:
        raise PlanError("plan.process.argv: empty")
