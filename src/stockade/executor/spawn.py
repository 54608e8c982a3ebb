"""Start the compiled executor on a run document (docs/EXECUTOR.md, "Run documents").

The one way Python hands a container's set-up to C: the document goes in a memfd, the
fds it names are inherited, and the executor (`stockade-oci --executor FD`) clones the
container's process as *our* child (CLONE_PARENT), writes its pid on the report pipe and
exits. posix_spawn (vfork + exec) starts it: no fork of this interpreter, so a big or
multi-threaded caller costs nothing extra and no lock of another thread is inherited.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

NAME = "stockade-oci"  # the front end's binary: the executor is its `--executor` verb


class ExecutorMissing(Exception):
    """No executor binary next to this interpreter."""


class ExecutorFailed(Exception):
    """The executor exited without cloning; its error line is on the err pipe."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the executor exited with status {status} before the clone")
        self.status = status


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


def start(document: Callable[[int], bytes], inherited: tuple[int, ...]) -> int:
    """Run the executor on document(report_fd) with the fds `inherited` (those the
    document names; the caller keeps and closes its own copies). Returns the container
    process's pid (our child); raises ExecutorFailed when the executor exited without
    one (its error line is then on the document's err pipe)."""
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
    try:
        got = b""
        while chunk := os.read(report_r, 64):
            got += chunk
    finally:
        os.close(report_r)
    _, status = os.waitpid(exe, 0)
    if not got:
        raise ExecutorFailed(os.waitstatus_to_exitcode(status))
    return int(got)
