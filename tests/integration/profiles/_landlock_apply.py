"""Test-only: apply a LandlockRuleset in the calling process with raw syscalls.

The runner has its own implementation (src/stockade/runner); this helper exists so the
profile tests prove, on the real kernel, that the generated ruleset does what it says.
Call it only in a forked child: Landlock restrictions cannot be undone.
"""

from __future__ import annotations

import ctypes
import os

from stockade.profiles.landlock import LandlockRuleset

_NR_CREATE, _NR_ADD_RULE, _NR_RESTRICT = 444, 445, 446  # same on every arch since 5.13
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS = 38


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def apply_ruleset(rs: LandlockRuleset) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def check(rc: int, what: str) -> int:
        if rc < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
        return rc

    attr = _RulesetAttr(rs.handled_access_fs, rs.handled_access_net)
    size = 16 if rs.abi >= 4 else 8  # struct grew at ABI 4; older kernels refuse bigger
    fd = check(libc.syscall(_NR_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), 0), "create_ruleset")
    try:
        for rule in rs.path_rules:
            try:
                pfd = os.open(rule.path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # the runner reports this; a missing path grants nothing
            try:
                pb = _PathBeneath(rule.access, pfd)
                check(libc.syscall(_NR_ADD_RULE, fd, _RULE_PATH_BENEATH, ctypes.byref(pb), 0),
                      f"add_rule {rule.path}")
            finally:
                os.close(pfd)
        for net in rs.net_rules:
            np_ = _NetPort(net.access, net.port)
            check(libc.syscall(_NR_ADD_RULE, fd, _RULE_NET_PORT, ctypes.byref(np_), 0), "add_rule port")
        check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        check(libc.syscall(_NR_RESTRICT, fd, 0), "restrict_self")
    finally:
        os.close(fd)
