"""Run harmless probes with the container's own eyes.

Host mode: a short-lived child joins the target's device/unified cgroups and pid
namespace, forks a grandchild that enters the other namespaces and the container's root,
its user namespace, uid/gid/groups, capability sets, LSM label and a copy of its seccomp
filters, and only then runs the probes. Any step that fails aborts every probe: a probe
run with the auditor's own privileges would prove nothing about the container.
Self mode: the same probes in a forked child of the current process.

Probes that change the process (unshare, mount in a private namespace) run in their own
fork so the next probe starts from the container's state again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from stockade.audit.procfs import map_to_inside
from stockade.audit.view import View
from stockade.linux import consts, syscalls


@dataclass(frozen=True)
class Outcome:
    ok: bool
    errno: int | None = None
    detail: str = ""

    @property
    def errname(self) -> str:
        return errno.errorcode.get(self.errno or 0, str(self.errno)) if self.errno else ""

    def describe(self) -> str:
        if self.ok:
            return f"ok{': ' + self.detail if self.detail else ''}"
        return f"failed {self.errname}{': ' + self.detail if self.detail else ''}"


@dataclass(frozen=True)
class Probe:
    fn: Callable[[], Outcome]
    isolated: bool = False  # changes the process: run in its own fork
    owned_fds: tuple[int, ...] = ()  # opened while planning; closed after the run


@dataclass(frozen=True)
class ProbeRun:
    outcomes: Mapping[str, Outcome]
    error: str = ""  # set when the probes could not run at all


def attempt(fn: Callable[[], str | None]) -> Outcome:
    """Run one probe step: success with detail, or the errno it failed with."""
    try:
        detail = fn()
    except OSError as exc:
        return Outcome(False, exc.errno, exc.strerror or "")
    return Outcome(True, None, detail or "")


NS_ORDER = ("ipc", "uts", "net", "cgroup", "mnt")
# setns flags by /proc/<pid>/ns name (which calls the mount namespace "mnt")
PROC_NS_FLAGS = {("mnt" if name == "mount" else name): flag
                 for name, flag in consts.NS_FLAGS.items()}


@dataclass(frozen=True)
class JoinPlan:
    """Everything the child needs, resolved in the parent before fork."""

    ns_fds: Mapping[str, int]
    root_fd: int
    cgroup_procs: tuple[str, ...]
    uid: int
    gid: int
    groups: tuple[int, ...]
    cap_eff: int
    cap_prm: int
    cap_inh: int
    cap_bnd: int
    last_cap: int
    nnp: bool
    filters: tuple[bytes, ...]
    lsm_write: tuple[str, str] | None  # (attr file, value)


class JoinError(Exception):
    """The container's confinement could not be reproduced; no probe may run."""


def plan_join(view: View) -> JoinPlan:
    pid = view.pid
    fds: dict[str, int] = {}
    try:
        for name in (*NS_ORDER, "pid", "user"):
            if name in view.ns and view.ns.get(name) == view.ref_ns.get(name):
                continue  # already there; setns into one's own user ns is EINVAL
            fds[name] = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        for fd in fds.values():
            os.close(fd)
        raise JoinError(f"open /proc/{pid} namespaces: {exc.strerror}") from None
    procs = []
    for entry in view.cgroups:
        # devices (v1) and the unified hierarchy (v2 device programs) decide which device
        # nodes may be opened; the other controllers do not change what a probe can do.
        if "devices" in entry.controllers:
            procs.append(f"/sys/fs/cgroup/devices{entry.path}/cgroup.procs")
        elif not entry.controllers and entry.hierarchy == 0:
            base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
            procs.append(f"{base}{entry.path}/cgroup.procs")
    st = dict(view.status)
    uid = map_to_inside(view.uid_map, int(st["Uid"].split()[1]))
    gid = map_to_inside(view.gid_map, int(st["Gid"].split()[1]))
    if uid is None or gid is None:
        _close_fds(fds, root_fd)
        raise JoinError("the target's uid/gid is not mapped in its user namespace")
    groups = tuple(g for g in (map_to_inside(view.gid_map, int(x)) for x in st.get("Groups", "").split())
                   if g is not None)
    frozen = view.cgroup_values.get("freezer/freezer.state", "") in ("FROZEN", "FREEZING") \
        or view.cgroup_values.get("unified/cgroup.freeze") == "1"
    filters: tuple[bytes, ...] = ()
    if frozen:
        _close_fds(fds, root_fd)
        raise JoinError("the container is paused (its cgroup is frozen); unpause it to run the probes")
    if view.seccomp_mode == 2:
        try:
            filters = tuple(syscalls.seccomp_filters(pid))
        except OSError as exc:
            _close_fds(fds, root_fd)
            raise JoinError(f"copy seccomp filter (PTRACE_SECCOMP_GET_FILTER): {exc.strerror}") from None
    elif view.seccomp_mode != 0:
        _close_fds(fds, root_fd)
        raise JoinError("strict-mode seccomp cannot be reproduced")
    lsm: tuple[str, str] | None = None
    label = view.lsm_label.split(" (")[0]
    if view.host.apparmor_enabled and label and label != "unconfined":
        lsm = ("/proc/thread-self/attr/current", f"changeprofile {label}")
    elif view.host.selinux_mode != "disabled" and label and label != "kernel":
        lsm = ("/proc/thread-self/attr/current", label)
    return JoinPlan(
        ns_fds=fds, root_fd=root_fd, cgroup_procs=tuple(procs), uid=uid, gid=gid, groups=groups,
        cap_eff=view.cap("CapEff"), cap_prm=view.cap("CapPrm"), cap_inh=view.cap("CapInh"),
        cap_bnd=view.cap("CapBnd"), last_cap=view.host.cap_last_cap, nnp=view.no_new_privs,
        filters=filters, lsm_write=lsm,
    )


def _close_fds(fds: Mapping[str, int], root_fd: int) -> None:
    for fd in (*fds.values(), root_fd):
        with contextlib.suppress(OSError):
            os.close(fd)


def _close_plan(plan: JoinPlan) -> None:
    for fd in (*plan.ns_fds.values(), plan.root_fd):
        with contextlib.suppress(OSError):
            os.close(fd)


def _enter_outer(plan: JoinPlan) -> None:
    """In the first child: cgroups (host paths) and the pid namespace (for our children)."""
    for path in plan.cgroup_procs:
        step(f"join cgroup {path}", partial(_write, path, "0"))  # "0": the writer itself
    if "pid" in plan.ns_fds:
        step("setns pid", lambda: syscalls.setns(plan.ns_fds["pid"], consts.CLONE_NEWPID))


def _enter_inner(plan: JoinPlan) -> None:
    """In the grandchild (a member of the target's pid namespace): everything else."""
    for name in NS_ORDER:
        if name in plan.ns_fds:
            step(f"setns {name}", partial(syscalls.setns, plan.ns_fds[name], PROC_NS_FLAGS[name]))
    # The target may itself be chrooted below its mount namespace's root: use its root.
    step("enter root", lambda: _enter_root(plan.root_fd))
    if "user" in plan.ns_fds:
        step("setns user", lambda: syscalls.setns(plan.ns_fds["user"], consts.CLONE_NEWUSER))
    syscalls.prctl(consts.PR_SET_KEEPCAPS, 1)
    for cap in range(plan.last_cap + 1):
        if not plan.cap_bnd >> cap & 1:
            step(f"drop bounding cap {cap}", partial(syscalls.prctl, consts.PR_CAPBSET_DROP, cap))
    step("setgroups", lambda: _setgroups(plan.groups))
    step("setresgid", lambda: os.setresgid(plan.gid, plan.gid, plan.gid))
    step("setresuid", lambda: os.setresuid(plan.uid, plan.uid, plan.uid))
    step("capset", lambda: syscalls.capset(plan.cap_eff, plan.cap_prm, plan.cap_inh))
    # no_new_privs lets us load the filter without CAP_SYS_ADMIN; probes never exec, so
    # it does not change what they can do.
    step("no_new_privs", lambda: syscalls.prctl(consts.PR_SET_NO_NEW_PRIVS, 1))
    if plan.lsm_write is not None:
        attr, value = plan.lsm_write
        step("LSM label", lambda: _write(attr, value))
    for prog in plan.filters:
        step("load seccomp filter", partial(syscalls.seccomp_set_filter, prog))
    for fd in (*plan.ns_fds.values(), plan.root_fd):
        os.close(fd)


def _enter_root(fd: int) -> None:
    os.fchdir(fd)
    os.chroot(".")
    os.chdir("/")


def _setgroups(groups: tuple[int, ...]) -> None:
    # /proc/PID/setgroups "deny" in this user ns: the target cannot have changed its groups
    # either, so the list we keep is what it has.
    with contextlib.suppress(PermissionError):
        syscalls.setgroups(list(groups))


def step(name: str, fn: Callable[[], object]) -> None:
    try:
        fn()
    except OSError as exc:
        raise JoinError(f"{name}: {exc.strerror}") from None


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _emit(fd: int, key: str, outcome: Outcome) -> None:
    line = json.dumps({"k": key, "ok": outcome.ok, "e": outcome.errno, "d": outcome.detail[:500]})
    os.write(fd, (line + "\n").encode())


def _run_all(probes: Mapping[str, Probe], out: int) -> None:
    for key, probe in probes.items():
        if not probe.isolated:
            _emit(out, key, _safe(probe))
            continue
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _emit(out, key, _safe(probe))
            finally:
                os._exit(code)
        _reap(pid, 10.0)


def _safe(probe: Probe) -> Outcome:
    try:
        return probe.fn()
    except OSError as exc:
        return Outcome(False, exc.errno, exc.strerror or "")
    except (ValueError, RuntimeError, LookupError) as exc:
        return Outcome(False, None, f"probe crashed: {exc!r}")


def _reap(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.002)


def _child_main(plan: JoinPlan | None, probes: Mapping[str, Probe], out: int) -> int:
    try:
        if plan is not None:
            _enter_outer(plan)
            pid = os.fork()
            if pid:
                status = _reap(pid, 30.0)
                return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 3
            try:
                _enter_inner(plan)
            except JoinError as exc:
                os.write(out, (json.dumps({"join_error": str(exc)}) + "\n").encode())
                return 0
        _run_all(probes, out)
    except JoinError as exc:
        os.write(out, (json.dumps({"join_error": str(exc)}) + "\n").encode())
    return 0


def run_probes(view: View, probes: Mapping[str, Probe], *, timeout: float = 30.0) -> ProbeRun:
    owned = [fd for p in probes.values() for fd in p.owned_fds]
    try:
        return _run_probes(view, probes, timeout)
    finally:
        for fd in owned:
            os.close(fd)


def _run_probes(view: View, probes: Mapping[str, Probe], timeout: float) -> ProbeRun:
    if not probes:
        return ProbeRun({})
    plan = None
    if view.mode == "host":
        try:
            plan = plan_join(view)
        except JoinError as exc:
            return ProbeRun({}, f"could not enter the container: {exc}")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into the caller's code
        code = 1
        try:
            os.close(rfd)
            code = _child_main(plan, probes, wfd)
        finally:
            os._exit(code)
    os.close(wfd)
    if plan is not None:
        _close_plan(plan)
    data = _read_all(rfd, timeout)
    status = _reap(pid, 5.0)
    return _parse(data, status)


def _read_all(fd: int, timeout: float) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _parse(data: bytes, status: int) -> ProbeRun:
    outcomes: dict[str, Outcome] = {}
    error = ""
    for line in data.decode(errors="replace").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "join_error" in item:
            error = f"could not enter the container: {item['join_error']}"
            continue
        outcomes[item["k"]] = Outcome(bool(item["ok"]), item["e"], item["d"])
    if not error and os.WIFSIGNALED(status):
        error = f"probe process killed by signal {os.WTERMSIG(status)}"
    return ProbeRun(outcomes, error)
