"""One recording run: the workload under the runner, its syscalls answered by the recorder.

The run uses the base policy for everything (namespaces, mounts, capabilities, network,
Landlock) except seccomp, whose filter is replaced by the recorder's. The payload hands
the listener fd over a socketpair (the executor's `seccomp.listener`, docs/EXECUTOR.md)
and the recorder answers until the last task holding the filter is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from stockade.errors import RunnerError, StockadeError
from stockade.learn.recorder_filter import recorder_program
from stockade.learn.recording import Recording
from stockade.learn.supervisor import Recorder, supervise
from stockade.linux.syscall_table import AUDIT_ARCH, native_arch, syscall_table
from stockade.policy import model as m


@dataclass(frozen=True)
class Outcome:
    recording: Recording
    exit_code: int | None  # None: the payload never ran (command not found, runner step failed)
    signal: int | None
    memory_peak: int | None
    pids_peak: int | None
    failure: str = ""  # the runner's message when the payload never ran


def record(argv: Sequence[str], base: m.Policy, *, rootfs: str | None = None,
           binds: Sequence[str] = (), env: dict[str, str] | None = None, cwd: str = "/",
           skip: Sequence[str] = ()) -> Outcome:
    """Run `argv` once under `base` with the recorder's filter; raises StockadeError when
    the recorder itself failed (then nothing is known)."""
    from stockade.api import plan as make_plan
    from stockade.executor.protocol import LISTENER_SEND_FLAGS
    from stockade.runner._record import replace
    from stockade.runner.launcher import launch

    if os.geteuid() != 0:
        raise StockadeError("stockade learn needs root (it reads the workload's memory "
                            "through /proc/PID/mem to see paths)", exit_code=2)
    native = native_arch()
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # Above the fds a program usually has; the number is part of the filter (see
    # recorder_filter): after execve it is closed, so any later use is the workload's own.
    high = _high_fd(theirs.fileno())
    program = recorder_program(native, high, LISTENER_SEND_FLAGS, skip)
    res_r, res_w = os.pipe()
    names = {nr: name for name, nr in syscall_table().by_arch[native].items()}
    pid = os.fork()
    if pid == 0:  # the recorder
        try:
            os.close(res_r)
            os.close(high)
            theirs.close()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the learner decides when to stop
            supervise(mine, res_w, Recorder(native, names, AUDIT_ARCH[native]))
        finally:
            os._exit(0)
    os.close(res_w)
    failure = ""
    result = None
    try:
        p = make_plan(list(argv), policy=base, rootfs=rootfs, binds=binds, env=env, cwd=cwd,
                      seccomp_bpf=program)
        p = replace(p, seccomp_listener_sock=high)
        try:
            result = launch(p, forward_signals=True)
        except RunnerError as exc:
            if exc.step not in ("exec", "exec-permission"):
                # the sandbox failed, not the workload: nothing to learn from
                raise StockadeError(f"learn: {exc}; nothing written", exit_code=2) from exc
            failure = exc.message
    finally:
        os.close(high)
        mine.close()
        with contextlib.suppress(OSError):  # unblocks a recorder still waiting for a listener
            theirs.send(b"E")
        theirs.close()
        # every task under the filter is gone once the launch returned (the pid
        # namespace's init reaps them all before it exits): stop the recorder
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
        data = _read_all(res_r)
        os.close(res_r)
        os.waitpid(pid, 0)
    if not data:
        raise StockadeError("the recorder died without a recording", exit_code=2)
    rec = Recording.from_json(json.loads(data), native)
    if result is None:
        return Outcome(rec, None, None, None, None, failure)
    return Outcome(rec, result.exit_code, result.signal, result.memory_peak, result.pids_peak)


def _high_fd(fd: int) -> int:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    target = min(soft - 1, 1000) if soft > 64 else fd
    new = os.dup2(fd, target, inheritable=True) if target != fd else os.dup(fd)
    return new


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)
