"""`runc ps`'s table: the lines of `ps ARGS` that belong to a container."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from stockade.oci.state import StateError


def ps_table(pids: Iterable[int], ps_args: list[str]) -> list[str]:
    """ps's header and the lines of `ps ARGS` (default -ef) whose PID column is one of
    `pids`; nothing when ps printed nothing."""
    if ps_args[:1] == ["--"]:
        ps_args = ps_args[1:]
    try:
        out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StateError(f"ps: {exc}") from exc
    if not out:
        return []
    header = out[0].split()
    if "PID" not in header:
        raise StateError(f"ps {' '.join(ps_args)}: its output has no PID column")
    col = header.index("PID")
    wanted = {str(p) for p in pids}
    lines = [out[0]]
    for line in out[1:]:
        fields = line.split(None, col + 1)
        if len(fields) > col and fields[col] in wanted:
            lines.append(line)
    return lines
