"""What /proc says of one process, read once for the runner, OCI state and the audit: the
stat fields after the command name, the start time that with the pid names one process
for good (a recycled pid has another), and its first child (a sandbox init's payload)."""

from __future__ import annotations


def stat_fields(pid: int) -> list[bytes] | None:
    """Fields 3.. of /proc/PID/stat (state first), None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    return data[data.rfind(b")") + 2:].split()


def _field(pid: int, index: int) -> int | None:
    fields = stat_fields(pid)
    try:
        return int(fields[index]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def parent_pid(pid: int) -> int | None:
    """Field 4: the parent's pid, None when the pid is gone."""
    return _field(pid, 1)


def start_time(pid: int) -> int | None:
    """Field 22: the start time in clock ticks since boot, None when the pid is gone."""
    return _field(pid, 19)


def first_child(pid: int) -> int | None:
    """The first child of `pid` (for a sandbox's init: the payload), None when it has no
    child or is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            children = fh.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None
