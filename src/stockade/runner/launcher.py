"""The parent side: cgroup, clone, id maps, release, supervise, report, clean up.

Order (ARCHITECTURE.md, steps 1, 2 and 9): everything slow was done while building the
plan; here the cgroup is created and limited first, then the executor clones the child
into its namespaces (as our child: CLONE_PARENT) and it is held on a pipe until its maps
are written and it is in the cgroup. The cgroup is removed in a finally block, whatever
happened.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
from contextlib import suppress

from stockade.errors import RunnerError, StockadeError
from stockade.executor import plan_json, protocol, spawn
from stockade.runner import idalloc, idmount, runs, setid_guard
from stockade.runner._record import frozen, replace
from stockade.runner.cgroups import (
    CgroupError,
    CgroupPlan,
    Hierarchy,
    Usage,
    V1Cgroup,
    V2Cgroup,
    detect_cached,
)
from stockade.runner.cgroups import made as cgroup_made
from stockade.runner.cgroups import plan as plan_cgroups
from stockade.runner.codes import runner_error
from stockade.runner.idmap import IdmapError, write_maps
from stockade.runner.plan import Plan, without_preset_limits

TYPE_CHECKING = False  # not typing's: the run path loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from stockade.runner.network.jail import AnyJail


@frozen
class RunResult:
    """The payload's outcome and what it used (`--json-report` writes this)."""

    exit_code: int  # the payload's status, or 128 + signal
    signal: int | None = None
    oom_killed: bool = False
    memory_peak: int | None = None  # bytes (cgroup peak; else max RSS)
    cpu_time_ns: int | None = None
    pids_peak: int | None = None
    wall_time_s: float = 0.0
    cgroup: str = "none"  # v1 | v2 | none
    run_id: str = ""
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "exit_code": self.exit_code, "signal": self.signal, "oom_killed": self.oom_killed,
            "memory_peak_bytes": self.memory_peak, "cpu_time_ns": self.cpu_time_ns,
            "pids_peak": self.pids_peak, "wall_time_s": round(self.wall_time_s, 6),
            "cgroup": self.cgroup, "run_id": self.run_id, "notes": list(self.notes),
        }


@frozen
class Stdio:
    stdin: int = 0
    stdout: int = 1
    stderr: int = 2


# What the runner passes on to the sandbox's init (blocked in it until it waits for them).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH,
             signal.SIGCONT)

_counter = [0]  # run ids only; not state that changes behaviour


def _run_id() -> str:
    _counter[0] += 1
    return f"{os.getpid()}-{_counter[0]}-{os.urandom(3).hex()}"


def launch(plan: Plan, *, forward_signals: bool = False) -> RunResult:
    """Run the plan; returns the payload's result or raises RunnerError (payload never ran).

    Any caller, however big or multi-threaded: the container's process is started by the
    executor (posix_spawn: no fork of this interpreter, no lock of another thread held)."""
    return _launch(plan, forward_signals, _run_id())


def _launch(plan: Plan, forward_signals: bool, run_id: str) -> RunResult:
    pool = plan.identity.pool
    if pool is None:
        return _launch_placed(plan, forward_signals, run_id)
    # root's `map: auto`: a host id range no other running sandbox holds, kept locked
    # until the sandbox is gone (its cgroup removed, its init reaped: see _launch_placed).
    lease = idalloc.acquire(pool)
    try:
        return _launch_placed(idalloc.placed(plan, lease), forward_signals, run_id)
    finally:
        idalloc.release(lease)


def _launch_placed(plan: Plan, forward_signals: bool, run_id: str) -> RunResult:
    started = time.perf_counter()
    _load_lsm(plan)
    limits = plan.policy.limits
    notes = list(plan.notes)
    cgplan: CgroupPlan | None = None
    jail: AnyJail | None = None
    try:
        if os.geteuid() == 0 or limits.any:
            try:
                cgplan = _plan_cgroups(lambda h: plan_cgroups(
                    h, run_id, limits, io=limits.io_weight is not None))
            except (CgroupError, OSError) as exc:
                plan = _without_cgroups(plan, str(exc), notes, exc)
        plan, idmap_notes = idmount.with_idmapped(plan)  # closed in the finally below
        notes += idmap_notes
        plan, guard_notes = setid_guard.guarded(plan)  # no set-id files on the host
        notes += guard_notes
        if plan.policy.net is not None:  # network.mode private (runner.network)
            from stockade.runner.network.jail import open_jail

            jail = open_jail(plan.policy.net, plan.rootfs, plan.host_root)
        try:
            result = _spawn(plan, cgplan, forward_signals, jail, run_id)
        except _CgroupsRefused as exc:  # the executor could not make them: nothing was
            used = detect_cached()
            refreshed = detect_cached(refresh=True)
            if cgplan is not None and used != refreshed:  # a controller moved since
                cgplan = plan_cgroups(refreshed, run_id, limits,
                                      io=limits.io_weight is not None)
                result = _spawn(plan, cgplan, forward_signals, jail, run_id)
            else:
                plan = _without_cgroups(plan, exc.message, notes, exc)
                cgplan = None
                result = _spawn(plan, None, forward_signals, jail, run_id)
    finally:
        if jail is not None:
            from stockade.runner.network.jail import close_jail

            close_jail(jail)
        idmount.close(plan)
    status, sig, rusage, usage, mode, more_notes = result
    cpu = usage.cpu_time_ns
    if cpu is None and rusage is not None:
        cpu = int((rusage.ru_utime + rusage.ru_stime) * 1e9)
    mem = usage.memory_peak
    if mem is None and rusage is not None:
        mem = rusage.ru_maxrss * 1024
    return RunResult(
        exit_code=status, signal=sig, oom_killed=usage.oom_kills > 0, memory_peak=mem,
        cpu_time_ns=cpu, pids_peak=usage.pids_peak,
        wall_time_s=time.perf_counter() - started, cgroup=mode, run_id=run_id,
        notes=tuple(notes + list(more_notes)),
    )


class _CgroupsRefused(Exception):
    """The executor could not make the planned cgroups (it removed what it made)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _without_cgroups(plan: Plan, why: str, notes: list[str], cause: BaseException) -> Plan:
    """A run whose cgroups cannot be made: without them when only the usage report
    needed one, or (unprivileged) when only presets set the limits; else RunnerError."""
    limits = plan.policy.limits
    if not limits.any:
        notes.append(f"no cgroup for the usage report ({why}); "
                     "peak memory and cpu come from rusage")
        return plan
    if os.geteuid() != 0 and plan.policy.limits_best_effort:
        plan, note = without_preset_limits(plan, f"no cgroup ({why})")
        notes.append(note)
        return plan
    if os.geteuid() != 0:
        why += (" (unprivileged, with resources in the policy: run from a delegated "
                "cgroup or use a policy without resources)")
    raise runner_error("cgroups", why) from cause


@frozen
class Hold:
    """OCI create: keep the set-up payload waiting at its gate instead of running it."""

    name: str  # the container id: the cgroup's name
    gate_fd: int  # the exec fifo, opened O_RDWR|O_NONBLOCK by the caller (inherited)
    cgroup_path: str | None = None  # OCI cgroupsPath
    console_socket: str = ""  # terminal: the pty master is sent there (SCM_RIGHTS)
    # Called with the container's pid while it waits before building its root (when
    # plan.pause_before_root): OCI createRuntime/createContainer hooks. May raise.
    before_root: Callable[[int], None] | None = None
    # Called with the cgroup's directories as soon as they exist, so that the caller
    # can record them (a runtime killed mid-create must not leak them).
    on_cgroup: Callable[[tuple[str, ...]], None] | None = None
    # Called with the directories before any is made (recorded as "may exist": a
    # runtime killed between the mkdir and on_cgroup must not leak them either).
    on_planned: Callable[[tuple[str, ...]], None] | None = None


@frozen
class Held:
    pid: int  # the container's process, waiting at its gate
    cgroup_dirs: tuple[str, ...] = ()  # removed by `delete`
    master: int = -1  # the pty master when terminal and no console socket (oci run)
    notes: tuple[str, ...] = ()


def _load_lsm(plan: Plan) -> None:
    """Before anything is created: the kernel must hold the profile / module the exec
    label names (loaded when missing or stale; RunnerError 'lsm' when it cannot be)."""
    lsm = plan.policy.lsm
    if lsm.apparmor_profile or lsm.selinux_label:
        from stockade.lsm.load import prepare

        prepare(lsm)


def _check_confined(plan: Plan, pid: int) -> str | None:
    """After the payload's execve: why it is not confined as lsm.required asks, or None."""
    lsm = plan.policy.lsm
    if not lsm.required or not (lsm.apparmor_profile or lsm.selinux_label):
        return None
    from stockade.lsm.verify import mismatch, payload_pid

    payload = payload_pid(pid, plan.init)
    return None if payload is None else mismatch(lsm, payload)


def launch_held(plan: Plan, hold: Hold) -> Held:
    """Set the container up and stop it at its gate; raises RunnerError, leaving nothing.

    Unlike launch(), the cgroup outlives this call (the container is managed by later
    invocations) and the payload is not supervised: this process may exit at once."""
    if plan.init:
        raise runner_error("internal", "OCI create runs the payload as the first process")
    if plan.identity.pool is not None:  # no process of ours would hold the range's lock
        raise runner_error("internal", "OCI create takes explicit id maps, not the id pool")
    _load_lsm(plan)
    limits = plan.policy.limits
    cgplan = None
    if os.geteuid() == 0 or limits.any or hold.cgroup_path is not None:
        try:
            cgplan = _plan_cgroups(lambda h: plan_cgroups(
                h, hold.name, limits, io=limits.io_weight is not None, path=hold.cgroup_path,
                devices=limits.devices_allow is not None,
                freezer=True,  # OCI pause/resume
                cpuset=limits.cpuset, record=True))
        except (CgroupError, OSError) as exc:
            raise runner_error("cgroups", str(exc)) from exc
    try:
        c = _clone(plan, cgplan, hold)
    except _CgroupsRefused as exc:
        raise runner_error("cgroups", exc.message) from exc
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, c.old_mask)
        pid, master = _supervise_held(plan, c, c.cg, hold)
    except BaseException:
        if c.cg is not None:
            with suppress(CgroupError):
                c.cg.remove()
        raise
    return Held(pid, () if c.cg is None else _dirs(c.cg), master, (*plan.notes, *c.notes))


def _plan_cgroups(make: Callable[[Hierarchy], CgroupPlan]) -> CgroupPlan:
    """Plan with the cached view of the hierarchy; once more with a fresh one if the
    cached view was the problem (a controller remounted since)."""
    try:
        return make(detect_cached())
    except CgroupError:
        return make(detect_cached(refresh=True))


def _dirs(cg: V1Cgroup | V2Cgroup) -> tuple[str, ...]:
    return cg.paths() if isinstance(cg, V1Cgroup) else (cg.path,)


@frozen
class _Cloned:
    pid: int
    sync_w: int
    err_r: int
    status_r: int
    master: int
    created_r: int
    old_mask: set[int]  # restored by the caller once its handlers are in place
    tty_sock: int = -1  # OCI terminal: the container sends its pty master here
    cg: V1Cgroup | V2Cgroup | None = None  # what the executor made (the caller removes it)
    notes: tuple[str, ...] = ()  # limits this host cannot apply


def _spawn(plan: Plan, cgplan: CgroupPlan | None, forward_signals: bool,
           jail: AnyJail | None = None, run_id: str = "",
           ) -> tuple[int, int | None, resource.struct_rusage | None, Usage, str,
                      tuple[str, ...]]:
    """Start, supervise, remove the cgroup. Returns the payload's status, its signal,
    its rusage, the cgroup's usage, the cgroup mode and the cgroup's notes."""
    c = _clone(plan, cgplan, None)
    try:
        # for `stockade audit --all/--stockade ID` while it runs (runner.runs)
        record = runs.record(run_id, c.pid, plan) if run_id else None
        try:
            with _forwarding(c.pid, forward_signals, c.master):
                signal.pthread_sigmask(signal.SIG_SETMASK, c.old_mask)
                status, sig, rusage, usage = _supervise(
                    plan, c.pid, c.cg, c.sync_w, c.err_r, c.status_r, c.master, jail)
        finally:
            runs.remove(record)
    finally:
        if c.cg is not None:
            try:
                c.cg.remove()
            except CgroupError as exc:
                print(f"stockade: warning: {exc}", file=sys.stderr)
    return status, sig, rusage, usage, "none" if c.cg is None else c.cg.mode, c.notes


def _clone(plan: Plan, cgplan: CgroupPlan | None, hold: Hold | None) -> _Cloned:
    """Start the executor on the plan: it makes the cgroups, then the container's process
    is born our child, held on the sync pipe until its id maps are written (docs/
    EXECUTOR.md). Raises _CgroupsRefused when the cgroups could not be made (nothing is
    left), RunnerError for any other failure before the clone."""
    err_r, err_w = os.pipe()
    sync_r, sync_w = os.pipe()
    status_r, status_w = os.pipe()
    created_r, created_w = os.pipe() if hold is not None else (-1, -1)
    master = slave = tty_parent = tty_child = -1
    if plan.tty and hold is not None:
        # OCI: the container allocates its pty in its own devpts and sends the master.
        import socket

        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        tty_parent, tty_child = a.detach(), b.detach()
        os.set_inheritable(tty_child, False)
    elif plan.tty:
        master, slave = os.openpty()
        _copy_winsize(master)
    theirs = (err_w, sync_r, status_w, slave, created_w, tty_child)  # the executor's
    ours = (err_r, sync_w, status_r, master, created_r, tty_parent)
    fds = plan_json.ExecFds(
        report=-1, err=err_w, sync=sync_r, status=status_w, created=created_w,
        gate=-1 if hold is None else hold.gate_fd, tty_slave=slave, tty_socket=tty_child,
        listener=plan.seccomp_listener_sock, trees=plan.premade)
    mode = "run" if hold is None else "create"
    passed = (*theirs, fds.gate, fds.listener, *(fd for _, fd in plan.premade))
    section = None if cgplan is None else cgplan.section
    made: dict[str, str] = {}
    notes: list[str] = [] if cgplan is None else list(cgplan.notes)

    def document(report: int) -> bytes:
        return plan_json.dumps(plan_json.run_document(plan, mode, replace(fds, report=report),
                                                      cgroups=section))

    def on_report(kind: str, value: Any) -> None:
        if kind == "planned" and hold is not None and hold.on_planned is not None:
            hold.on_planned(tuple(value))
        elif kind == "cgroups":
            made.update(value)
            if hold is not None and hold.on_cgroup is not None:
                hold.on_cgroup(tuple(sorted(set(value.values()))))
        elif kind == "note":
            notes.append(value)

    # The process starts with the forwarded signals blocked: they stay pending until its
    # init waits for them or the payload resets its handlers before execve.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        pid = spawn.start(document, passed, on_report,
                          sync_w if section is not None and section["record"] else -1)
    except BaseException as exc:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for fd in theirs:
            if fd >= 0:
                os.close(fd)
        if isinstance(exc, spawn.ExecutorFailed) and exc.pid is not None:
            _kill_and_reap(exc.pid)  # cloned, then a step of the executor's own failed
        if made and section is not None:  # the executor leaves them to us once cloned
            with suppress(CgroupError):
                cgroup_made(section["mode"], made).remove()
        err = _read_all(err_r) if isinstance(exc, spawn.ExecutorFailed) else b""
        for fd in ours:
            if fd >= 0:
                os.close(fd)
        if not isinstance(exc, (spawn.ExecutorFailed, spawn.ExecutorMissing, OSError,
                                plan_json.NotStored)):
            raise
        if isinstance(exc, spawn.ExecutorFailed) and err:
            failure = _child_error(err)
            if failure.step == "cgroups" and cgplan is not None:
                raise _CgroupsRefused(
                    failure.message.removeprefix("step 'cgroups' failed: ")) from exc
            raise failure from exc
        if isinstance(exc, plan_json.NotStored):
            raise runner_error("preflight", "the plan cannot be handed to the executor: "
                               f"{exc}") from exc
        raise runner_error("namespaces" if isinstance(exc, spawn.ExecutorFailed) else
                           "preflight", str(exc)) from exc
    for fd in theirs:  # the executor passed them on to the container's process
        if fd >= 0:
            os.close(fd)
    cg = None if not made or section is None else cgroup_made(section["mode"], made)
    return _Cloned(pid, sync_w, err_r, status_r, master, created_r, old_mask, tty_parent,
                   cg, tuple(notes))


def _supervise_held(plan: Plan, c: _Cloned, cg: V1Cgroup | V2Cgroup | None,
                    hold: Hold) -> tuple[int, int]:
    """Release the child like _supervise, then wait for "created" (or its error)."""
    master = c.master
    sync_closed = False
    try:
        try:
            _runtime_maps(c.pid, plan)
        except IdmapError as exc:
            raise runner_error("idmap", str(exc)) from exc
        try:
            os.write(c.sync_w, protocol.GO)
        except OSError as exc:  # the child died before reading it: its error follows
            raise runner_error("internal", f"the container's process is gone: {exc}") from exc
        # Else EOF: the child failed before its pause, and its error follows below.
        if plan.pause_before_root and os.read(c.created_r, 1) == protocol.HOOKS:
            if hold.before_root is not None:
                hold.before_root(c.pid)
            os.write(c.sync_w, protocol.HOOKS)
        os.close(c.sync_w)
        sync_closed = True
        got = _read_all(c.created_r)
        if got != protocol.CREATED:
            raise _child_error(_read_all(c.err_r), cg, plan.policy.limits.memory)
        if c.tty_sock >= 0:
            master = _recv_master(c.tty_sock)
        if master >= 0 and hold.console_socket:
            _send_fd(hold.console_socket, master)
            os.close(master)
            master = -1
    except BaseException as exc:
        _kill_and_reap(c.pid)
        for fd in (-1 if sync_closed else c.sync_w, master):
            if fd >= 0:
                with suppress(OSError):
                    os.close(fd)
        cause = _cause(exc, c.err_r, cg, plan.policy.limits.memory)
        if cause is not exc:
            raise cause from exc
        raise
    finally:
        if c.tty_sock >= 0:
            os.close(c.tty_sock)
        os.close(c.created_r)
        os.close(c.err_r)  # later failures (after start) show as the exit status
        # Open until now: the child checks it to know its creator is still there.
        os.close(c.status_r)
    return c.pid, master


def _runtime_maps(pid: int, plan: Plan) -> None:
    """The id maps the runtime writes itself: newuidmap's (a rootless runtime); the
    executor wrote direct ones before it reported the pid."""
    if plan.identity.userns and plan.identity.helper == "newuidmap":
        write_maps(pid, plan.identity)


def _recv_master(sock_fd: int) -> int:
    import socket

    sock = socket.socket(fileno=os.dup(sock_fd))
    try:
        _, fds, _, _ = socket.recv_fds(sock, 16, 1)
    finally:
        sock.close()
    if len(fds) != 1:
        raise runner_error("hygiene", "the container sent no pty master")
    return fds[0]


def _send_fd(path: str, fd: int) -> None:
    """runc's --console-socket protocol: one message, the pty master in SCM_RIGHTS."""
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            socket.send_fds(sock, [b"/dev/pts/ptmx"], [fd])
    except OSError as exc:
        raise runner_error("preflight", f"--console-socket {path}: {exc}") from exc


def _supervise(plan: Plan, pid: int, cg: V1Cgroup | V2Cgroup | None, sync_w: int,
               err_r: int, status_r: int, master: int, jail: AnyJail | None = None,
               ) -> tuple[int, int | None, resource.struct_rusage | None, Usage]:
    try:
        try:
            _runtime_maps(pid, plan)
        except IdmapError as exc:
            raise runner_error("idmap", str(exc)) from exc
        if jail is not None:  # its interface, rules and limits, before the payload runs
            from stockade.runner.network.jail import attach

            attach(jail, pid)
        try:
            os.write(sync_w, protocol.GO)
        except OSError as exc:  # the child died before reading it: its error follows
            raise runner_error("internal", f"the sandbox's init is gone: {exc}") from exc
    except BaseException as exc:
        _kill_and_reap(pid)
        os.close(sync_w)
        cause = _cause(exc, err_r, cg, plan.policy.limits.memory)
        for fd in (err_r, status_r, master):
            if fd >= 0:
                os.close(fd)
        if cause is not exc:
            raise cause from exc
        raise
    os.close(sync_w)
    err = _read_all(err_r)
    os.close(err_r)
    if err != protocol.EXECUTING:  # an error line, or a set-up killed before its last step
        _kill_and_reap(pid)
        os.close(status_r)
        if master >= 0:
            os.close(master)
        raise _child_error(err, cg, plan.policy.limits.memory)
    unconfined = _check_confined(plan, pid)
    if unconfined is not None:  # lsm.required: fail closed, the payload is stopped
        _kill_and_reap(pid)
        os.close(status_r)
        if master >= 0:
            os.close(master)
        raise runner_error("lsm", unconfined)
    if master >= 0:
        _proxy_tty(master)
        os.close(master)
    # The init reports the payload's end before it exits: read the cgroup's usage while
    # the init tears its namespaces down (the cgroup itself can go only after that).
    st = _read_status(status_r)
    usage = cg.usage() if cg is not None else Usage()
    _, wstatus, rusage = _wait4(pid)
    st += _read_all(status_r)
    os.close(status_r)
    if st[:1] == protocol.KILLED:
        sig = int(st[1:])
        return 128 + sig, sig, rusage, usage
    if st[:1] == protocol.EXITED:
        return int(st[1:]), None, rusage, usage
    if os.WIFSIGNALED(wstatus):
        sig = os.WTERMSIG(wstatus)
        return 128 + sig, sig, rusage, usage
    return os.WEXITSTATUS(wstatus), None, rusage, usage


def _cause(exc: BaseException, err_r: int, cg: V1Cgroup | V2Cgroup | None = None,
           memory: int | None = None) -> BaseException:
    """The child works ahead of the parent (it joins its cgroup and clones the host trees
    while the parent writes its id maps): when the parent's step failed because the
    child had failed first, the child's own error line is the cause, or the memory limit
    that killed it. The child is dead (killed and reaped) when this is called, so the
    read ends."""
    if isinstance(exc, StockadeError):
        err = _read_all(err_r)
        if err or _oom_killed(cg):
            return _child_error(err, cg, memory)
    return exc


def _child_error(err: bytes, cg: V1Cgroup | V2Cgroup | None = None,
                 memory: int | None = None) -> RunnerError:
    """The set-up's failure: the child's first error line; without one, the memory limit
    when the cgroup counted an OOM kill (the child had no chance to write a line)."""
    first = err.removeprefix(protocol.EXECUTING).decode(errors="replace").split("\n", 1)[0]
    step, _, message = first.partition("\t")  # the first failure wins
    if not step and memory is not None and _oom_killed(cg):
        return runner_error("cgroups", f"resources.memory: the memory limit ({_size(memory)}) "
                            "was reached during set-up, before the payload started (the "
                            "executor's own steps need memory too): raise the limit")
    return runner_error(step or "internal", message or "the sandbox's init died during setup")


def _oom_killed(cg: V1Cgroup | V2Cgroup | None) -> bool:
    return cg is not None and cg.usage().oom_kills > 0


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def _read_status(fd: int) -> bytes:
    """The init's one status message ("e<code>" or "s<signal>"), or b"" at EOF."""
    while True:
        try:
            return os.read(fd, 64)
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue


def _wait4(pid: int) -> tuple[int, int, resource.struct_rusage]:
    while True:
        try:
            return os.wait4(pid, 0)
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue


def _kill_and_reap(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:  # pragma: no cover
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class _forwarding:  # noqa: N801 - used as `with _forwarding(...)`
    """SIGINT/SIGTERM/SIGHUP/... to the runner go to the sandbox's init (which forwards).
    A class, not @contextmanager: contextlib is not imported on the run path."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)

    def __init__(self, pid: int, enabled: bool, master: int = -1) -> None:
        self.pid, self.enabled, self.master = pid, enabled, master
        self.old: dict[int, object] = {}

    def forward(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGWINCH and self.master >= 0:
            _copy_winsize(self.master)  # the payload's pty follows the real terminal's size
        with suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def __enter__(self) -> None:
        if self.enabled:
            self.old = {s: signal.signal(s, self.forward) for s in self.SIGNALS}

    def __exit__(self, *exc: object) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)  # type: ignore[arg-type]


def _copy_winsize(master: int) -> None:
    import fcntl
    import termios

    for fd in (0, 1, 2):
        if os.isatty(fd):
            try:
                ws = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(master, termios.TIOCSWINSZ, ws)
            except OSError:
                pass
            return


def _proxy_tty(master: int) -> None:
    """Copy stdin -> pty and pty -> stdout until the payload closes its side."""
    import select
    import termios
    import tty

    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
    try:
        inputs = [master, 0]
        while True:
            try:
                ready, _, _ = select.select(inputs, [], [])
            except InterruptedError:  # pragma: no cover
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    inputs.remove(0)
                    with suppress(OSError):
                        os.write(master, b"\x04")
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
