"""The parent side: cgroup, clone, id maps, release, supervise, report, clean up.

Order (ARCHITECTURE.md, steps 1, 2 and 9): everything slow was done while building the
plan; here the cgroup is created and limited first, then the child is cloned into its
namespaces and held on a pipe until its maps are written and it is in the cgroup. The
cgroup is removed in a finally block, whatever happened.
"""

from __future__ import annotations

import marshal
import os
import resource
import sys
import time
from contextlib import suppress

from stockade.errors import RunnerError, StockadeError
from stockade.executor import protocol
from stockade.linux import syscalls as L
from stockade.runner import child as child_mod
from stockade.runner import idalloc, idmount, rootfs, runs, setid_guard
from stockade.runner._record import from_plain, frozen, to_plain
from stockade.runner.cgroups import (
    CgroupError,
    Hierarchy,
    Usage,
    V1Cgroup,
    V2Cgroup,
    create,
    detect_cached,
)
from stockade.runner.codes import EXIT_CODES, runner_error
from stockade.runner.idmap import IdmapError, back_to_root, become_owner, write_maps
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


_counter = [0]  # run ids only; not state that changes behaviour


def _run_id() -> str:
    _counter[0] += 1
    return f"{os.getpid()}-{_counter[0]}-{os.urandom(3).hex()}"


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def launch(plan: Plan, *, forward_signals: bool = False) -> RunResult:
    """Run the plan; returns the payload's result or raises RunnerError (payload never ran)."""
    threads = _threads()
    if route(plan, forward_signals, threads) == "helper":
        from stockade.runner import helper

        try:
            return helper.launch(plan)
        except helper.Unavailable as exc:  # nothing was sent: start it from here instead
            if os.environ.get("STOCKADE_LAUNCHER") == "helper":
                raise runner_error("internal", str(exc)) from exc
            threads = _threads()  # the helpers' spawner thread may exist now
    return launch_here(plan, forward_signals, threads)


HELPER_RSS_MIB = 48  # above this, a fork of the caller costs more than a helper's round trip


def route(plan: Plan, forward_signals: bool = False, threads: int | None = None) -> str:
    """Where the sandbox is started: "in-process" (a fork of this process) or "helper"
    (runner.helper: a lean process, for big or multi-threaded callers).
    $STOCKADE_LAUNCHER = auto (default) | helper | in-process."""
    mode = os.environ.get("STOCKADE_LAUNCHER", "auto")
    if mode not in ("auto", "helper", "in-process"):
        raise runner_error("preflight", f"STOCKADE_LAUNCHER={mode!r}: expected auto, helper "
                           "or in-process")
    # The learner's listener socket and the CLI's signal forwarding are this process's.
    if mode == "in-process" or plan.seccomp_listener_sock >= 0 or forward_signals:
        return "in-process"
    if mode == "helper" or (threads or _threads()) > 1 or _rss_mib() > HELPER_RSS_MIB:
        return "helper"
    return "in-process"


def _rss_mib() -> float:
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        try:
            resident = int(os.read(fd, 256).split()[1])
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        return 0.0
    return resident * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def launch_here(plan: Plan, forward_signals: bool = False,
                threads: int | None = None) -> RunResult:
    """Start the sandbox from this process (a fork of it), whatever its size."""
    run_id = _run_id()
    if (threads or _threads()) > 1:
        # A raw clone() in a multi-threaded process could inherit locks held by other
        # threads (malloc, import). Do the whole launch from a forked single-threaded child.
        return _launch_via_fork(plan, run_id)
    return _launch(plan, forward_signals, run_id)


def _launch_via_fork(plan: Plan, run_id: str) -> RunResult:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.write(w, encode_outcome(_launch, plan, False, run_id))
        finally:
            os._exit(0)
    os.close(w)
    data = _read_all(r)
    os.close(r)
    os.waitpid(pid, 0)
    if not data:
        raise runner_error("internal", "the forked launcher died without a result")
    return decode_outcome(data)


_RESULT_RECORDS: dict[str, type] = {"RunResult": RunResult}


def encode_outcome(run: Callable[..., RunResult], *args: object) -> bytes:
    """run(*args)'s outcome for another process (a forked launcher, a launch helper), as marshal
    data: ("ok", result) or ("err", step, message, exit code). Never raises."""
    try:
        out: Any = ("ok", to_plain(run(*args), _RESULT_RECORDS))
    except RunnerError as exc:
        out = ("err", exc.step, exc.message, exc.exit_code)
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, never unwound
        out = ("err", "internal", f"{type(exc).__name__}: {exc}", EXIT_CODES["internal"])
    return marshal.dumps(out)


def decode_outcome(data: bytes) -> RunResult:
    """The RunResult from encode_outcome's bytes, or its RunnerError raised here."""
    got = marshal.loads(data)
    if got[0] == "ok":
        result = from_plain(got[1], _RESULT_RECORDS)
        assert isinstance(result, RunResult)
        return result
    err = RunnerError.__new__(RunnerError)  # the message is already the formatted one
    StockadeError.__init__(err, got[2], exit_code=got[3])
    err.step = got[1]
    raise err


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
    cg: V1Cgroup | V2Cgroup | None = None
    use_cgroup = os.geteuid() == 0 or limits.any
    jail: AnyJail | None = None
    try:
        if use_cgroup:
            try:
                cg = _create(lambda h: create(h, run_id, io=limits.io_weight is not None))
                notes += cg.apply(limits)
            except (CgroupError, OSError) as exc:
                if cg is not None:  # created, then a limit was refused: remove it now
                    with suppress(CgroupError):
                        cg.remove()
                    cg = None
                why = str(exc)
                if not limits.any:
                    # Only the usage report needed it: run, and say what is missing.
                    notes.append(f"no cgroup for the usage report ({why}); "
                                 "peak memory and cpu come from rusage")
                    why = ""
                elif os.geteuid() != 0 and plan.policy.limits_best_effort:
                    plan, note = without_preset_limits(plan, f"no cgroup ({why})")
                    notes.append(note)
                    why = ""
                elif os.geteuid() != 0:
                    why += (" (unprivileged, with resources in the policy: run from a "
                            "delegated cgroup or use a policy without resources)")
                if why:
                    raise runner_error("cgroups", why) from exc
        try:
            rootfs.prepare_mountpoints(plan)
        except (OSError, rootfs.RootfsError) as exc:
            raise runner_error("rootfs", str(exc)) from exc
        plan, idmap_notes = idmount.with_idmapped(plan)  # closed in the finally below
        notes += idmap_notes
        plan, guard_notes = setid_guard.guarded(plan)  # no set-id files on the host
        notes += guard_notes
        if plan.policy.net is not None:  # network.mode private (runner.network)
            from stockade.runner.network.jail import open_jail

            jail = open_jail(plan.policy.net, plan.rootfs, plan.host_root)
        result = _spawn(plan, cg, forward_signals, jail, run_id)
    finally:
        if cg is not None:
            try:
                cg.remove()
            except CgroupError as exc:
                print(f"stockade: warning: {exc}", file=sys.stderr)
        if jail is not None:
            from stockade.runner.network.jail import close_jail

            close_jail(jail)
        idmount.close(plan)
    status, sig, rusage, usage = result
    cpu = usage.cpu_time_ns
    if cpu is None and rusage is not None:
        cpu = int((rusage.ru_utime + rusage.ru_stime) * 1e9)
    mem = usage.memory_peak
    if mem is None and rusage is not None:
        mem = rusage.ru_maxrss * 1024
    return RunResult(
        exit_code=status, signal=sig, oom_killed=usage.oom_kills > 0, memory_peak=mem,
        cpu_time_ns=cpu, pids_peak=usage.pids_peak,
        wall_time_s=time.perf_counter() - started,
        cgroup="none" if cg is None else cg.mode, run_id=run_id, notes=tuple(notes),
    )


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
    if _threads() > 1:
        raise runner_error("internal", "OCI create needs a single-threaded process")
    if plan.init:
        raise runner_error("internal", "OCI create runs the payload as the first process")
    if plan.identity.pool is not None:  # no process of ours would hold the range's lock
        raise runner_error("internal", "OCI create takes explicit id maps, not the id pool")
    _load_lsm(plan)
    limits = plan.policy.limits
    notes = list(plan.notes)
    cg: V1Cgroup | V2Cgroup | None = None
    try:
        if os.geteuid() == 0 or limits.any or hold.cgroup_path is not None:
            try:
                cg = _create(lambda h: create(h, hold.name, io=limits.io_weight is not None,
                                              path=hold.cgroup_path,
                                              devices=limits.devices_allow is not None,
                                              freezer=True,  # OCI pause/resume
                                              on_planned=hold.on_planned,
                                              cpuset=limits.cpuset))
                if hold.on_cgroup is not None:
                    hold.on_cgroup(_dirs(cg))
                notes += cg.apply(limits)
            except (CgroupError, OSError) as exc:
                raise runner_error("cgroups", str(exc)) from exc
        try:
            rootfs.prepare_mountpoints(plan)
        except (OSError, rootfs.RootfsError) as exc:
            raise runner_error("rootfs", str(exc)) from exc
        c = _clone(plan, cg, hold)
        L.sigmask(L.SIG_SETMASK, c.old_mask)
        pid, master = _supervise_held(plan, c, cg, hold)
    except BaseException:
        if cg is not None:
            with suppress(CgroupError):
                cg.remove()
        raise
    return Held(pid, () if cg is None else _dirs(cg), master, tuple(notes))


def _create(make: Callable[[Hierarchy], V1Cgroup | V2Cgroup]) -> V1Cgroup | V2Cgroup:
    """Create with the cached view of the hierarchy; once more with a fresh one if the
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
    fds: child_mod.ChildFds
    sync_w: int
    err_r: int
    status_r: int
    master: int
    created_r: int
    old_mask: set[int]  # restored by the caller once its handlers are in place
    tty_sock: int = -1  # OCI terminal: the container sends its pty master here


def _spawn(plan: Plan, cg: V1Cgroup | V2Cgroup | None, forward_signals: bool,
           jail: AnyJail | None = None, run_id: str = "",
           ) -> tuple[int, int | None, resource.struct_rusage | None, Usage]:
    c = _clone(plan, cg, None)
    # for `stockade audit --all/--stockade ID` while it runs (runner.runs)
    record = runs.record(run_id, c.pid, plan) if run_id else None
    try:
        with _forwarding(c.pid, forward_signals, c.master):
            L.sigmask(L.SIG_SETMASK, c.old_mask)
            return _supervise(plan, c.pid, cg, c.fds, c.sync_w, c.err_r, c.status_r,
                              c.master, c.fds.cgroup_tasks, jail)
    finally:
        runs.remove(record)


def _clone(plan: Plan, cg: V1Cgroup | V2Cgroup | None,
           hold: Hold | None) -> _Cloned:
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
    own = (err_r, err_w, sync_r, sync_w, status_r, status_w, master, slave, created_r,
           created_w, tty_parent, tty_child)
    tasks: tuple[int, ...] = ()
    if isinstance(cg, V1Cgroup):
        try:
            tasks = tuple(os.open(os.path.join(d, "tasks"), os.O_WRONLY | os.O_CLOEXEC)
                          for d in cg.paths())
        except OSError as exc:
            for fd in own:
                if fd >= 0:
                    os.close(fd)
            raise runner_error("cgroups", f"attach: {exc}") from exc
    fds = child_mod.ChildFds(err_w, sync_r, status_w, slave, tasks, created_w,
                             -1 if hold is None else hold.gate_fd, tty_child)
    # The child starts with the forwarded signals blocked: they stay pending until its
    # init waits for them (sigwaitinfo) or the payload resets its handlers before execve.
    old_mask = L.sigmask(L.SIG_BLOCK, child_mod.FORWARDED)
    cg_fd = -1
    try:
        if isinstance(cg, V2Cgroup):
            cg_fd = os.open(cg.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        pid = _clone_call(plan, cg_fd)
    except OSError as exc:
        L.sigmask(L.SIG_SETMASK, old_mask)
        if cg_fd >= 0:
            os.close(cg_fd)
        for fd in (*own, *tasks):
            if fd >= 0:
                os.close(fd)
        raise runner_error("namespaces", f"clone: {exc.strerror}") from exc
    if pid == 0:
        for fd in (err_r, sync_w, status_r, master, cg_fd, created_r, tty_parent):
            if fd >= 0:
                os.close(fd)
        child_mod.init_main(plan, fds)  # never returns
        os._exit(122)
    if cg_fd >= 0:
        os.close(cg_fd)
    return _Cloned(pid, fds, sync_w, err_r, status_r, master, created_r, old_mask, tty_parent)


def _clone_call(plan: Plan, cg_fd: int) -> int:
    """clone (into the cgroup v2 directory cg_fd, if any); as the user namespace's owner
    when the plan names one (runner.idmap.become_owner), and back in the parent only."""
    owner = plan.identity.owner
    saved = None if owner is None else become_owner(owner)
    pid = -1
    try:
        if cg_fd >= 0:
            pid = L.clone3_into_cgroup(plan.clone_flags, cg_fd)
        else:
            pid = L.clone_fork(plan.clone_flags)
    finally:
        if saved is not None and pid != 0:  # the child keeps its ids for its own steps
            back_to_root(saved)
    return pid


def _supervise_held(plan: Plan, c: _Cloned, cg: V1Cgroup | V2Cgroup | None,
                    hold: Hold) -> tuple[int, int]:
    """Release the child like _supervise, then wait for "created" (or its error)."""
    fds = c.fds
    for fd in (fds.err_w, fds.sync_r, fds.status_w, fds.tty_slave, fds.created_w,
               fds.tty_sock, *fds.cgroup_tasks):
        if fd >= 0:
            os.close(fd)
    master = c.master
    sync_closed = False
    try:
        try:
            write_maps(c.pid, plan.identity)
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


def _supervise(plan: Plan, pid: int, cg: V1Cgroup | V2Cgroup | None, fds: child_mod.ChildFds,
               sync_w: int, err_r: int, status_r: int, master: int, tasks: tuple[int, ...],
               jail: AnyJail | None = None,
               ) -> tuple[int, int | None, resource.struct_rusage | None, Usage]:
    slave = fds.tty_slave
    err_w, sync_r, status_w = fds.err_w, fds.sync_r, fds.status_w
    for fd in (err_w, sync_r, status_w, slave, *tasks):
        if fd >= 0:
            os.close(fd)
    try:
        try:
            write_maps(pid, plan.identity)
        except IdmapError as exc:
            raise runner_error("idmap", str(exc)) from exc
        if isinstance(cg, V1Cgroup) and not tasks:
            try:
                cg.attach(pid)
            except CgroupError as exc:
                raise runner_error("cgroups", f"attach: {exc}") from exc
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
                            "was reached during set-up, before the payload started; the "
                            "runner's own steps need a few MiB: raise the limit")
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
        os.kill(pid, L.SIGKILL)
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

    SIGNALS = (L.SIGINT, L.SIGTERM, L.SIGHUP, L.SIGQUIT, L.SIGUSR1, L.SIGUSR2, L.SIGWINCH)

    def __init__(self, pid: int, enabled: bool, master: int = -1) -> None:
        self.pid, self.enabled, self.master = pid, enabled, master
        self.old: dict[int, object] = {}

    def forward(self, signum: int, _frame: object) -> None:
        if signum == L.SIGWINCH and self.master >= 0:
            _copy_winsize(self.master)  # the payload's pty follows the real terminal's size
        with suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def __enter__(self) -> None:
        if self.enabled:
            self.old = {s: L.set_signal_handler(s, self.forward) for s in self.SIGNALS}

    def __exit__(self, *exc: object) -> None:
        for s, h in self.old.items():
            L.set_signal_handler(s, h)


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
