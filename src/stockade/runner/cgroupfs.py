"""cgroupfs files, shared by the v1 and v2 drivers and by `stockade oci delete`.

A module of its own, outside the cgroups package: `oci delete` needs only this, and
every module it imports lengthens each delete an engine makes."""

from __future__ import annotations

import errno
import os
import time

from stockade.runner._record import frozen

SIGKILL = 9  # not signal's: importing signal pulls in enum


class CgroupError(Exception):
    """A cgroup operation failed; the runner turns it into RunnerError('cgroups')."""


@frozen
class Usage:
    memory_peak: int | None = None  # bytes
    cpu_time_ns: int | None = None
    pids_peak: int | None = None
    oom_kills: int = 0


def write(path: str, value: str) -> None:
    """Write a control file (never creating it: a missing file is an unsupported knob)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_TRUNC)
    except OSError as exc:
        raise CgroupError(f"{path}: {exc.strerror}") from exc
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise CgroupError(f"{path}: kernel refused {value!r}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def read(path: str) -> str | None:
    # os.open/os.read: a text-mode open() costs more than the read (several per run).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)


def read_int(path: str) -> int | None:
    text = read(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def keyed(path: str, key: str) -> int | None:
    text = read(path)
    if text is None:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None


def freezer_file(path: str) -> tuple[str, str, str] | None:
    """(file, frozen value, thawed value) of the cgroup's freezer: v1 freezer.state, v2
    cgroup.freeze; None when this directory has none."""
    for name, on, off in (("freezer.state", "FROZEN", "THAWED"), ("cgroup.freeze", "1", "0")):
        if os.path.exists(os.path.join(path, name)):
            return os.path.join(path, name), on, off
    return None


def is_frozen(path: str) -> bool:
    f = freezer_file(path)
    if f is None:
        return False
    if f[0].endswith("cgroup.freeze"):  # v2: the kernel's answer is in cgroup.events
        return keyed(os.path.join(path, "cgroup.events"), "frozen") == 1
    return (read(f[0]) or "").strip() == "FROZEN"


def set_frozen(paths: list[str], on: bool, timeout: float = 5.0) -> bool:
    """Freeze or thaw every cgroup in `paths` that has a freezer and wait until the kernel
    reports it done; False if none has one. Raises CgroupError on failure or timeout."""
    found = False
    for path in paths:
        f = freezer_file(path)
        if f is None:
            continue
        found = True
        deadline = time.monotonic() + timeout
        while True:
            write(f[0], f[1] if on else f[2])
            if is_frozen(path) == on:
                break
            if time.monotonic() > deadline:
                raise CgroupError(f"{path}: still {'not ' if on else ''}frozen after "
                                  f"{timeout:.0f} s")
            time.sleep(0.001)
    return found


def kill_and_rmdir(path: str, *, kill_file: str | None = None, timeout: float = 2.0) -> None:
    """SIGKILL whatever is left in the cgroup, then rmdir it (EBUSY while tasks exit).
    A frozen cgroup is thawed first: its tasks could not act on the SIGKILL."""
    f = freezer_file(path)
    if f is not None:
        try:  # noqa: SIM105 - no contextlib here
            write(f[0], f[2])
        except CgroupError:
            pass
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove {path}: {exc.strerror}") from exc
        # No contextlib/signal here: `stockade oci delete` imports this module and loads
        # neither otherwise.
        if kill_file is not None and os.path.exists(kill_file):
            try:  # noqa: SIM105 - the SIGKILLs below do it too
                write(kill_file, "1")
            except CgroupError:
                pass
        procs = read(os.path.join(path, "cgroup.procs")) or ""
        for pid in procs.split():
            try:
                os.kill(int(pid), SIGKILL)
            except (ProcessLookupError, ValueError):
                continue
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
