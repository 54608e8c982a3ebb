"""Start the compiled executor on a run document (docs/EXECUTOR.md, "Run documents").

The one way Python hands a container's set-up to C: the document goes in a memfd, the
fds it names are inherited, and the executor (`stockade-oci --executor FD`) clones the
container's process as *our* child (CLONE_PARENT), writes its pid on the report pipe and
exits. posix_spawn (vfork + exec) starts it: no fork of this interpreter, so a big or
multi-threaded caller costs nothing extra and no lock of another thread is inherited.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import suppress

from stockade.executor.protocol import GIVE_UP, RECORDED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

NAME = "stockade-oci"  # the front end's binary: the executor is its `--executor` verb


class ExecutorMissing(Exception):
    """No executor binary next to this interpreter."""


class ExecutorFailed(Exception):
    """The executor failed; its error line is on the err pipe. pid: the container's
    process when it had been cloned (killed: the caller reaps it)."""

    def __init__(self, status: int, pid: int | None = None) -> None:
        super().__init__(f"the executor exited with status {status}")
        self.status = status
        self.pid = pid


_found: list[str] = []  # the binary, once found (not a behaviour switch: a lookup cache)


def binary() -> str:
    """`stockade-oci` as installed with this package: $STOCKADE_EXECUTOR when set (an
    interpreter other than the one the package was installed with, e.g. the system
    python3 running a checkout), else next to the interpreter (a venv, `pip install
    --prefix`), else in the scripts directory of this installation."""
    if _found:
        return _found[0]
    chosen = os.environ.get("STOCKADE_EXECUTOR")
    candidates = [chosen] if chosen else [os.path.join(os.path.dirname(sys.executable), NAME)]
    if not chosen and not os.access(candidates[0], os.X_OK):
        import sysconfig

        candidates.append(os.path.join(sysconfig.get_path("scripts"), NAME))
    for path in candidates:
        if os.access(path, os.X_OK):
            _found.append(path)
            return path
    raise ExecutorMissing(f"{NAME} (the container executor, built by `pip install` with gcc "
                          f"and libjson-c-dev) is not installed: looked for "
                          f"{' and '.join(candidates)} (set STOCKADE_EXECUTOR to its path)")


def start(document: Callable[[int], bytes], inherited: tuple[int, ...],
          on_report: Callable[[str, Any], None] | None = None, recorded_fd: int = -1) -> int:
    """Run the executor on document(report_fd) with the fds `inherited` (those the
    document names; the caller keeps and closes its own copies). Returns the container
    process's pid (our child); raises ExecutorFailed when the executor exited without
    one (its error line is then on the document's err pipe).

    The executor reports on its pipe, one line each, `KIND<TAB>JSON`: `planned` (the
    cgroup directories it is about to make), `cgroups` ({controller: directory} made),
    `note` (a limit this host cannot apply), `pid`. on_report(kind, value) is called for
    all but the pid. recorded_fd (the sync pipe, when the plan's cgroups are `record`ed):
    after `planned` and `cgroups` the executor waits for RECORDED there; when on_report
    raises (or anything interrupts us), GIVE_UP goes there instead and the executor
    removes what it made."""
    report_r, report_w = os.pipe()
    plan_fd = -1
    try:
        plan_fd = os.memfd_create("stockade-plan", os.MFD_CLOEXEC)
        os.write(plan_fd, document(report_w))
        passed = [fd for fd in (plan_fd, report_w, *inherited) if fd >= 0]
        for fd in passed:
            os.set_inheritable(fd, True)
        try:
            exe = os.posix_spawn(binary(), [NAME, "--executor", str(plan_fd)], os.environ)
        finally:
            for fd in passed:
                os.set_inheritable(fd, False)
    finally:
        os.close(report_w)  # the executor's copy is the last: EOF when it exits
        if plan_fd >= 0:
            os.close(plan_fd)
    pid = None
    try:
        with os.fdopen(report_r, "rb") as lines:
            for line in lines:
                kind, _, text = line.decode().rstrip("\n").partition("\t")
                value = json.loads(text)
                if kind == "pid":
                    pid = int(value)
                    continue
                if on_report is not None:
                    on_report(kind, value)
                if kind in ("planned", "cgroups") and recorded_fd >= 0:
                    os.write(recorded_fd, RECORDED)
    except BaseException:
        if recorded_fd >= 0:
            with suppress(OSError):
                os.write(recorded_fd, GIVE_UP)
        os.waitpid(exe, 0)
        raise
    _, status = os.waitpid(exe, 0)
    if pid is None or status != 0:
        raise ExecutorFailed(os.waitstatus_to_exitcode(status), pid)
    return pid
