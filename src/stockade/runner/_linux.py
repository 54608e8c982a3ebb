"""The runner's only ctypes layer: raw Linux syscalls Python 3.11 does not wrap.

Every wrapper raises OSError(errno) on failure, so callers never test return codes.
Syscall numbers above 424 are the same on every architecture (the unified table);
the older ones are listed per architecture we support.
"""

from __future__ import annotations

import ctypes
import os
import struct

from stockade._light import suppress
from stockade.runner import linux_consts as _consts

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms on the run path
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
# PyDLL keeps the GIL held across the call: a raw clone() must not release it, or the
# child could inherit a GIL owned by a thread that does not exist there.
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long

_ARCH_NR: dict[str, dict[str, int]] = {
    "x86_64": {
        "clone": 56, "unshare": 272, "setns": 308, "pivot_root": 155, "mount": 165,
        "umount2": 166, "capget": 125, "capset": 126, "prctl": 157, "seccomp": 317,
        "bpf": 321,
    },
    "aarch64": {
        "clone": 220, "unshare": 97, "setns": 268, "pivot_root": 41, "mount": 40,
        "umount2": 39, "capget": 90, "capset": 91, "prctl": 167, "seccomp": 277,
        "bpf": 280,
    },
}
_UNIFIED_NR = {
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "pidfd_open": 434, "clone3": 435, "close_range": 436, "openat2": 437, "mount_setattr": 442,
    "landlock_create_ruleset": 444, "landlock_add_rule": 445, "landlock_restrict_self": 446,
    "lsm_list_modules": 461,
}
MACHINE = os.uname().machine  # not platform.machine(): importing platform costs ~2 ms
if MACHINE not in _ARCH_NR:  # pragma: no cover - fail closed on an unknown arch
    raise ImportError(f"stockade runner: unsupported architecture {MACHINE}")
NR = {**_ARCH_NR[MACHINE], **_UNIFIED_NR}

# clone / unshare flags, mount attributes: defined in linux_consts (no ctypes there: the
# plan is made without this module), the same objects here.
CLONE_NEWCGROUP = _consts.CLONE_NEWCGROUP
CLONE_NEWIPC = _consts.CLONE_NEWIPC
CLONE_NEWNET = _consts.CLONE_NEWNET
CLONE_NEWNS = _consts.CLONE_NEWNS
CLONE_NEWPID = _consts.CLONE_NEWPID
CLONE_NEWUSER = _consts.CLONE_NEWUSER
CLONE_NEWUTS = _consts.CLONE_NEWUTS
MOUNT_ATTR_NODEV = _consts.MOUNT_ATTR_NODEV
MOUNT_ATTR_NOEXEC = _consts.MOUNT_ATTR_NOEXEC
MOUNT_ATTR_NOSUID = _consts.MOUNT_ATTR_NOSUID
MOUNT_ATTR_RDONLY = _consts.MOUNT_ATTR_RDONLY
NS_FLAGS = _consts.NS_FLAGS
# mount(2)
MS_RDONLY = 0x1
MS_REC = _consts.MS_REC
MS_UNBINDABLE = _consts.MS_UNBINDABLE
MS_PRIVATE = _consts.MS_PRIVATE
MS_SLAVE = _consts.MS_SLAVE
MS_SHARED = _consts.MS_SHARED
PROPAGATION = _consts.PROPAGATION
MNT_DETACH = 0x2
# new mount API
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
# prctl
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
# seccomp
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
# close_range
CLOSE_RANGE_CLOEXEC = 1 << 2
# landlock
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2
# LSM ids (include/uapi/linux/lsm.h)
LSM_ID_SELINUX = 101
LSM_ID_APPARMOR = 104
LSM_ID_LANDLOCK = 110
# statfs magics
PROC_SUPER_MAGIC = 0x9FA0
CGROUP2_SUPER_MAGIC = 0x63677270
TMPFS_MAGIC = 0x01021994


# The C signal module. signal.py's wrappers turn every signal number they return into
# an enum member (a Python-level call each: ~60 for a full mask), which in a freshly
# forked child costs time and a page fault per object touched.
_csignal: Any = __import__("_signal")
SIG_BLOCK = 0
SIG_SETMASK = 2
# The signal numbers, as plain ints (the same on every architecture we support).
SIGHUP: int = _csignal.SIGHUP
SIGINT: int = _csignal.SIGINT
SIGQUIT: int = _csignal.SIGQUIT
SIGKILL: int = _csignal.SIGKILL
SIGUSR1: int = _csignal.SIGUSR1
SIGUSR2: int = _csignal.SIGUSR2
SIGTERM: int = _csignal.SIGTERM
SIGCHLD: int = _csignal.SIGCHLD
SIGCONT: int = _csignal.SIGCONT
SIGSTOP: int = _csignal.SIGSTOP
SIGWINCH: int = _csignal.SIGWINCH
NSIG: int = _csignal.NSIG


def set_signal_handler(sig: int, handler: object) -> object:
    """signal.signal without the enum round trip; returns the previous handler."""
    return _csignal.signal(sig, handler)


def sigwaitinfo(signals: Iterable[int]) -> Any:
    """signal.sigwaitinfo: the struct_siginfo of the first of `signals` to arrive."""
    return _csignal.sigwaitinfo(signals)


def sigmask(how: int, signals: Iterable[int]) -> set[int]:
    """pthread_sigmask on plain ints; returns the previous mask as ints."""
    old: set[int] = _csignal.pthread_sigmask(how, signals)
    return old


def default_signal_handlers(signals: Iterable[int]) -> None:
    """Every handler back to SIG_DFL (an ignored signal would stay ignored across execve).
    getsignal reads Python's own table, which holds what the process inherited at start
    and what Python set since (None: set by C code; reset as well)."""
    for sig in signals:
        if _csignal.getsignal(sig) != 0:  # 0 = SIG_DFL
            with suppress(OSError, ValueError):
                _csignal.signal(sig, 0)


def _check(rc: int) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc


def _arg(v: object) -> object:
    if v is None:
        return ctypes.c_void_p(0)
    if isinstance(v, int):
        return ctypes.c_long(v)
    return v


def syscall(name: str, *args: object) -> int:
    return _check(_libc.syscall(ctypes.c_long(NR[name]), *(_arg(a) for a in args)))


def _path(p: str | None) -> bytes | None:
    return None if p is None else os.fsencode(p)


# --- processes and namespaces -------------------------------------------------------


def clone_fork(flags: int) -> int:
    """fork() with namespace flags, like clone(2) without CLONE_VM: returns 0 in the child.

    The GIL stays held (PyDLL), and the caller must be the only thread that touches
    Python in the child until it execs or _exits (the runner's child never returns to
    arbitrary user code).
    """
    sigchld = 17
    rc = _pylibc.syscall(ctypes.c_long(NR["clone"]), ctypes.c_long(flags | sigchld),
                         ctypes.c_void_p(0), ctypes.c_void_p(0), ctypes.c_void_p(0),
                         ctypes.c_void_p(0))
    return _check(rc)


CLONE_INTO_CGROUP = 0x200000000


def clone3_into_cgroup(flags: int, cgroup_fd: int) -> int:
    """clone3(CLONE_INTO_CGROUP): born inside the run's cgroup v2, no migration at all
    (a migration takes the global threadgroup rwsem and its RCU sync, ~10 ms)."""
    sigchld = 17
    # struct clone_args (CLONE_ARGS_SIZE_VER2, 88 bytes): flags, pidfd, child_tid,
    # parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup
    args = struct.pack("11Q", flags | CLONE_INTO_CGROUP, 0, 0, 0, sigchld, 0, 0, 0, 0, 0,
                       cgroup_fd)
    buf = ctypes.create_string_buffer(args, len(args))
    rc = _pylibc.syscall(ctypes.c_long(NR["clone3"]), buf, ctypes.c_long(len(args)))
    return _check(rc)


def unshare(flags: int) -> None:
    syscall("unshare", flags)


def setns(fd: int, nstype: int) -> None:
    syscall("setns", fd, nstype)


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return syscall("prctl", option, a2, a3, a4, a5)


def pdeathsig() -> int:
    """This process's parent-death signal (0: none)."""
    sig = ctypes.c_int(0)
    syscall("prctl", PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0)
    return sig.value


def setfsuid(uid: int) -> None:
    """Set the file-system uid (the call reports no error: the result is checked)."""
    _libc.setfsuid(ctypes.c_uint(uid))
    if _libc.setfsuid(ctypes.c_uint(0xFFFFFFFF)) & 0xFFFFFFFF != uid:  # -1 changes nothing, returns it
        raise OSError(1, f"setfsuid({uid}) refused")


def pidfd_open(pid: int) -> int:
    return syscall("pidfd_open", pid, 0)


def close_range_cloexec(first: int) -> None:
    """Mark every fd >= first close-on-exec (the error pipe must live until execve)."""
    syscall("close_range", first, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)


# --- mounts -------------------------------------------------------------------------


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    syscall("mount", _path(source), _path(target), _path(fstype), flags, _path(data))


def umount2(target: str, flags: int) -> None:
    syscall("umount2", _path(target), flags)


def pivot_root(new_root: str, put_old: str) -> None:
    syscall("pivot_root", _path(new_root), _path(put_old))


def open_tree(dfd: int, path: str, flags: int) -> int:
    return syscall("open_tree", dfd, _path(path), flags)


def move_mount(from_dfd: int, from_path: str, to_dfd: int, to_path: str, flags: int) -> None:
    syscall("move_mount", from_dfd, _path(from_path), to_dfd, _path(to_path), flags)


def mount_setattr(dfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0,
                  propagation: int = 0) -> None:
    """propagation: 0 (unchanged) or one of MS_SHARED, MS_SLAVE, MS_PRIVATE, MS_UNBINDABLE."""
    attr = struct.pack("QQQQ", attr_set, attr_clr, propagation, 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    syscall("mount_setattr", dfd, _path(path), flags, buf, len(attr))


def fsmount_new(fstype: str, options: dict[str, str | None], attrs: int,
                source: str = "") -> int:
    """fsopen + fsconfig + fsmount: a detached, fully configured mount (fd). source:
    what /proc/self/mountinfo shows as its source (mount(2)'s first argument; the OCI
    mount's `source`), the type's name when empty."""
    fs = syscall("fsopen", _path(fstype), FSOPEN_CLOEXEC)
    try:
        syscall("fsconfig", fs, FSCONFIG_SET_STRING, _path("source"), _path(source or fstype), 0)
        for key, value in options.items():
            if value is None:
                syscall("fsconfig", fs, FSCONFIG_SET_FLAG, _path(key), None, 0)
            else:
                syscall("fsconfig", fs, FSCONFIG_SET_STRING, _path(key), _path(value), 0)
        syscall("fsconfig", fs, FSCONFIG_CMD_CREATE, None, None, 0)
        return syscall("fsmount", fs, FSMOUNT_CLOEXEC, attrs)
    finally:
        os.close(fs)


def openat2(dfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = struct.pack("QQQ", flags | os.O_CLOEXEC, mode, resolve)
    buf = ctypes.create_string_buffer(how, len(how))
    return syscall("openat2", dfd, _path(path), buf, len(how))


# --- credentials --------------------------------------------------------------------

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    data = struct.pack(
        "IIIIII",
        effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF,
        effective >> 32, permitted >> 32, inheritable >> 32,
    )
    syscall("capset", ctypes.create_string_buffer(hdr, 8), ctypes.create_string_buffer(data, 24))


def capget() -> tuple[int, int, int]:
    hdr = ctypes.create_string_buffer(struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0), 8)
    data = ctypes.create_string_buffer(24)
    syscall("capget", hdr, data)
    e0, p0, i0, e1, p1, i1 = struct.unpack("IIIIII", data.raw)
    return e0 | e1 << 32, p0 | p1 << 32, i0 | i1 << 32


# --- seccomp, landlock, LSM -----------------------------------------------------------


_syscall_4 = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_long,
                              ctypes.c_void_p, use_errno=True)(("syscall", _libc))


class SeccompProgram:
    """A filter made ready to load with one call (the payload's last step before execve:
    nothing is built there, in a freshly forked child where every new object costs)."""

    def __init__(self, bpf: bytes, flags: int = 0) -> None:
        if not bpf or len(bpf) % 8:
            raise OSError(22, "seccomp program is empty or not a multiple of 8 bytes")
        self._prog = ctypes.create_string_buffer(bpf, len(bpf))
        self._fprog = ctypes.create_string_buffer(
            struct.pack("HxxxxxxQ", len(bpf) // 8, ctypes.addressof(self._prog)), 16)
        self._flags = flags

    def load(self) -> int:
        return _check(_syscall_4(NR["seccomp"], SECCOMP_SET_MODE_FILTER, self._flags,
                                 ctypes.addressof(self._fprog)))


def seccomp_set_filter(bpf: bytes, flags: int = 0) -> int:
    """Load a raw `struct sock_filter[]` program (8 bytes per instruction); returns the
    syscall's result (the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0)."""
    return SeccompProgram(bpf, flags).load()


def landlock_abi() -> int:
    try:
        return syscall("landlock_create_ruleset", None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    except OSError:
        return 0


def landlock_create_ruleset(handled_fs: int, handled_net: int, abi: int, scoped: int = 0) -> int:
    # struct landlock_ruleset_attr grew with the ABI: fs; + net (4); + scoped (6).
    if abi >= 6:
        attr = struct.pack("QQQ", handled_fs, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("QQ", handled_fs, handled_net)
    else:
        attr = struct.pack("Q", handled_fs)
    return syscall("landlock_create_ruleset", ctypes.create_string_buffer(attr, len(attr)),
                   len(attr), 0)


def landlock_add_path_rule(ruleset: int, access: int, parent_fd: int) -> None:
    attr = struct.pack("=Qi", access, parent_fd)  # packed struct, 12 bytes
    syscall("landlock_add_rule", ruleset, LANDLOCK_RULE_PATH_BENEATH,
            ctypes.create_string_buffer(attr, len(attr)), 0)


def landlock_add_port_rule(ruleset: int, access: int, port: int) -> None:
    attr = struct.pack("QQ", access, port)
    syscall("landlock_add_rule", ruleset, LANDLOCK_RULE_NET_PORT,
            ctypes.create_string_buffer(attr, len(attr)), 0)


def landlock_restrict_self(ruleset: int) -> None:
    syscall("landlock_restrict_self", ruleset, 0)


def lsm_active_ids() -> frozenset[int] | None:
    """The active LSMs by id (lsm_list_modules, 6.8+); None when the kernel cannot say."""
    buf = (ctypes.c_uint64 * 32)()
    size = ctypes.c_uint32(ctypes.sizeof(buf))
    try:
        n = syscall("lsm_list_modules", buf, ctypes.byref(size), 0)
    except OSError:
        return None
    return frozenset(int(buf[i]) for i in range(n))


def fstatfs_type(fd: int) -> int:
    buf = ctypes.create_string_buffer(120)
    _check(_libc.fstatfs(fd, buf))
    return int(struct.unpack_from("l", buf.raw, 0)[0])


def statfs_type(path: str) -> int:
    buf = ctypes.create_string_buffer(120)
    _check(_libc.statfs(os.fsencode(path), buf))
    return int(struct.unpack_from("l", buf.raw, 0)[0])
