"""Launch helpers: lean processes that start sandboxes for a big or multi-threaded caller.

Starting a sandbox forks the calling process: the kernel copies its page tables, and
every page either side writes afterwards is copied again: the bigger the caller, the
slower each start (bench/api_size_bench.py). A multi-threaded caller must not fork at all
(another thread may hold a lock the child needs). Such a caller hands the frozen plan to
a helper instead: a fresh `python -I -S` that imports only the runner, started on first
use (one interpreter start, paid once), one per concurrent run, reused, dying with its
caller (and its sandbox with it). The plan travels as marshal data (records -> plain
tuples), with the caller's stdin/stdout/stderr as SCM_RIGHTS fds, so the payload's stdio
is the caller's, as with the in-process path; the RunResult or the RunnerError comes back.

Not for runs that need the caller's own fds or signals (`stockade learn`'s listener
socket, the CLI's signal forwarding): those stay in-process (launcher.route).
"""

from __future__ import annotations

import _thread
import marshal
import os
import sys
from contextlib import suppress

from stockade.errors import RunnerError
from stockade.runner import launcher
from stockade.runner import plan as plan_mod
from stockade.runner._record import from_plain, to_plain
from stockade.runner.codes import runner_error
from stockade.runner.network.spec import NetPolicy

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

# Every record a Plan is made of (the RunResult comes back as launcher.encode_outcome's).
RECORDS: dict[str, type] = {c.__name__: c for c in (
    plan_mod.Plan, plan_mod.PolicyPart, plan_mod.Limits, plan_mod.CapsPlan,
    plan_mod.LandlockPlan, plan_mod.LsmPlan, plan_mod.IdMap, plan_mod.IdPool, plan_mod.IdentityPlan,
    plan_mod.MountOp, NetPolicy)}
_MAX_MESSAGE = 1 << 22  # a plan is a few KiB (its seccomp program ~3.4 KiB)


# --- the helper process --------------------------------------------------------------


def main(sock_fd: int, parent: int) -> None:
    """The helper: serve launch requests on sock_fd until the caller goes away."""
    import socket

    from stockade.linux import syscalls as L

    L.prctl(L.PR_SET_PDEATHSIG, L.SIGKILL)
    if os.getppid() != parent:  # the caller died before the line above
        os._exit(0)
    os.set_inheritable(sock_fd, False)  # inherited only to get here
    sock = socket.socket(fileno=sock_fd)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 3)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)  # the caller closed its end
        reply = launcher.encode_outcome(_serve_one, msg, fds)
        for target in (0, 1, 2):  # hold none of the caller's stdio between runs
            os.dup2(null, target)
        try:
            sock.send(reply)
        except OSError:
            os._exit(0)


def _serve_one(msg: bytes, fds: list[int]) -> launcher.RunResult:
    if len(fds) != 3:
        raise runner_error("internal", "the launch helper got no stdio")
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    plan = from_plain(marshal.loads(msg), RECORDS)
    if not isinstance(plan, plan_mod.Plan):
        raise runner_error("internal", "the launch helper got no plan")
    return launcher.launch_here(plan)


# --- the caller's side ---------------------------------------------------------------


class _Helper:
    def __init__(self) -> None:
        import socket

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs.set_inheritable(True)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (f"import sys; sys.path.insert(0, {root!r}); "
                f"from stockade.runner.helper import main; main({theirs.fileno()}, "
                f"{os.getpid()})")
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self.pid = os.posix_spawn(
                sys.executable, [sys.executable, "-I", "-S", "-c", code], dict(os.environ),
                file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                              (os.POSIX_SPAWN_DUP2, null, 2)])
        finally:
            os.close(null)
            theirs.close()
        self.sock: socket.socket = mine

    def launch(self, plan: plan_mod.Plan) -> launcher.RunResult:
        import socket

        request: Any = to_plain(plan, RECORDS)  # plain data
        msg = marshal.dumps(request)
        stdio = _stdio()
        try:
            socket.send_fds(self.sock, [msg], stdio)
        except (BrokenPipeError, ConnectionResetError, ConnectionRefusedError) as exc:
            raise _NotDelivered from exc
        finally:
            for fd in stdio:
                os.close(fd)
        try:
            reply = self.sock.recv(_MAX_MESSAGE)
        except ConnectionResetError as exc:
            # AF_UNIX: the helper died with our request unread in its queue, so the run
            # never started. (EOF instead means it may have: never resend then.)
            raise _NotDelivered from exc
        if not reply:
            self.close()
            raise runner_error("internal", "the launch helper died during the run")
        return launcher.decode_outcome(reply)

    def alive(self) -> bool:
        try:
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return False

    def close(self, kill: bool = False) -> None:
        """Closing its socket ends an idle helper; kill: one that may be mid-run (its
        sandbox dies with it; the stale cgroup is swept by a later run)."""
        self.sock.close()
        if kill:
            with suppress(ProcessLookupError):
                os.kill(self.pid, 9)
        with suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _stdio() -> list[int]:
    """Duplicates of the caller's fds 0-2 for the payload (/dev/null for a closed one)."""
    out = []
    for fd in (0, 1, 2):
        try:
            out.append(os.dup(fd))
        except OSError:
            out.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
    return out


class _Spawner:
    """Starts helpers from one thread of its own that lives as long as the process.

    A helper dies with its caller through PR_SET_PDEATHSIG (its sandbox with it, as in
    the in-process path), and the kernel ties that signal to the *thread* that started
    the process: a helper started from a short-lived worker thread would die with it."""

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()  # one request at a time
        self.asked = _thread.allocate_lock()
        self.asked.acquire()
        self.answered = _thread.allocate_lock()
        self.answered.acquire()
        self.answer: _Helper | BaseException | None = None
        self.stopping = False
        _thread.start_new_thread(self._serve, ())

    def stop(self) -> None:
        """End the thread (helpers it started then die with it: stop them first)."""
        with self.lock:
            self.stopping = True
            self.asked.release()
            self.answered.acquire()

    def _serve(self) -> None:
        while True:
            self.asked.acquire()
            if self.stopping:
                self.answered.release()
                return
            try:
                self.answer = _Helper()
            except BaseException as exc:  # noqa: BLE001 - handed to the asking thread
                self.answer = exc
            self.answered.release()

    def spawn(self) -> _Helper:
        with self.lock:
            self.asked.release()
            self.answered.acquire()
            got, self.answer = self.answer, None
        if isinstance(got, Exception):
            raise Unavailable(f"cannot start a launch helper: {got}") from got
        if isinstance(got, BaseException):
            raise got
        assert got is not None
        return got


class Unavailable(Exception):
    """No helper could be started (no interpreter to run, no processes left...)."""


class _Pool:
    """Idle helpers of this process; a run takes one (or starts one) and gives it back."""

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.idle: list[_Helper] = []
        self.owner = os.getpid()
        self.spawner: _Spawner | None = None

    def take(self) -> _Helper:
        with self.lock:
            if self.owner != os.getpid():  # we are a fork of the process that made them
                self.idle, self.owner, self.spawner = [], os.getpid(), None
            while self.idle:
                h = self.idle.pop()
                if h.alive():
                    return h
                h.close()
            if self.spawner is None:
                self.spawner = _Spawner()
            spawner = self.spawner
        return spawner.spawn()

    def give_back(self, h: _Helper) -> None:
        with self.lock:
            if self.owner == os.getpid():
                self.idle.append(h)


    def shutdown(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
            spawner, self.spawner = self.spawner, None
        for h in idle:
            h.close()
        if spawner is not None and self.owner == os.getpid():
            spawner.stop()  # this process is single-threaded again (if it was before)


_POOL = _Pool()


def shutdown() -> None:
    """End this process's helpers and the thread that starts them (they also end with the
    process). Call it when no run is in progress: a helper busy with a run would die
    with that thread, and its sandbox with it (fail closed, as for a killed caller)."""
    _POOL.shutdown()


class _NotDelivered(Exception):
    """The helper was gone before it read the request: nothing ran, a retry is safe."""


def launch(plan: plan_mod.Plan) -> launcher.RunResult:
    """Run the plan in a helper; like launcher.launch (RunResult, or RunnerError)."""
    for attempt in (1, 2):
        h = _POOL.take()
        try:
            return _launch_on(h, plan)
        except _NotDelivered:
            h.close()
            if attempt == 2:
                raise runner_error("internal", "launch helpers die before reading a "
                                   "request") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _launch_on(h: _Helper, plan: plan_mod.Plan) -> launcher.RunResult:
    try:
        result = h.launch(plan)
    except _NotDelivered:
        raise
    except RunnerError:
        if h.alive():
            _POOL.give_back(h)  # a step failed; the helper serves on
        raise
    except BaseException:
        h.close(kill=True)  # an interrupted exchange leaves the socket unusable
        raise
    _POOL.give_back(h)
    return result
