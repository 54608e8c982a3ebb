"""libseccomp's syscall resolver: the one source of syscall names and numbers.

Loaded by soname (not ctypes.util.find_library, which runs ldconfig in a subprocess):
the runner resolves its wrappers' numbers through here on every `stockade run`.
"""

from __future__ import annotations

import ctypes

_SONAME = "libseccomp.so.2"
_NR_SCMP_ERROR = -1  # what the resolver returns for a name it does not know

# Syscalls newer than the oldest libseccomp we support (Debian 12: 2.5.4 knows the
# kernel's table up to 6.0). From 424 on every architecture shares one number
# (asm-generic's unified table; mips and alpha add their own offsets, unsupported here).
_NEWER_THAN_LIBSECCOMP = {"lsm_list_modules": 461}


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def _load() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(_SONAME)
    except OSError as exc:
        from stockade.errors import StockadeError

        raise StockadeError(f"{_SONAME} cannot be loaded ({exc}); "
                            "Debian: apt-get install libseccomp2") from None
    lib.seccomp_syscall_resolve_num_arch.argtypes = (ctypes.c_uint32, ctypes.c_int)
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    """The loaded library, once per process."""
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def version() -> str:
    v = lib().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def native_number(name: str) -> int:
    """The native architecture's number for `name`; KeyError when no one knows it."""
    nr = int(lib().seccomp_syscall_resolve_name_arch(0, name.encode()))  # 0: native arch
    if nr == _NR_SCMP_ERROR:
        return _NEWER_THAN_LIBSECCOMP[name]
    return nr


def pseudo_number(name: str) -> int:
    """libseccomp's arch-independent number for a name (negative for pseudo-syscalls)."""
    return int(lib().seccomp_syscall_resolve_name(name.encode()))


def name_of(arch_token: int, nr: int) -> str | None:
    """The name libseccomp gives number `nr` on the arch with SCMP_ARCH token `arch_token`."""
    ptr = lib().seccomp_syscall_resolve_num_arch(arch_token, nr)
    if not ptr:
        return None
    name = ctypes.string_at(ptr).decode()
    _free(ptr)
    return name


_libc_free = ctypes.CDLL(None).free
_libc_free.argtypes = (ctypes.c_void_p,)


def _free(ptr: int) -> None:
    _libc_free(ptr)
