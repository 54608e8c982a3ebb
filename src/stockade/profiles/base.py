"""The one small interface every compiler target implements.

A backend is a pure function of (Policy, HostFacts): no reads of the host inside it,
so the same inputs give byte-identical artifacts (golden files depend on this).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostFacts:
    """What a backend may know about the machine it compiles for."""

    arch: str = "x86_64"  # libseccomp arch name of the native arch
    kernel: tuple[int, int] = (6, 1)
    cap_last_cap: int = 40
    landlock_abi: int = 0  # 0: Landlock not available

    @staticmethod
    def detect() -> HostFacts:
        from stockade.policy.vocab.capabilities import read_cap_last_cap
        from stockade.policy.vocab.syscalls import native_arch

        release = platform.release().split("-")[0].split(".")
        try:
            kernel = (int(release[0]), int(release[1]))
        except (IndexError, ValueError):
            kernel = (0, 0)
        return HostFacts(
            arch=native_arch(),
            kernel=kernel,
            cap_last_cap=read_cap_last_cap(),
            landlock_abi=_landlock_abi(),
        )


def _landlock_abi() -> int:
    """Ask the kernel (landlock_create_ruleset with LANDLOCK_CREATE_RULESET_VERSION)."""
    import ctypes

    if platform.machine() not in ("x86_64", "aarch64", "riscv64", "s390x", "ppc64le"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    nr_landlock_create_ruleset = 444  # same number on every arch since 5.13
    rc = libc.syscall(nr_landlock_create_ruleset, None, 0, 1)
    return rc if rc > 0 else 0


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
    names = [art.filename for art in artifacts.files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # one would overwrite the other (and share its tmp file)
        from stockade.errors import StockadeError

        raise StockadeError(f"{artifacts.target}: two output files named {twice[0]}; nothing written")
    os.makedirs(out_dir, exist_ok=True)
    staged: list[tuple[str, str]] = []
    try:
        for art in artifacts.files:
            final = os.path.join(out_dir, art.filename)
            os.makedirs(os.path.dirname(final) or out_dir, exist_ok=True)
            tmp = f"{final}.tmp-{os.getpid()}"
            with open(tmp, "wb") as fh:
                fh.write(art.content())
            staged.append((tmp, final))
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    return [final for _, final in staged]
