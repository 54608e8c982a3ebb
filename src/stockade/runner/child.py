"""What runs in the cloned child: the init (namespace-wide steps) and the payload steps.

Everything this module needs is imported at the top: the child never imports (an import
lock held by another thread of the parent at clone time would deadlock it). Errors go
to the parent as one line "step<TAB>message" on a close-on-exec pipe. Under `stockade
run`, the process that starts the payload first writes EXECUTING there (before its last
step, seccomp): EOF after it means the payload was executed; EOF with neither means the
set-up was killed (the OOM killer, under a memory limit). The child never returns to
the caller's code.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
import termios
from contextlib import suppress

from stockade.executor.protocol import (
    CREATED,
    EXECUTING,
    EXITED,
    GO,
    HOOKS,
    KILLED,
    START,
    START_LENGTH_BYTES,
)
from stockade.linux import syscalls as L
from stockade.runner import caps, landlock, lsm, namespaces, rlimits, rootfs, seccomp
from stockade.runner._record import frozen
from stockade.runner.codes import EXIT_CODES
from stockade.runner.plan import Plan, spawns

TYPE_CHECKING = False  # annotations only: no collections.abc import in the child
if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FORWARDED = (L.SIGINT, L.SIGTERM, L.SIGHUP, L.SIGQUIT, L.SIGUSR1,
             L.SIGUSR2, L.SIGWINCH, L.SIGCONT)
ALL_SIGNALS = set(range(1, L.NSIG)) - {L.SIGKILL, L.SIGSTOP, 32, 33}
# The processes a sandbox with an init holds before its payload can fork anything.
PIDS_WITH_INIT = 2


@frozen
class ChildFds:
    err_w: int  # error line to the parent (close-on-exec)
    sync_r: int  # the parent's "id maps written" byte
    status_w: int  # the init reports the payload's end here
    tty_slave: int = -1
    cgroup_tasks: tuple[int, ...] = ()  # v1 "tasks" files, opened by the parent
    # OCI create/start: the payload writes "c" on created_w once set up, then waits on
    # gate_r (the container's exec fifo) for the byte `start` writes.
    created_w: int = -1
    gate_r: int = -1
    # OCI terminal: the pty is allocated inside the container's own devpts and its
    # master sent to the parent on this socket (runc's way; not a host pty).
    tty_sock: int = -1


class StepFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.message = message


def _fail(fds: ChildFds, step: str, message: str) -> None:
    line = f"{step}\t{message}".replace("\n", " ")[:3000] + "\n"
    with suppress(OSError):
        os.write(fds.err_w, line.encode(errors="replace"))
    os._exit(EXIT_CODES.get(step, EXIT_CODES["internal"]))


class _Step:
    """`with _Step(fds, "rootfs"):` turns any OSError/known error into that step's failure."""

    def __init__(self, fds: ChildFds, name: str) -> None:
        self.fds = fds
        self.name = name

    def __enter__(self) -> None:
        """Nothing to do on entry: a step's errors are translated on its way out."""

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: object) -> None:
        if isinstance(ev, (OSError, rootfs.RootfsError, lsm.LsmError, landlock.LandlockError,
                           ValueError)):
            raise StepFailed(self.name, str(ev)) from ev


def _only(steps: Callable[[], None], fds: ChildFds) -> None:
    """Run a child's steps and never return: a failure is reported on the error pipe
    with its step's exit code; the steps themselves end in execve or _exit."""
    try:
        steps()
    except StepFailed as exc:
        _fail(fds, exc.step, exc.message)
    except BaseException as exc:  # noqa: BLE001 - the child must never unwind into the caller
        _fail(fds, "internal", f"{type(exc).__name__}: {exc}")
    os._exit(EXIT_CODES["internal"])


def init_main(plan: Plan, fds: ChildFds) -> None:
    """The clone child: PID 1 of the new pid namespace (or the payload itself)."""
    _only(lambda: _init_steps(plan, fds), fds)


def exec_main(plan: Plan, fds: ChildFds) -> None:
    """`stockade oci exec`'s process, already in the container's cgroups and namespaces
    (root included): the steps the container's own process took after its root was
    built, at the gate in between (oci/execute.py)."""
    _only(lambda: _payload_alone(plan, fds, joins=True), fds)


def _init_steps(plan: Plan, fds: ChildFds) -> None:
    # Die with the runner: an orphaned sandbox would escape its supervision and cleanup.
    L.prctl(L.PR_SET_PDEATHSIG, L.SIGKILL)
    # Until the parent's "g" (our id maps are written), do what needs no maps, while the
    # parent writes them: join the cgroup and clone the host-side trees.
    with _Step(fds, "cgroups"):
        # v1: the child moves itself by writing "0" to `tasks` through fds the parent
        # opened (the kernel checks the opener's credentials). Moving a single thread
        # that is `current` skips the global threadgroup rwsem, whose RCU sync (a full
        # grace period) every fresh process would wait out if the parent wrote
        # cgroup.procs instead.
        for fd in fds.cgroup_tasks:
            os.write(fd, b"0")
            os.close(fd)
    with _Step(fds, "namespaces"):
        if plan.cgroup_ns:
            # After the attach, so the namespace root is the sandbox's own cgroup; the
            # payload, forked later, is born inside both.
            namespaces.enter_cgroup_ns()
    with _Step(fds, "rootfs"):
        # Clone the host-side trees while still holding the invoker's host credentials
        # (before becoming root of the new user namespace, an unmapped id outside).
        trees = rootfs.open_sources(plan)
    if os.read(fds.sync_r, 1) != GO:
        os._exit(EXIT_CODES["internal"])  # the parent gave up (and will clean up)
    if not plan.pause_before_root:
        os.close(fds.sync_r)
    # CVE-2019-5736 class: this process is the runner's interpreter. Non-dumpable, its
    # /proc/<pid>/exe, fd/, mem and environ are closed to the payload, and ptrace is
    # refused (its mm belongs to the host user namespace, never exec'd in the new one).
    # Only after the parent wrote our id maps: non-dumpable makes /proc/<pid>/*_map
    # root-owned, which an unprivileged parent could no longer open.
    L.prctl(L.PR_SET_DUMPABLE, 0)
    ident = plan.identity
    with _Step(fds, "idmap"):
        if ident.userns and ident.setgroups == "allow":
            os.setgroups([])
        if ident.userns and (os.getuid() != 0 or os.getgid() != 0) and _maps_root(plan):
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        _keep_deathsig(fds.status_w)
    with _Step(fds, "namespaces"):
        if plan.hostname:
            namespaces.set_hostname(plan.hostname)
        for key, value in plan.sysctl:
            # Still on the host's /proc, but these keys are per-namespace (net, ipc, uts):
            # the kernel picks the writer's namespaces, which are the new ones.
            with open("/proc/sys/" + key.replace(".", "/"), "w") as fh:
                fh.write(value)
        if plan.policy.network == "loopback":
            namespaces.loopback_up()
    if plan.pause_before_root:
        with _Step(fds, "hygiene"):
            # The runtime's hooks run now, in and around our namespaces (OCI
            # createRuntime/createContainer): "h" to the parent, "h" back when done.
            os.write(fds.created_w, HOOKS)
            if os.read(fds.sync_r, 1) != HOOKS:
                os._exit(EXIT_CODES["internal"])  # a hook failed: the parent cleans up
            os.close(fds.sync_r)
    with _Step(fds, "rootfs"):
        rootfs.build(plan, trees)
    if not plan.init:
        _payload_alone(plan, fds)  # never returns
    # The init takes the payload's identity steps on itself (capabilities, no_new_privs,
    # Landlock, cwd: all inherited), then starts the payload with only its per-process
    # steps left. When the compiled policy allows it (runner.spawn_check), the init also
    # applies the rlimits and, last, the seccomp filter, and posix_spawn()s the command:
    # no fork of this interpreter at all (a fork pays a page fault for every page either
    # side writes). Otherwise it forks, and the payload sets its session, rlimits,
    # signals and seccomp itself. The init never execs: afterwards it only reaps and
    # forwards signals, so none of these steps bounds anything it needs.
    ready = _identity_steps(plan, fds)
    L.sigmask(L.SIG_BLOCK, ALL_SIGNALS)
    if spawns(plan):
        child = _spawn_payload(plan, fds, ready)
    else:
        with _Step(fds, "namespaces"):
            try:
                child = L.clone_fork(0)
            except OSError as exc:
                _check_room(plan, exc)
                raise
    if child == 0:
        _only(lambda: _payload_exec(plan, fds, ready), fds)
    os.close(fds.err_w)
    if fds.tty_slave >= 0:
        os.close(fds.tty_slave)
    if not plan.policy.no_new_privs:
        # The init kept root's capabilities for the payload (seccomp, then capabilities,
        # without no_new_privs); it needs none to reap and forward. With no_new_privs it
        # already holds no more than the payload.
        try:
            caps.drop_all()
            L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        except OSError:
            pass
    _reap(child, fds.status_w)


def _keep_deathsig(status_w: int) -> None:
    """A change of uid/gid clears PR_SET_PDEATHSIG: set it again, then make sure the
    runner did not die in between (its end of our status pipe would be closed)."""
    L.prctl(L.PR_SET_PDEATHSIG, L.SIGKILL)
    poller = select.poll()
    poller.register(status_w, select.POLLOUT)
    for _, events in poller.poll(0):
        if events & select.POLLERR:
            os._exit(EXIT_CODES["internal"])  # the runner is gone: never run unsupervised


def _maps_root(plan: Plan) -> bool:
    return any(m.inside == 0 for m in plan.identity.uid_map) and any(
        m.inside == 0 for m in plan.identity.gid_map)


def _reap(child: int, status_w: int) -> None:
    """Tiny init: forward signals to the payload, reap every zombie, exit with the payload."""
    waitset = set(FORWARDED) | {L.SIGCHLD}
    result: bytes | None = None
    while result is None:
        info = L.sigwaitinfo(waitset)
        if info.si_signo != L.SIGCHLD:
            with suppress(OSError):  # gone, or a uid the init may not signal
                os.kill(child, info.si_signo)
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == child:
                if os.WIFSIGNALED(status):
                    result = KILLED + b"%d" % os.WTERMSIG(status)
                else:
                    result = EXITED + b"%d" % os.WEXITSTATUS(status)
    os.write(status_w, result)
    code = int(result[1:])
    os._exit(code if result[:1] == EXITED else 128 + code)


@frozen
class _Ready:
    """What the payload's last steps need, made in advance."""

    path: str  # the command, found before seccomp (a miss is reported, 127)
    filters: tuple[L.SeccompProgram, ...]  # loaded in this order, just before execve


def _identity_steps(plan: Plan, fds: ChildFds, joins: bool = False) -> _Ready:
    """Capabilities, no_new_privs, Landlock, the cwd and the command lookup, in the order
    of ARCHITECTURE.md. With an init they run in the init and the payload inherits them;
    without, in the payload itself. joins: `oci exec` (no Landlock scoping, see there)."""
    p = plan.policy
    with _Step(fds, "lsm"):
        # First: Landlock would refuse the write to /proc/thread-self/attr/exec. The label
        # is a task attribute, inherited by the payload's fork, used at its execve.
        lsm.apply(p.lsm)
    with _Step(fds, "rlimits"):
        # Raising a hard limit needs CAP_SYS_RESOURCE, which the capabilities step may
        # drop: raise now; the payload sets the exact values (lowering needs nothing).
        rlimits.raise_hard(p.rlimits)
    if p.no_new_privs:
        _caps(plan, fds)
        with _Step(fds, "no_new_privs"):
            L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
            if L.prctl(L.PR_GET_NO_NEW_PRIVS) != 1:
                raise StepFailed("no_new_privs", "the kernel did not keep no_new_privs")
    # Without no_new_privs, Landlock needs CAP_SYS_ADMIN (in this user namespace): apply
    # it while we still have it; the payload then drops its capabilities after seccomp.
    with _Step(fds, "landlock"):
        landlock.apply(p.landlock, plan.landlock_extra, scoped=not joins)
    with _Step(fds, "hygiene"):
        # Every fd above 2 closes at execve (the error pipe must live until then).
        L.close_range_cloexec(3)
        # CVE-2024-21626: the cwd must be a directory inside the new root, resolved in it.
        root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            cwd = L.openat2(root, plan.cwd.lstrip("/") or ".", os.O_PATH | os.O_DIRECTORY,
                            L.RESOLVE_IN_ROOT | L.RESOLVE_NO_MAGICLINKS)
        except OSError as exc:  # the raw syscall's error names no path: say which
            raise StepFailed("hygiene", f"working directory {plan.cwd} (resolved inside the "
                             f"root): {exc.strerror}") from exc
        finally:
            os.close(root)
        os.fchdir(cwd)
        os.close(cwd)
        if plan.umask is not None:
            os.umask(plan.umask)
        os.getcwd()  # raises when the cwd is not reachable from the root
    path = _find(plan.argv[0], dict(plan.env).get("PATH", DEFAULT_PATH), fds)
    with _Step(fds, "seccomp"):
        filters = tuple(f for f in (seccomp.prepare(p.seccomp_bpf, p.seccomp_flags),
                                    seccomp.prepare(p.seccomp_extra, p.seccomp_flags),
                                    seccomp.prepare(plan.setid_guard))  # runner.setid_guard
                        if f is not None)
    return _Ready(path, filters)


def _spawn_payload(plan: Plan, fds: ChildFds, ready: _Ready) -> int:
    """The init takes the payload's last inherited steps too (rlimits, then seccomp) and
    posix_spawn()s it: vfork + execve, no Python in the child (runner.spawn_check says
    when this is allowed). Returns the payload's pid."""
    _own_rlimits(plan, fds)
    _executing(fds)
    _seccomp_last(plan, fds, ready)  # only posix_spawn and the init's reaping follow
    try:
        # The child: own session (TIOCSTI), default handlers, nothing blocked, execve.
        return os.posix_spawn(ready.path, list(plan.argv), dict(plan.env), setsid=True,
                              setsigmask=(), setsigdef=ALL_SIGNALS)
    except OSError as exc:
        _check_room(plan, exc)
        step = "exec" if exc.errno == errno.ENOENT else "exec-permission"
        raise StepFailed(step, f"{plan.argv[0]}: {exc.strerror}") from exc


def _payload_alone(plan: Plan, fds: ChildFds, joins: bool = False) -> None:
    """No init (OCI, or no pid namespace): this process is the payload; every step here."""
    _session(plan, fds)
    _payload_exec(plan, fds, _identity_steps(plan, fds, joins), session=False)


def _session(plan: Plan, fds: ChildFds) -> None:
    with _Step(fds, "hygiene"):
        # Own session: no controlling terminal to push input into (TIOCSTI, CVE-2017-5226).
        os.setsid()
        tty_slave = fds.tty_slave
        if fds.tty_sock >= 0:
            tty_slave = _pty_inside(fds.tty_sock)
            if plan.console_size is not None:  # struct winsize: rows, cols, 2 unused
                rows, cols = plan.console_size
                fcntl.ioctl(tty_slave, termios.TIOCSWINSZ,
                            rows.to_bytes(2, "little") + cols.to_bytes(2, "little") + bytes(4))
        if tty_slave >= 0:
            for target in (0, 1, 2):
                os.dup2(tty_slave, target)
            os.close(tty_slave)
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _payload_exec(plan: Plan, fds: ChildFds, ready: _Ready, session: bool = True) -> None:
    """The payload's own last steps: session, LSM label, rlimits, signals, OCI gate,
    seccomp (last, just before execve), execve."""
    p = plan.policy
    if session:
        _session(plan, fds)
        if plan.init:
            os.close(fds.status_w)
    _own_rlimits(plan, fds)
    with _Step(fds, "hygiene"):
        # Python ignores SIGPIPE/SIGXFSZ and catches SIGINT: back to the defaults (an
        # ignored signal stays ignored across execve), then unblock everything.
        L.default_signal_handlers(ALL_SIGNALS)
        L.sigmask(L.SIG_SETMASK, ())
    if fds.gate_r >= 0:
        state = _gate(fds)
        if plan.start_hooks:
            _start_hooks(plan, state)
    # Without no_new_privs, loading the filter needs CAP_SYS_ADMIN, so it comes before the
    # capabilities (the filter must then allow capset, prctl and setresuid, as with runc).
    if fds.gate_r < 0:  # OCI: the gate's "created" byte says it instead
        _executing(fds)
    _seccomp_last(plan, fds, ready)
    if not p.no_new_privs:
        # Under an init, the payload dies with the init (its pid namespace), not alone.
        _caps(plan, fds, deathsig=not plan.init)
    try:
        os.execve(ready.path, list(plan.argv), dict(plan.env))
    except OSError as exc:
        step = "exec" if exc.errno == errno.ENOENT else "exec-permission"
        _fail(fds, step, f"{plan.argv[0]}: {exc.strerror}")


def _executing(fds: ChildFds) -> None:
    """Tell the parent the set-up is over: a death from here on is the payload's."""
    with _Step(fds, "internal"):
        os.write(fds.err_w, EXECUTING)


def _check_room(plan: Plan, exc: OSError) -> None:
    """The init cannot start the payload with EAGAIN: name the pids limit that left no
    room for it (the init is a process of the sandbox too)."""
    pids = plan.policy.limits.pids
    if exc.errno == errno.EAGAIN and pids is not None and pids < PIDS_WITH_INIT:
        raise StepFailed("cgroups", f"resources.pids: the pids limit ({pids}) does not leave "
                         "room for the payload: the sandbox's init is one process and the "
                         f"payload another, so it needs at least {PIDS_WITH_INIT} "
                         "(or run without the init, --no-init)") from exc


def _own_rlimits(plan: Plan, fds: ChildFds) -> None:
    """The steps the task that execs takes for itself: rlimits (its LSM exec label is
    set in _identity_steps, before Landlock, and inherited)."""
    with _Step(fds, "rlimits"):
        rlimits.apply(plan.policy.rlimits)


def _seccomp_last(plan: Plan, fds: ChildFds, ready: _Ready) -> None:
    """Last, just before execve: the filter need not allow any of the setup above."""
    with _Step(fds, "seccomp"):
        if plan.seccomp_listener_sock >= 0:  # `stockade learn`: the recorder's filter
            guard = seccomp.prepare(plan.setid_guard)
            if guard is not None:  # before: the recorder would see this load as the payload's
                guard.load()
            seccomp.load_recording(plan.policy.seccomp_bpf, plan.seccomp_listener_sock)
        else:
            for f in ready.filters:  # all run; the kernel takes the strictest verdict
                f.load()


def _caps(plan: Plan, fds: ChildFds, deathsig: bool = True) -> None:
    """deathsig: this process is the runner's child (the init, or a payload without
    one) and must die with it; an OCI payload behind its gate outlives its creator."""
    with _Step(fds, "capabilities"):
        caps.apply(plan.policy.caps, plan.identity)
        if deathsig and fds.gate_r < 0:  # a uid change cleared it: set it again
            _keep_deathsig(fds.status_w)


_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def _pty_inside(sock_fd: int) -> int:
    """A pty from the container's devpts (the root is built: this is its /dev); the
    master goes to the parent, the slave is returned."""
    import socket  # imported by the parent before the clone: a dict lookup here

    master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, bytes(4))  # unlock the slave
        num = int.from_bytes(fcntl.ioctl(master, _TIOCGPTN, bytes(4)), "little")
        slave = os.open(f"/dev/pts/{num}", os.O_RDWR | os.O_NOCTTY)
        sock = socket.socket(fileno=sock_fd)
        try:
            socket.send_fds(sock, [b"m"], [master])
        finally:
            sock.close()
    finally:
        os.close(master)
    return slave


def _gate(fds: ChildFds) -> bytes:
    """OCI `create`: report "created", then wait for `start` (runc's exec fifo).

    The creating process exits after "created", so the parent-death signal goes first
    (the container is reparented, as with runc). `start` writes "s", an 8-byte length
    and the state JSON (for startContainer hooks). A gate closed without the start byte
    means the container was deleted before start: never run the payload then."""
    with _Step(fds, "hygiene"):
        L.prctl(L.PR_SET_PDEATHSIG, 0)
        os.write(fds.created_w, CREATED)
        os.close(fds.created_w)
        fcntl.fcntl(fds.gate_r, fcntl.F_SETFL, 0)  # opened O_NONBLOCK by the parent
        got = _read_exact(fds.gate_r, 1 + START_LENGTH_BYTES)
        state = b""
        if got[:1] == START and len(got) == 1 + START_LENGTH_BYTES:
            state = _read_exact(fds.gate_r, int.from_bytes(got[1:], "little"))
        os.close(fds.gate_r)
    if got[:1] != START:
        os._exit(EXIT_CODES["internal"])
    return state


def _read_exact(fd: int, n: int) -> bytes:
    out = b""
    while len(out) < n:
        try:
            chunk = os.read(fd, n - len(out))
        except InterruptedError:  # pragma: no cover
            continue
        if not chunk:
            break
        out += chunk
    return out


def _start_hooks(plan: Plan, state: bytes) -> None:
    """startContainer hooks: inside the container, before the program, state on stdin.
    A failing hook stops the container (the spec): the program never runs."""
    for i, (path, args, env, timeout) in enumerate(plan.start_hooks):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(r, 0)
                os.execve(path, list(args) or [path],
                          dict(e.split("=", 1) for e in env if "=" in e))
            finally:
                os._exit(127)
        os.close(r)
        with suppress(OSError):
            os.write(w, state)
        os.close(w)
        status = _wait_hook(pid, timeout)
        if status != 0:
            why = "timed out" if status is None else f"exit status {status}"
            with suppress(OSError):
                os.write(2, f"stockade: hooks.startContainer[{i}] {path}: {why}\n".encode())
            os._exit(EXIT_CODES["internal"])


def _wait_hook(pid: int, timeout: int | None) -> int | None:
    ticks = -1 if timeout is None else timeout * 100
    while True:
        done, status = os.waitpid(pid, 0 if ticks < 0 else os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if ticks == 0:
            with suppress(ProcessLookupError):
                os.kill(pid, L.SIGKILL)
            os.waitpid(pid, 0)
            return None
        ticks -= 1
        select.select([], [], [], 0.01)


def _find(cmd: str, path_var: str, fds: ChildFds) -> str:
    """execvp's search, done before seccomp so a miss is reported (127, like runc)."""
    candidates = [cmd] if "/" in cmd else [os.path.join(d or ".", cmd) for d in path_var.split(":")]
    denied = None
    for cand in candidates:
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(cand, os.X_OK):
            return cand
        denied = cand
    if denied is not None:
        raise StepFailed("exec-permission", f"{cmd}: permission denied ({denied})")
    raise StepFailed("exec", f"{cmd}: command not found")
