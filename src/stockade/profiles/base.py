"""The one small interface every compiler target implements.

A backend is a pure function of (Policy, linux.hostfacts.HostFacts): no reads of the host inside it,
so the same inputs give byte-identical artifacts (golden files depend on this).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Artifact:
    """One output file. `text` or `data`; `filename` is relative to the output dir."""

    filename: str
    text: str | None = None
    data: bytes | None = None
    description: str = ""

    def content(self) -> bytes:
        if self.data is not None:
            return self.data
        return (self.text or "").encode()


@dataclass(frozen=True)
class Enforcement:
    """Which backend enforces a policy rule, and how (for `explain` and `--strict`)."""

    rule: str  # e.g. "filesystem.deny[/etc/shadow]" or "syscalls.deny[ptrace]"
    backend: str
    how: str


@dataclass(frozen=True)
class Artifacts:
    target: str
    files: tuple[Artifact, ...]
    enforcements: tuple[Enforcement, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())  # e.g. an install hint


# A backend: compile(policy, host) -> Artifacts
Backend = Callable[..., Artifacts]


def write_artifacts(artifacts: Artifacts, out_dir: str) -> list[str]:
    """Write every file atomically: all land or none (tmp files renamed at the end)."""
    return write_all([(artifacts, out_dir)])[0]


def write_all(outputs: Sequence[tuple[Artifacts, str]]) -> list[list[str]]:
    """Write the files of several targets, each into its directory, as one step: all land
    or none. Every file is written to a tmp file and every destination checked before the
    first rename; returns the paths written, per target."""
    for artifacts, _ in outputs:
        names = [art.filename for art in artifacts.files]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # one would overwrite the other (and share its tmp file)
            from stockade.errors import StockadeError

            raise StockadeError(f"{artifacts.target}: two output files named {twice[0]}; nothing written")
    staged: list[tuple[str, str]] = []
    written: list[list[str]] = []
    try:
        for artifacts, out_dir in outputs:
            os.makedirs(out_dir, exist_ok=True)
            written.append([])
            for art in artifacts.files:
                final = os.path.join(out_dir, art.filename)
                os.makedirs(os.path.dirname(final) or out_dir, exist_ok=True)
                if os.path.isdir(final):  # rename(2) would fail there, after others landed
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), final)
                tmp = f"{final}.tmp-{os.getpid()}"
                staged.append((tmp, final))  # first: a write that fails half-way is removed too
                with open(tmp, "wb") as fh:
                    fh.write(art.content())
                written[-1].append(final)
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    return written
