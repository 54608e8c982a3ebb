"""`stockade oci exec`: another process in a created or running container (runc exec).

The process is confined like the container's own: config.json is translated again with
its `process` replaced (by --process FILE, or by the container's process with COMMAND
and the flags laid over it), so it gets the same seccomp filter and the capabilities,
rlimits, no_new_privs, user and LSM label its process section asks for. It joins the
container's cgroups and namespaces (those of the container's first process: user first,
mount last), then takes the very steps the container's own process took after its root
was built (the executor's `exec` mode, docs/EXECUTOR.md: session and pty, rlimits,
capabilities, no_new_privs, Landlock unscoped, fds closed on exec, the cwd resolved
inside the root, the command lookup, seccomp last).

Processes: this runtime starts the executor with a run document naming the cgroup and
namespace fds it opened; the executor makes itself non-dumpable (nothing inside can read
or trace it: CVE-2019-5736), enters them and clones the process with CLONE_PARENT, so
that it is this runtime's child, born in the container's pid namespace. Like a created
container it then reports "set up" and waits at a gate; the runtime releases it once the
pid file is written. Errors before execve come back on a pipe and are reported with the
runner's step names and exit codes.
"""

from __future__ import annotations

import json
import os
import sys

from stockade.errors import StockadeError
from stockade.executor import protocol
from stockade.oci import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from stockade.runner.plan import Plan

# setns order (runc's nsexec): the user namespace first, so that the others can be
# joined with its capabilities; the mount namespace last (it changes the root).
NS_ORDER = ("user", "ipc", "uts", "net", "pid", "cgroup", "mnt")


class ExecError(StockadeError):
    pass


def process_for(cfg: dict[str, Any], *, process_file: str | None, command: list[str],
                env: list[str], cwd: str | None, user: str | None, groups: list[str],
                caps: list[str], no_new_privs: bool, tty: bool,
                apparmor: str | None, label: str | None) -> dict[str, Any]:
    """The exec'd process's section: --process FILE as given, else the container's own
    process with COMMAND and each flag laid over it (runc exec's rules)."""
    if process_file is not None:
        from stockade.oci.config import load_object

        if command:
            raise ExecError("exec: give either --process FILE or a COMMAND, not both")
        return load_object(process_file, "--process", "config.json's `process` section")
    if not command:
        raise ExecError("exec: no command given (exec ID COMMAND [ARG...] or --process FILE)")
    proc = json.loads(json.dumps(cfg.get("process", {})))  # a deep copy
    proc["args"] = list(command)
    proc["terminal"] = tty
    if cwd is not None:
        proc["cwd"] = cwd
    for item in env:
        key = item.partition("=")[0]
        proc["env"] = [e for e in proc.get("env", []) if e.partition("=")[0] != key] + [item]
    if user is not None:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ExecError(f"--user {user!r}: expected UID[:GID] (numbers)")
        proc["user"] = {**proc.get("user", {}), "uid": int(uid), "gid": int(gid or 0)}
    if groups:
        if not all(g.isdigit() for g in groups):
            raise ExecError(f"--additional-gids {groups}: expected numbers")
        proc.setdefault("user", {})["additionalGids"] = [int(g) for g in groups]
    if caps:
        sets = proc.setdefault("capabilities", {})
        for key in ("bounding", "effective", "permitted"):
            sets[key] = list(dict.fromkeys([*sets.get(key, []), *caps]))
    if no_new_privs:
        proc["noNewPrivileges"] = True
    if apparmor is not None:
        proc["apparmorProfile"] = apparmor
    if label is not None:
        proc["selinuxLabel"] = label
    return proc


def exec_in(root: str, cid: str, data: dict[str, Any], proc: dict[str, Any],
            cfg: dict[str, Any], *, detach: bool = False, pid_file: str | None = None,
            console_socket: str | None = None) -> int:
    """Run `proc` in the container (`data`: its state, `cfg`: its config.json); the
    process's exit status (0 once started with detach)."""
    from stockade.linux.host import cap_last_cap
    from stockade.oci.translate import translate

    status = st.status(root, cid, data)
    if status not in ("created", "running"):
        raise st.StateError(f"container {cid} is not running (status: {status}): "
                            "nothing to exec in")
    target = int(data["pid"])
    # The container's hooks ran (or run) for the container, never for an exec.
    c = translate({**cfg, "process": proc, "hooks": {}}, data["bundle"], cid,
                  last_cap=cap_last_cap())
    plan = c.plan
    if plan.tty and detach and not console_socket:
        raise ExecError("exec --tty --detach needs --console-socket (the pty master is "
                        "sent there)")
    namespaces = _namespaces_of(target)
    _check_userns(plan, namespaces)
    return _launch(plan, target, namespaces, [str(d) for d in data.get("cgroup_dirs", [])],
                   detach=detach, pid_file=pid_file, console_socket=console_socket)


def _namespaces_of(pid: int) -> dict[str, str]:
    """The container's namespaces that differ from ours: kind -> /proc path."""
    out = {}
    for kind in NS_ORDER:
        path = f"/proc/{pid}/ns/{kind}"
        try:
            if os.readlink(path) != os.readlink(f"/proc/self/ns/{kind}"):
                out[kind] = path
        except OSError as exc:
            raise ExecError(f"container's namespace {kind}: {exc.strerror}") from exc
    return out


def _check_userns(plan: Plan, namespaces: dict[str, str]) -> None:
    # config.json says whether the container has a user namespace; the kernel says
    # which one. Both must agree, or the maps in the plan would not be the ones used.
    if plan.identity.userns != ("user" in namespaces):
        raise ExecError("the container's user namespace does not match its config.json")


def _launch(plan: Plan, target: int, namespaces: dict[str, str], cgroup_dirs: list[str], *,
            detach: bool, pid_file: str | None, console_socket: str | None) -> int:
    from stockade.executor import plan_json, spawn
    from stockade.linux import syscalls as L
    from stockade.runner import launcher
    from stockade.runner._record import replace

    err_r, err_w = os.pipe()
    gate_r, gate_w = os.pipe()
    created_r, created_w = os.pipe()
    tty_parent = tty_child = -1
    if plan.tty:
        import socket

        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        tty_parent, tty_child = a.detach(), b.detach()
    theirs = [err_w, gate_r, created_w, tty_child]
    ours = [err_r, gate_w, created_r, tty_parent]
    procs: list[int] = []  # opened here, with the runtime's credentials
    ns: list[tuple[str, int]] = []
    step = "cgroups"
    try:
        for d in cgroup_dirs:
            procs.append(os.open(_cgroup_procs(d), os.O_WRONLY | os.O_CLOEXEC))
        step = "namespaces"
        for kind in NS_ORDER:
            if kind in namespaces:
                ns.append((kind, os.open(namespaces[kind], os.O_RDONLY | os.O_CLOEXEC)))
    except OSError as exc:
        for fd in (*theirs, *ours, *procs, *(fd for _, fd in ns)):
            if fd >= 0:
                os.close(fd)
        raise launcher.runner_error(step, f"join {exc.filename}: {exc.strerror}") from exc
    theirs += [*procs, *(fd for _, fd in ns)]
    fds = plan_json.ExecFds(report=-1, err=err_w, sync=-1, status=-1, created=created_w,
                            gate=gate_r, tty_socket=tty_child)
    join = plan_json.Join(cgroup_procs=tuple(procs), namespaces=tuple(ns))

    def document(report: int) -> bytes:
        return plan_json.dumps(plan_json.run_document(
            plan, "exec", replace(fds, report=report), join))

    old_mask = L.sigmask(L.SIG_BLOCK, launcher.FORWARDED)
    pid = -1
    failure: BaseException | None = None
    try:
        pid = spawn.start(document, tuple(theirs))
    except (spawn.ExecutorFailed, spawn.ExecutorMissing, OSError) as exc:
        failure = exc
    finally:
        L.sigmask(L.SIG_SETMASK, old_mask)
        for fd in theirs:
            if fd >= 0:
                os.close(fd)
    master = -1
    try:
        if failure is not None:
            err = launcher._read_all(err_r)
            if err:
                raise launcher._child_error(err) from failure
            raise launcher.runner_error("internal", str(failure)) from failure
        if launcher._read_all(created_r) != protocol.CREATED:
            raise launcher._child_error(launcher._read_all(err_r))
        if tty_parent >= 0:
            master = launcher._recv_master(tty_parent)
            if console_socket:
                launcher._send_fd(console_socket, master)
                os.close(master)
                master = -1
        if pid_file:
            tmp = pid_file + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(str(pid))
            os.replace(tmp, pid_file)
    except BaseException:
        if pid > 0:
            launcher._kill_and_reap(pid)
        for fd in (gate_w, err_r, master, tty_parent):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        os.close(created_r)
    return _release(pid, gate_w, err_r, master, tty_parent, detach)


def _cgroup_procs(directory: str) -> str:
    """The file a process joins a cgroup by: v1 `tasks`, v2 `cgroup.procs` (the executor
    writes itself into it)."""
    name = "tasks" if os.path.exists(os.path.join(directory, "tasks")) else "cgroup.procs"
    return os.path.join(directory, name)


def _release(pid: int, gate_w: int, err_r: int, master: int, tty_parent: int,
             detach: bool) -> int:
    """Open the gate; wait for execve (or its error) and, unless detached, the exit."""
    from stockade.oci.lifecycle import forward_and_wait
    from stockade.runner import launcher

    def open_gate() -> None:
        os.write(gate_w, protocol.START + bytes(protocol.START_LENGTH_BYTES))  # no state: as `start`
        os.close(gate_w)
        err = launcher._read_all(err_r)  # EOF at execve (the pipe is close-on-exec)
        os.close(err_r)
        if tty_parent >= 0:
            os.close(tty_parent)
        if err:
            launcher._kill_and_reap(pid)
            raise launcher._child_error(err)

    if detach:
        open_gate()
        return 0
    return forward_and_wait(pid, master, open_gate)


def main_exec(root: str, cid: str, args: Any) -> int:
    """`stockade oci exec` from parsed arguments."""
    from stockade.oci import config

    st.check_id(cid)
    if args.preserve_fds:
        raise ExecError("--preserve-fds: not supported (every fd above 2 is closed)")
    data = st.read(root, cid)
    cfg = config.load(str(data["bundle"]))
    proc = process_for(cfg, process_file=args.process, command=list(args.exec_argv),
                       env=args.env or [], cwd=args.cwd, user=args.user,
                       groups=args.additional_gids or [], caps=args.cap or [],
                       no_new_privs=args.no_new_privs, tty=args.tty,
                       apparmor=args.apparmor, label=args.process_label)
    code = exec_in(root, cid, data, proc, cfg, detach=args.detach, pid_file=args.pid_file,
                   console_socket=args.console_socket)
    sys.stdout.flush()
    return code
