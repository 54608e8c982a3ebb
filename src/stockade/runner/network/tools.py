"""ip, nft and tc, run with a script on stdin: one process per tool and step.

posix_spawn and pipes rather than the subprocess module: subprocess pulls in selectors,
threading, signal and locale, which a run loads for nothing else, and a run spawns up
to seven of these. The script goes in through a memfd (any size, no
writer to deadlock against); stderr is read after stdout, which is fine for these tools
(their errors are a few lines).
"""

from __future__ import annotations

import os

from stockade.runner.codes import runner_error

# Python ignores SIGPIPE and SIGXFSZ; a spawned tool gets the defaults back (pasta refuses
# to start with SIGPIPE ignored: "Couldn't install signal handlers").
DEFAULT_SIGNALS = (13, 25)  # SIGPIPE, SIGXFSZ (x86_64 and aarch64)
# searched after $PATH: a caller's PATH without the sbin directories still finds the tools
SYSTEM_PATH = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def run_tool(argv: list[str], script: str = "", *, check: bool = True) -> str:
    """The tool's stdout; with check, a failure is RunnerError('namespaces') naming it."""
    try:
        path, argv = _which(argv[0]), _inner_resolved(argv)
    except LookupError:
        path = None
    if path is None:
        if not check:
            return ""
        raise runner_error("namespaces", f"network: {' '.join(argv)}: a tool is not installed "
                           "(iproute2, nftables and util-linux provide ip, tc, nft and nsenter)")
    stdin = os.memfd_create("stockade-script", os.MFD_CLOEXEC)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        os.write(stdin, script.encode())
        os.lseek(stdin, 0, os.SEEK_SET)
        pid = os.posix_spawn(path, argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2)], setsigdef=DEFAULT_SIGNALS)
    except OSError as exc:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        if not check:
            return ""
        raise runner_error("namespaces", f"network: {argv[0]}: {exc}") from exc
    finally:
        os.close(stdin)
    os.close(out_w)
    os.close(err_w)
    out, err = _read_all(out_r), _read_all(err_r)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if check and code != 0:
        why = (err.decode(errors="replace").strip() or f"exit {code}").splitlines()[0]
        raise runner_error("namespaces", f"network: {' '.join(argv)}: {why}")
    return out.decode(errors="replace")


def _inner_resolved(argv: list[str]) -> list[str]:
    """nsenter looks the command after `--` up in $PATH itself, and an ordinary user's
    PATH has no sbin directory (where Debian puts nft and tc): give it the path found
    here. LookupError when that command is not installed."""
    if argv[0] != "nsenter" or "--" not in argv[:-1]:
        return argv
    at = argv.index("--") + 1
    found = _which(argv[at])
    if found is None:
        raise LookupError(argv[at])
    return [*argv[:at], found, *argv[at + 1:]]


def _which(name: str) -> str | None:
    dirs = [*os.environ.get("PATH", "").split(":"), *SYSTEM_PATH]
    for d in dirs:
        candidate = os.path.join(d, name)
        if d and os.access(candidate, os.X_OK):
            return candidate
    return None


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
