"""The OCI lifecycle: create, start, state, kill, delete, run, list.

create builds the container with the runner (launch_held) and leaves its process
waiting on `exec.fifo`; the creating process then exits and the container is
reparented (to init, or to the engine's subreaper, as with runc). Every failure on the
way removes what was made: the process, the cgroup, the state directory.
"""

from __future__ import annotations

import os
import sys
import time

from stockade.errors import RunnerError, StockadeError
from stockade.executor import protocol
from stockade.oci import state as st

TYPE_CHECKING = False  # not typing's: its import would be on every engine's call
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from stockade.oci.translate import Container

# Not signal's constants: `import signal` pulls in enum on every start/delete.
SIGKILL = 9
SIGTERM = 15
SIGCONT = 18

# CLONE_NEW* of the namespaces that can be joined by path (setns's nstype argument).
_NS_FLAG = {"network": 0x40000000, "ipc": 0x08000000, "uts": 0x04000000,
            "pid": 0x20000000, "cgroup": 0x02000000}


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _join(join: tuple[tuple[str, str], ...]) -> None:
    """setns into namespaces given by path; the clone that follows inherits them (pid:
    the container's process is born in that pid namespace)."""
    from stockade.linux import syscalls as L  # ctypes: only `create` needs it

    for kind, path in join:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise StockadeError(f"linux.namespaces {kind} {path}: {exc.strerror}") from exc
        try:
            L.setns(fd, _NS_FLAG[kind])
        except OSError as exc:
            raise StockadeError(f"linux.namespaces {kind} {path}: setns: {exc.strerror}") from exc
        finally:
            os.close(fd)


def remove_cgroups(dirs: list[str]) -> None:
    from stockade.runner.cgroupfs import CgroupError, kill_and_rmdir

    for d in dirs:
        try:
            kill_and_rmdir(d)
        except CgroupError as exc:
            print(f"stockade: warning: {exc}", file=sys.stderr)


def remove_container_cgroups(data: dict[str, Any]) -> None:
    """The cgroups a state records: those made (`cgroup_dirs`: whatever is left in them
    is killed) and those a create was about to make (`cgroup_pending`, written before its
    first mkdir: only rmdir'ed, never killed; a busy one is someone else's and stays)."""
    made = _cgroup_dirs(data)
    remove_cgroups(made)
    for d in data.get("cgroup_pending") or []:
        if str(d) not in made:
            try:  # noqa: SIM105 - no contextlib on the delete path (its import would be on every engine's delete)
                os.rmdir(str(d))
            except OSError:
                pass


_INTERRUPTED_AFTER_S = 60.0  # a state-less directory younger than this may be a create


def reap_interrupted(root: str) -> None:
    """Remove what creates killed half-way left behind (SIGKILL skips every cleanup):
    a container whose create never finished (its state still says `creating`) and whose
    creator is gone, its process and cgroups included, or a directory with no state at
    all, once it is old enough not to be a create between its mkdir and its first
    write. Never a created container: engines delete those themselves."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        if name.startswith(".") or _finished(root, name):
            continue
        try:
            with st.locked(root, name):
                _reap_one(root, name)
        except (st.StateError, OSError):
            continue


def _finished(root: str, cid: str) -> bool:
    """A create that finished (the state, read without the lock, says so)."""
    try:
        return not st.read(root, cid).get("creating", True)
    except st.StateError:
        return False


def _reap_one(root: str, cid: str) -> None:
    d = st.container_dir(root, cid)
    try:
        data = st.read(root, cid)
    except st.StateError:
        if time.time() - os.stat(d).st_mtime > _INTERRUPTED_AFTER_S:
            st.remove(root, cid)
        return
    if not data.get("creating") or st.status(root, cid, data) != "stopped":
        return  # finished, or still being created
    _kill_recorded(data)
    remove_container_cgroups(data)
    unpin_id_range(data, st.container_dir(root, cid))
    st.remove(root, cid)


def _kill_recorded(data: dict[str, Any]) -> None:
    """SIGKILL the state's pid if it is still that process (its start time matches)."""
    pid = int(data.get("pid") or 0)
    stt = st.proc_starttime(pid) if pid else None
    if stt is not None and stt[0] == data.get("starttime"):
        _signal(pid, SIGKILL)


def create(c: Container, root: str, cid: str, *, pid_file: str | None = None,
           console_socket: str | None = None, for_run: bool = False) -> tuple[int, int]:
    """Create the container; returns (pid, pty master or -1). Raises StockadeError."""
    from stockade.oci import hooks as hooks_mod
    from stockade.runner.launcher import Hold, launch_held
    from stockade.runner.preflight import CHECKS

    if c.plan.tty and not console_socket and not for_run:
        raise StockadeError("process.terminal is true: create needs --console-socket "
                            "(the pty master is sent there)")
    if c.warnings:
        from stockade.oci.notice import warn

        for message in c.warnings:
            warn(message)
    d = st.container_dir(root, cid)
    me = st.proc_starttime(os.getpid())
    data: dict[str, Any] = {
        "id": cid, "pid": 0, "creator": os.getpid(), "creator_starttime": me[0] if me else 0,
        "creating": True, "bundle": c.bundle, "rootfs": c.rootfs,
        "created": _now(), "owner": _owner(), "annotations": dict(c.annotations),
        "cgroup_dirs": [], "cgroup_pending": [], "start_hooks": bool(c.plan.start_hooks),
        "hooks": {k: [hooks_mod.to_json(h) for h in c.hooks_of(k)]
                  for k in ("poststart", "poststop")},
    }
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        reap_interrupted(root)
        os.mkdir(d, 0o700)
    except FileExistsError as exc:
        raise st.StateError(f"container {cid} already exists") from exc
    except OSError as exc:  # a read-only or full state root: nothing was made
        raise st.StateError(f"--root {root}: cannot create the container's state "
                            f"directory: {exc.strerror}") from exc
    # Held open: every state write goes through it, so none lands in (or re-makes) a
    # directory of this id once delete --force has removed ours.
    try:
        dir_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError as exc:  # delete --force removed it (no state yet)
        raise _deleted(cid) from exc
    restore_sigterm = _stop_on_sigterm(cid, dir_fd)

    def save() -> None:
        try:
            st.write(root, cid, data, dir_fd=dir_fd)
        except FileNotFoundError as exc:  # delete --force removed the directory
            raise _deleted(cid) from exc

    pid = -1
    master = -1
    try:
        save()
        if c.plan.identity.pool is not None:
            c = _pin_id_range(c, d, data)
            save()
        for check in CHECKS:
            if check.__name__ != "_seccomp":  # no linux.seccomp: runc loads no filter
                check(c.plan)
        from stockade.oci.translate import check_grantable

        with open("/proc/self/status") as fh:
            check_grantable(c.plan, fh.read())
        fifo = os.path.join(d, st.FIFO)
        os.mkfifo(fifo, 0o600)
        # O_RDWR: the container's process holds a writer too, so its read blocks until
        # `start` writes; O_NONBLOCK so that this open does not wait for a peer.
        gate = os.open(fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        def before_root(child: int) -> None:
            # The spec's moment: namespaces exist, the root is not built yet.
            data["pid"] = child
            stt = st.proc_starttime(child)
            data["starttime"] = stt[0] if stt else 0
            save()
            spec = st.spec_state(root, cid, data, "creating")
            spec["pid"] = child
            for kind in ("prestart", "createRuntime"):
                hooks_mod.run(kind, c.hooks_of(kind), spec)
            hooks_mod.run("createContainer", c.hooks_of("createContainer"), spec,
                          enter=child)

        try:
            _join(c.join)
            def on_cgroup(dirs: tuple[str, ...]) -> None:
                data["cgroup_dirs"] = list(dirs)
                save()

            def on_planned(dirs: tuple[str, ...]) -> None:
                data["cgroup_pending"] = list(dirs)
                save()

            held = launch_held(c.plan, Hold(cid, gate, c.cgroups_path, console_socket or "",
                                            before_root, on_cgroup, on_planned))
        finally:
            os.close(gate)
        pid, master = held.pid, held.master
        data["cgroup_dirs"] = list(held.cgroup_dirs)
        stt = st.proc_starttime(pid)
        data.update(pid=pid, starttime=stt[0] if stt else 0, creating=False)
        del data["creator_starttime"]  # only a create in progress needs it (docs/EXECUTOR.md)
        save()
        if c.oom_score_adj is not None:
            with open(f"/proc/{pid}/oom_score_adj", "w") as fh:
                fh.write(str(c.oom_score_adj))
        if pid_file:
            tmp = pid_file + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(str(pid))
            os.replace(tmp, pid_file)
        for note in held.notes:
            print(f"stockade: note: {note}", file=sys.stderr)
        restore_sigterm()  # created: a SIGTERM is no longer create's to handle
    except BaseException:
        import contextlib  # create's failure path only (not on start/kill/delete)
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the failure path runs to its end
        if pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if master >= 0:
            os.close(master)
        remove_container_cgroups(data)
        unpin_id_range(data, d)
        if _is_dir(d, os.fstat(dir_fd)):  # not one a later create of this id made
            st.remove(root, cid)
        restore_sigterm()
        raise
    finally:
        os.close(dir_fd)
    return pid, master


class CreateInterrupted(st.StateError):
    """The create was ended half-way (by delete --force, or SIGTERM): what it made is gone."""


def _deleted(cid: str) -> CreateInterrupted:
    return CreateInterrupted(f"container {cid} was deleted while being created")


class _StopOnSigterm:
    """create's SIGTERM handler: raises CreateInterrupted (once) wherever create is, so
    that its own failure path removes what it made and it says why in one line. delete
    --force of a create in progress sends it, having dropped st.DELETING first."""

    def __init__(self, cid: str, dir_fd: int) -> None:
        self.cid = cid
        self.dir_fd = dir_fd

    def __call__(self, signum: int, _frame: object) -> None:
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the failure path runs once
        try:
            os.stat(st.DELETING, dir_fd=self.dir_fd)
        except OSError:
            raise CreateInterrupted(f"create of container {self.cid} interrupted by "
                                    "SIGTERM") from None
        raise _deleted(self.cid)


def _stop_on_sigterm(cid: str, dir_fd: int) -> Callable[[], None]:
    """Install the handler; returns what puts the previous one back."""
    import signal

    previous = signal.signal(signal.SIGTERM, _StopOnSigterm(cid, dir_fd))

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    return restore


def _is_dir(path: str, made: os.stat_result) -> bool:
    """path is still the directory made (not gone, not one made since)."""
    try:
        return os.path.samestat(os.stat(path), made)
    except OSError:
        return False


def _pin_id_range(c: Container, d: str, data: dict[str, Any]) -> Container:
    """A free range of the id pool for this container (`--policy` gave the bundle a user
    namespace), pinned to its state directory: no process of ours lives as long as the
    container to hold the range's lock (runner.idalloc). Recorded for delete, which
    gives it back."""
    from stockade.runner import idalloc
    from stockade.runner._record import replace

    pool = c.plan.identity.pool
    assert pool is not None
    lease = idalloc.acquire(pool)
    try:
        idalloc.pin(lease, d)
    finally:
        idalloc.release(lease)
    data["id_range"] = {"lock_dir": pool.lock_dir, "base": lease.base}
    return replace(c, plan=idalloc.placed(c.plan, lease))


def unpin_id_range(data: dict[str, Any], d: str) -> None:
    """Give back the id range create pinned to this container, if any; before its state
    directory goes (while it exists no sandbox holds the range's lock for long)."""
    pinned = data.get("id_range")
    if not pinned:
        return
    from stockade.runner import idalloc

    idalloc.unpin(str(pinned["lock_dir"]), int(pinned["base"]), d)


def _owner() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def start(root: str, cid: str) -> None:
    with st.locked(root, cid):
        data = _start(root, cid)
    poststart = data["hooks"].get("poststart", [])
    if not poststart:
        return
    from stockade.oci import hooks as hooks_mod  # only with hooks: one import less

    spec = st.spec_state(root, cid, data, "running")
    try:
        hooks_mod.run("poststart", tuple(hooks_mod.from_json(h) for h in poststart), spec,
                      keep_going=True)
    except hooks_mod.HookError as exc:  # the spec: log a warning, the container runs on
        print(f"stockade: warning: {exc}", file=sys.stderr)


def _start(root: str, cid: str) -> dict[str, Any]:
    data = st.read(root, cid)
    status = st.status(root, cid, data)
    if status != "created":
        raise st.StateError(f"container {cid} is not created (status: {status})")
    fifo = os.path.join(st.container_dir(root, cid), st.FIFO)
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:  # ENXIO: nobody waits on it any more (the process died)
        raise st.StateError(f"container {cid} is not created ({exc.strerror})") from exc
    spec = b""
    if data.get("start_hooks"):
        import json  # only then: the state for startContainer hooks goes through the gate

        spec = json.dumps(st.spec_state(root, cid, data, "created")).encode()
    try:
        os.write(fd, protocol.START + len(spec).to_bytes(protocol.START_LENGTH_BYTES, "little")
                 + spec)
    finally:
        os.close(fd)
    os.unlink(fifo)  # from here on the status is "running"
    return data


def pause(root: str, cid: str, on: bool = True) -> None:
    """Freeze (runc pause) or thaw (runc resume) every process of the container."""
    from stockade.runner.cgroupfs import CgroupError, set_frozen

    with st.locked(root, cid):
        data = st.read(root, cid)
        status = st.status(root, cid, data)
        want = "running" if on else "paused"
        if status != want:
            raise st.StateError(f"container {cid} is not {want} (status: {status})")
        try:
            found = set_frozen(_cgroup_dirs(data), on)
        except CgroupError as exc:
            raise st.StateError(f"container {cid}: {exc}") from exc
        if not found:
            raise st.StateError(f"container {cid} has no freezer cgroup (not mounted on this "
                                "host when it was created)")


def pids(root: str, cid: str) -> list[int]:
    """The processes of a created or running container: those of its cgroups (every
    process it started, exec'd ones included), as runc ps lists them."""
    data = st.read(root, cid)
    status = st.status(root, cid, data)
    if status not in ("created", "running", "paused"):
        raise st.StateError(f"container {cid} is not running (status: {status})")
    return sorted(set(_cgroup_pids(data)) or {int(data["pid"])})


def _cgroup_dirs(data: dict[str, Any]) -> list[str]:
    return [str(d) for d in data.get("cgroup_dirs") or []]


def _cgroup_pids(data: dict[str, Any]) -> list[int]:
    """Every process in the container's cgroups (the same ones in each v1 hierarchy)."""
    found: list[int] = []
    for d in _cgroup_dirs(data):
        try:
            with open(os.path.join(d, "cgroup.procs")) as fh:
                found += [int(x) for x in fh.read().split()]
        except (OSError, ValueError):
            continue
    return found


def state(root: str, cid: str) -> dict[str, Any]:
    return st.spec_state(root, cid, st.read(root, cid))


def parse_signal(text: str) -> int:
    # The C module's constants: `signal` would build its enums on every kill.
    csignal = __import__("_signal")
    if text.isdigit():
        num = int(text)
        if not 0 < num < csignal.NSIG:
            raise StockadeError(f"signal {text}: out of range")
        return num
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    found = getattr(csignal, name, None)
    if not isinstance(found, int) or name.startswith("SIG_") or not 0 < found < csignal.NSIG:
        raise StockadeError(f"unknown signal {text!r}")
    return found


def kill(root: str, cid: str, sig: int, all_: bool = False) -> None:
    data = st.read(root, cid)
    status = st.status(root, cid, data)
    if status not in ("created", "running", "paused"):
        raise st.StateError(f"container {cid} is not running (status: {status})")
    pids = [int(data["pid"]), *(_cgroup_pids(data) if all_ else [])]
    for pid in dict.fromkeys(pids):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue
    if sig == SIGKILL and status == "paused":  # as runc: a frozen process cannot die
        from stockade.runner.cgroupfs import set_frozen

        set_frozen(_cgroup_dirs(data), False)


def delete(root: str, cid: str, force: bool = False) -> None:
    try:
        with st.locked(root, cid):
            _delete(root, cid, force)
    except st.StateError as exc:
        if force and "does not exist" in exc.message:
            return  # runc: delete --force of a missing container is not an error
        raise


def _delete(root: str, cid: str, force: bool) -> None:
    try:
        data = st.read(root, cid)
    except st.StateError:
        # Its directory exists (locked() opened it) but no state does: a create killed
        # before its first write. Nothing else of it can exist yet (its state is
        # written before any cgroup or process is made).
        if not force:
            raise st.StateError(f"container {cid} has no state (a create that was "
                                "interrupted): delete --force removes it") from None
        st.remove(root, cid)
        return
    status = st.status(root, cid, data)
    if status == "creating" and force:
        _end_create(root, cid, data)
        return
    if status != "stopped":
        if not force:
            raise st.StateError(f"container {cid} is {status}: stop it first or use --force")
        pid = int(data.get("pid") or 0)
        if pid:
            _signal(pid, SIGKILL)
            if status == "paused":  # a frozen process cannot die: thaw it
                from stockade.runner.cgroupfs import set_frozen

                set_frozen(_cgroup_dirs(data), False)
            _wait_gone(pid, data.get("starttime"))
    remove_container_cgroups(data)
    unpin_id_range(data, st.container_dir(root, cid))
    poststop = data.get("hooks", {}).get("poststop", [])
    spec = st.spec_state(root, cid, data, "stopped") if poststop else {}
    st.remove(root, cid)
    if not poststop:
        return
    from stockade.oci import hooks as hooks_mod  # only with hooks: one import less

    try:
        hooks_mod.run("poststop", tuple(hooks_mod.from_json(h) for h in poststop), spec,
                      keep_going=True)
    except hooks_mod.HookError as exc:  # the spec: a warning, delete still succeeds
        print(f"stockade: warning: {exc}", file=sys.stderr)


_CREATOR_GRACE_S = 10.0  # runc's killContainer waits as long for the container's init


def _end_create(root: str, cid: str, data: dict[str, Any]) -> None:
    """delete --force of a create in progress. As runc, the container's process is
    killed and everything removed, and the create fails; here the creator is ended too
    (else it would go on and report a container that no longer exists): SIGTERM makes it
    remove what it made and say, in one line, that the container was deleted while being
    created; SIGKILL if it has not ended in time. Only a creator whose start time matches
    the recorded one is signalled (a reused pid never is). Then whatever is left (the
    creator killed) is removed: no poststop hooks, as for any create that failed."""
    d = st.container_dir(root, cid)
    try:
        ours = os.stat(d)
        with open(os.path.join(d, st.DELETING), "w"):
            pass
    except FileNotFoundError:
        return  # the create failed meanwhile, and removed what it made
    _kill_recorded(data)
    creator = int(data.get("creator") or 0)
    born = data.get("creator_starttime")
    if creator and born is not None and _is_process(creator, born):
        for sig in (SIGTERM, SIGCONT):  # SIGCONT: a stopped creator must run to end
            _signal(creator, sig)
        _wait_gone(creator, born, _CREATOR_GRACE_S)
        if _is_process(creator, born):
            _signal(creator, SIGKILL)
            _wait_gone(creator, born)
    if not _is_dir(d, ours):
        return  # the creator removed it (a directory there now is a later create's)
    try:
        data = st.read(root, cid)  # the creator's last word: cgroups made since, its pid
    except st.StateError:  # killed while removing its files
        st.remove(root, cid)
        return
    _kill_recorded(data)
    if data.get("pid"):
        _wait_gone(int(data["pid"]), data.get("starttime"))
    remove_container_cgroups(data)
    unpin_id_range(data, d)
    st.remove(root, cid)


def _is_process(pid: int, starttime: object) -> bool:
    found = st.proc_starttime(pid)
    return found is not None and found[0] == starttime and found[1] not in ("Z", "X")


def _signal(pid: int, sig: int) -> None:
    try:  # noqa: SIM105 - no contextlib on the delete path (its import would be on every engine's delete)
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, starttime: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # noqa: SIM105 - no contextlib on this path (its import would be on every engine's delete)
            os.waitpid(pid, os.WNOHANG)  # our child when run by `oci run`
        except ChildProcessError:
            pass
        s = st.proc_starttime(pid)
        if s is None or s[0] != starttime or s[1] in ("Z", "X"):
            return
        time.sleep(0.002)


def list_all(root: str) -> list[dict[str, Any]]:
    out = []
    for cid in st.list_ids(root):
        try:
            out.append(state(root, cid))
        except st.StateError:
            continue
    return out


def _start_or_delete(root: str, cid: str) -> None:
    try:
        start(root, cid)
    except BaseException:
        delete(root, cid, force=True)
        raise


def run(c: Container, root: str, cid: str, *, pid_file: str | None = None,
        console_socket: str | None = None, detach: bool = False) -> int:
    """create + start (+ wait and delete unless detached): the payload's status."""
    pid, master = create(c, root, cid, pid_file=pid_file, console_socket=console_socket,
                         for_run=not detach)
    if detach:
        _start_or_delete(root, cid)
        if master >= 0:
            os.close(master)
        return 0
    code = forward_and_wait(pid, master, lambda: _start_or_delete(root, cid))
    delete(root, cid, force=True)
    return code


def forward_and_wait(pid: int, master: int, release: Callable[[], None]) -> int:
    """With the usual signals forwarded to `pid` (SIGINT, SIGTERM, SIGHUP, SIGQUIT,
    SIGUSR1/2), call `release` (it starts the process), proxy its pty if there is one
    (`master`, closed here), wait: its exit status, 128 + the signal that ended it.
    Forwarding comes first: once started, the process may answer with a signal to us."""
    from contextlib import suppress

    from stockade.linux import syscalls as L  # loaded by create already; no signal/enum

    sigs = (L.SIGINT, L.SIGTERM, L.SIGHUP, L.SIGQUIT, L.SIGUSR1, L.SIGUSR2)

    def forward(signum: int, _frame: object) -> None:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)

    old = {s: L.set_signal_handler(s, forward) for s in sigs}
    try:
        release()
        if master >= 0:
            from stockade.runner.launcher import _copy_winsize, _proxy_tty

            _copy_winsize(master)
            _proxy_tty(master)
            os.close(master)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:  # pragma: no cover
                continue
    finally:
        for s, h in old.items():
            L.set_signal_handler(s, h)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


__all__ = ["create", "start", "state", "kill", "delete", "run", "list_all", "parse_signal",
           "pids", "pause", "RunnerError"]
