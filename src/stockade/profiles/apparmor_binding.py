"""libapparmor through cffi (ABI mode: no headers needed) for the runner.

Honesty rule: every call says whether AppArmor is really active. Where it is not (or
libapparmor is missing), `status()` reports why, and `change_onexec` raises
AppArmorUnavailable instead of pretending; callers decide (fail closed when the policy
says `lsm.required`).
"""

from __future__ import annotations

import ctypes.util
import functools
import os
from dataclasses import dataclass
from typing import Any

from stockade.errors import StockadeError

_CDEF = """
int aa_is_enabled(void);
int aa_change_onexec(const char *profile);
int aa_getcon(char **label, char **mode);
void free(void *ptr);
"""


class AppArmorUnavailable(StockadeError):
    """AppArmor cannot be used here; the message says why (exit 1: environment, not input)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


@dataclass(frozen=True)
class AppArmorStatus:
    enabled: bool
    reason: str  # why not, or "enabled"


@dataclass(frozen=True)
class Label:
    label: str  # e.g. "unconfined" or "web-api"
    mode: str | None  # "enforce", "complain", or None for unconfined


class _Lib:
    """libapparmor and libc, loaded lazily on first use, once per process."""

    def __init__(self) -> None:
        import cffi

        self.ffi = cffi.FFI()
        self.ffi.cdef(_CDEF)
        path = ctypes.util.find_library("apparmor") or "libapparmor.so.1"
        try:
            self.lib: Any = self.ffi.dlopen(path)
        except OSError as exc:
            raise AppArmorUnavailable(f"libapparmor cannot be loaded ({path}): {exc}") from exc
        self.libc: Any = self.ffi.dlopen(None)


@functools.cache
def _lib() -> _Lib:
    return _Lib()


def status() -> AppArmorStatus:
    """aa_is_enabled(): 1 = enabled; otherwise errno says why (ENOSYS: not in kernel,
    ECANCELED: built in but disabled at boot, ENOENT: securityfs not mounted,
    EPERM/EACCES: no permission to ask, EBUSY: namespace without apparmor)."""
    try:
        lib = _lib()
    except AppArmorUnavailable as exc:
        return AppArmorStatus(False, exc.message)
    rc = lib.lib.aa_is_enabled()
    if rc == 1:
        return AppArmorStatus(True, "enabled")
    err = lib.ffi.errno
    reasons = {
        38: "AppArmor is not active in this kernel (not built in, or not in the boot lsm= list)",
        125: "AppArmor is built into the kernel but not active (not in lsm=, or disabled at boot)",
        2: "AppArmor's securityfs interface is not mounted",
        1: "no permission to query AppArmor",
        13: "no permission to query AppArmor",
        16: "AppArmor is not available in this namespace",
    }
    return AppArmorStatus(False, reasons.get(err, f"AppArmor is not enabled ({os.strerror(err)})"))


def is_enabled() -> bool:
    return status().enabled


def current_label() -> Label:
    """aa_getcon(): the calling task's confinement. Raises AppArmorUnavailable when the
    LSM is not active (the kernel would otherwise answer for a different LSM)."""
    st = status()
    if not st.enabled:
        raise AppArmorUnavailable(f"cannot read the AppArmor label: {st.reason}")
    lib = _lib()
    label = lib.ffi.new("char **")
    mode = lib.ffi.new("char **")
    if lib.lib.aa_getcon(label, mode) < 0:
        raise AppArmorUnavailable(f"aa_getcon failed: {os.strerror(lib.ffi.errno)}")
    try:
        text = lib.ffi.string(label[0]).decode()
        mode_text = lib.ffi.string(mode[0]).decode() if mode[0] != lib.ffi.NULL else None
    finally:
        # aa_getcon allocates one buffer; mode points into it (aa_getcon(2)).
        lib.libc.free(label[0])
    return Label(text, mode_text)


def change_onexec(profile: str) -> None:
    """aa_change_onexec(): the next execve runs under `profile`. Never a silent no-op."""
    st = status()
    if not st.enabled:
        raise AppArmorUnavailable(f"cannot switch to AppArmor profile '{profile}': {st.reason}")
    lib = _lib()
    if lib.lib.aa_change_onexec(profile.encode()) < 0:
        err = lib.ffi.errno
        raise AppArmorUnavailable(
            f"aa_change_onexec('{profile}') failed: {os.strerror(err)} (is the profile loaded?)"
        )
