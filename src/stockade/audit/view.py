"""View: a frozen snapshot of one process's /proc entries and the host facts around it.

Reads go through a directory fd on /proc/PID opened once, so a PID reused mid-audit is
detected (the start time is compared at the end) instead of silently auditing a stranger.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from stockade.audit import procfs
from stockade.audit.procfs import CgroupEntry, IdRange, Mount
from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts

NAMESPACES = ("pid", "net", "ipc", "uts", "cgroup", "user", "mnt")
CGROUP_FILES = {
    "memory": ("memory.limit_in_bytes",),
    "pids": ("pids.max",),
    "devices": ("devices.list",),
    "freezer": ("freezer.state",),  # a paused container would hang a ptrace stop
    "": ("memory.max", "pids.max", "cgroup.freeze"),  # the v2 unified hierarchy
}


@dataclass(frozen=True)
class View:
    mode: str  # "host" (looked at from outside) or "self"
    pid: int
    status: Mapping[str, str]
    mounts: tuple[Mount, ...]
    cgroups: tuple[CgroupEntry, ...]
    cgroup_values: Mapping[str, str]  # "memory/memory.limit_in_bytes" -> value
    ns: Mapping[str, int]
    ref_ns: Mapping[str, int]  # the auditor's own namespaces (host mode only)
    uid_map: tuple[IdRange, ...]
    gid_map: tuple[IdRange, ...]
    uid_map_text: str
    environ_names: tuple[str, ...]
    lsm_label: str
    root_link: str
    host: HostFacts
    active: bool = False
    container_id: str = ""
    runtime: str = ""  # docker | runc | stockade | "" (unknown: a bare --pid or --self)
    starttime: str = ""
    notes: tuple[str, ...] = field(default=())

    def cap(self, key: str) -> int:
        return procfs.hex_field(dict(self.status), key)

    @property
    def cap_eff(self) -> int:
        return self.cap("CapEff")

    @property
    def cap_bnd(self) -> int:
        return self.cap("CapBnd")

    @property
    def seccomp_mode(self) -> int:
        return int(self.status.get("Seccomp", "0"))

    @property
    def no_new_privs(self) -> bool:
        return self.status.get("NoNewPrivs", "0") == "1"

    @property
    def uid(self) -> int:
        return procfs.int_list(dict(self.status), "Uid")[1]

    @property
    def inside_uid(self) -> int | None:
        return procfs.map_to_inside(self.uid_map, self.uid) if self.mode == "host" else self.uid

    def status_line(self, key: str) -> str:
        return f"{key}:\t{self.status.get(key, '?')}"


class _ProcDir:
    """Reads relative to an open /proc/PID directory."""

    def __init__(self, proc_root: str, pid: str) -> None:
        try:
            self.fd = os.open(os.path.join(proc_root, pid), os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise StockadeError(f"no process {pid}: it does not exist or has exited") from None
        except PermissionError:
            raise StockadeError(f"no permission to read /proc/{pid}") from None

    def read(self, name: str) -> bytes:
        fd = os.open(name, os.O_RDONLY, dir_fd=self.fd)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def text(self, name: str) -> str:
        return self.read(name).decode(errors="replace")

    def readlink(self, name: str) -> str:
        return os.readlink(name, dir_fd=self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _starttime(proc: _ProcDir) -> str:
    stat = proc.text("stat")
    return stat.rsplit(")", 1)[1].split()[19]


def _gone(pid: str, exc: OSError) -> StockadeError:
    if exc.errno in (errno.ESRCH, errno.ENOENT):
        return StockadeError(f"process {pid} exited during the audit")
    return StockadeError(f"cannot read /proc/{pid}: {exc.strerror}")


def cgroup_values(entries: tuple[CgroupEntry, ...], reader_mounts: tuple[Mount, ...],
                  prefix: str = "") -> dict[str, str]:
    """Limit files of the target's cgroups, found through the reader's cgroup mounts."""
    out: dict[str, str] = {}
    for entry in entries:
        for ctrl in entry.controllers or ("",):
            files = CGROUP_FILES.get(ctrl)
            if files is None:
                continue
            mnt = _cgroup_mount(reader_mounts, ctrl)
            if mnt is None:
                continue
            root = mnt.root.rstrip("/")
            if root and not (entry.path == root or entry.path.startswith(root + "/")):
                continue  # the target's cgroup is outside what this mount shows
            rel = entry.path[len(root):].lstrip("/")
            for name in files:
                path = os.path.join(prefix + mnt.mountpoint, rel, name)
                try:
                    with open(path) as fh:
                        out[f"{ctrl or 'unified'}/{name}"] = fh.read().strip()
                except OSError:
                    continue
    return out


def _cgroup_mount(mounts: tuple[Mount, ...], ctrl: str) -> Mount | None:
    for m in mounts:
        if ctrl == "" and m.fstype == "cgroup2":
            return m
        if ctrl and m.fstype == "cgroup" and ctrl in m.super_options:
            return m
    return None


def build_view(pid: int | None, host: HostFacts, *, proc_root: str = "/proc",
               active: bool = False, container_id: str = "", runtime: str = "",
               fs_prefix: str = "") -> View:
    """Snapshot PID (host mode) or the current process (pid None: self mode).

    `proc_root` and `fs_prefix` (prepended to cgroupfs paths) let tests use fake trees."""
    mode = "self" if pid is None else "host"
    key = "self" if pid is None else str(pid)
    proc = _ProcDir(proc_root, key)
    notes: list[str] = []
    try:
        start = _starttime(proc)
        status = procfs.parse_status(proc.text("status"))
        mounts = procfs.parse_mountinfo(proc.text("mountinfo"))
        cgroups = procfs.parse_cgroup(proc.text("cgroup"))
        uid_text = proc.text("uid_map")
        gid_text = proc.text("gid_map")
        ns = {}
        for name in NAMESPACES:
            try:
                ns[name] = procfs.ns_inode(proc.readlink(f"ns/{name}"))
            except OSError as exc:
                notes.append(f"ns/{name}: {exc.strerror}")
        env = _environ(proc, proc_root, mode, notes)
        label = _label(proc)
        root_link = proc.readlink("root") if mode == "host" else "/"
        if mode == "host":
            reader_mounts = procfs.parse_mountinfo(_read(os.path.join(proc_root, "self/mountinfo")))
            values = cgroup_values(cgroups, reader_mounts, fs_prefix)
            ref = {}
            for name in NAMESPACES:
                try:
                    ref[name] = procfs.ns_inode(os.readlink(os.path.join(proc_root, "self/ns", name)))
                except OSError:
                    continue
        else:
            values = cgroup_values(cgroups, mounts, fs_prefix)
            ref = {}
        if _starttime(proc) != start:
            raise StockadeError(f"process {key} was replaced during the audit")
    except OSError as exc:
        raise _gone(key, exc) from None
    finally:
        proc.close()
    return View(
        mode=mode, pid=int(status.get("Pid", "0")) if pid is None else pid,
        status=MappingProxyType(status), mounts=mounts, cgroups=cgroups,
        cgroup_values=MappingProxyType(values), ns=MappingProxyType(ns),
        ref_ns=MappingProxyType(ref), uid_map=procfs.parse_idmap(uid_text),
        gid_map=procfs.parse_idmap(gid_text), uid_map_text=uid_text.strip(),
        environ_names=env, lsm_label=label, root_link=root_link, host=host, active=active,
        container_id=container_id, runtime=runtime, starttime=start, notes=tuple(notes),
    )


def still_running(view: View, proc_root: str = "/proc") -> bool:
    """The same process (not a reused PID) is still there."""
    if view.mode == "self":
        return True
    try:
        proc = _ProcDir(proc_root, str(view.pid))
    except StockadeError:
        return False
    try:
        return _starttime(proc) == view.starttime
    except OSError:
        return False
    finally:
        proc.close()


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _environ(proc: _ProcDir, proc_root: str, mode: str, notes: list[str]) -> tuple[str, ...]:
    # From inside, the container's PID 1 holds the environment the runtime gave it.
    if mode == "self":
        try:
            with open(os.path.join(proc_root, "1/environ"), "rb") as fh:
                return procfs.environ_names(fh.read())
        except OSError:
            pass
    try:
        return procfs.environ_names(proc.read("environ"))
    except OSError as exc:
        notes.append(f"environ: {exc.strerror}")
        return ()


def _label(proc: _ProcDir) -> str:
    for name in ("attr/apparmor/current", "attr/current"):
        try:
            return proc.text(name).strip("\0\n ")
        except OSError:
            continue
    return ""
