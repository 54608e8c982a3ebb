"""The set-id guard: nothing the payload writes through an idmapped mount is privileged
on the host.

An idmapped writable host tree (runner.idmount) stores what the payload's root creates
as the directory's owner on disk: host root for a root-owned directory. A set-uid or
set-gid bit, or a security.capability xattr (its v3 rootid maps to host 0 as well), is
then real on the host: `nosuid` on the sandbox's mount holds inside only, and a host
user, cron job or service that runs the file gets the owner's privilege. The payload is
untrusted (docs/SECURITY.md), so a run with such a tree gets, fail closed:

- a second seccomp filter, layered after the policy's (the kernel runs both and keeps
  the stricter verdict, so it cannot weaken the policy): every syscall that takes a
  file mode (chmod, fchmod, fchmodat, fchmodat2, open, creat, openat, mknod, mknodat,
  mkdir, mkdirat) fails with EPERM when the mode has S_ISUID or S_ISGID; openat2 (its
  mode is behind a pointer the filter cannot read) fails with ENOSYS, which glibc and
  language runtimes take as "use openat"; io_uring_setup (its IORING_OP_OPENAT never
  passes the filter) fails with EPERM, as under Docker's profile;
- CAP_SETFCAP dropped from every capability set: no security.capability xattr; and
  no new user namespace (clone/unshare with CLONE_NEWUSER: EPERM; clone3, whose flags
  are behind a pointer: ENOSYS, glibc falls back to clone), where the payload would hold
  CAP_SETFCAP again over its own files (Docker's profile and the presets refuse both
  already; this holds under any policy).

What needs nothing more (measured on Linux 6.18, tests/integration/runner/
test_idmapped_no_setid.py): a write to, or a chown of, an existing set-id file clears its
bits (the kernel asks for CAP_FSETID in the host's namespace, which the payload never
has), and a write drops a security.capability xattr; mkdir never takes S_ISGID from its
mode (only from a set-gid parent, which makes no file set-gid).

The filter is the same for every such run on a host: compiled once with libseccomp
(pyseccomp) and cached like the policy's (runner.seccomp).
"""

from __future__ import annotations

import errno
import os

from stockade.linux.consts import CLONE_NEWUSER
from stockade.runner._record import replace
from stockade.runner.cache import cache_dir, read_trusted, write_atomic
from stockade.runner.codes import runner_error
from stockade.runner.plan import CapsPlan, Plan
from stockade.runner.seccomp import check_program

S_ISUID = 0o4000
S_ISGID = 0o2000
CAP_SETFCAP = 31
# syscall -> index of its mode argument
MODE_ARGUMENT: dict[str, int] = {
    "chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2,
    "open": 2, "creat": 1, "openat": 3,
    "mknod": 1, "mknodat": 2, "mkdir": 1, "mkdirat": 2,
}
REFUSED: dict[str, int] = {"openat2": errno.ENOSYS, "io_uring_setup": errno.EPERM,
                           "clone3": errno.ENOSYS}
# The ABIs a task on this kernel can make syscalls in, by native arch: each must be
# guarded (a policy may allow the compat ones); any other is killed, as by the policy.
_COMPAT = {"x86_64": ("x86", "x32"), "aarch64": ("arm",)}
_VERSION = "2"  # bump when the rules above change: the cache key
NOTE = ("{what} is idmapped: CAP_SETFCAP dropped so the payload cannot write file "
        "capabilities effective on the host; set-uid/set-gid modes, io_uring_setup and "
        "new user namespaces fail with EPERM (openat2, clone3: ENOSYS)")


def needed(plan: Plan) -> bool:
    """The plan has an idmapped writable host tree (the image's root, "/", writes into
    the store's own upper layer and is not one)."""
    return any(key != "/" for key, _ in plan.premade)


def guarded(plan: Plan) -> tuple[Plan, tuple[str, ...]]:
    """The plan with the guard filter and without CAP_SETFCAP when needed;
    raises RunnerError('seccomp') when the filter cannot be built (never runs unguarded)."""
    if not needed(plan):
        return plan, ()
    part = replace(plan.policy, caps=without_caps(plan.policy.caps, 1 << CAP_SETFCAP))
    what = " and ".join(dict.fromkeys(
        "filesystem.writable" if plan.mounts[tree_index(key)].kind == "writable" else "--bind"
        for key, _ in plan.premade if key != "/"))
    return replace(plan, policy=part, setid_guard=guard_filter()), (NOTE.format(what=what),)


def tree_index(key: str) -> int:
    """plan.mounts' index of a premade tree's key (runner.plan.tree_key)."""
    return int(key.rpartition(" ")[2])


def without_caps(caps: CapsPlan, mask: int) -> CapsPlan:
    keep = ~mask
    return CapsPlan(bounding=caps.bounding & keep, permitted=caps.permitted & keep,
                    effective=caps.effective & keep, inheritable=caps.inheritable & keep,
                    ambient=tuple(c for c in caps.ambient if not mask >> c & 1),
                    last_cap=caps.last_cap)


def guard_filter() -> bytes:
    """The guard's BPF program for this host, from the cache or libseccomp."""
    from stockade import __version__ as version

    machine = os.uname().machine
    directory = cache_dir("seccomp")
    path = os.path.join(directory, f"setid-guard-{version}-{_VERSION}-{machine}.bpf") \
        if directory is not None else None
    if path is not None:
        data = read_trusted(path)
        if data and len(data) % 8 == 0:
            return data
    try:
        bpf = check_program(compile_guard(machine))
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        raise runner_error("seccomp", f"the set-id guard for idmapped writable paths "
                           f"cannot be built: {exc}") from exc
    if path is not None:
        write_atomic(path, bpf)
    return bpf


def compile_guard(machine: str) -> bytes:
    import pyseccomp

    from stockade.linux.syscall_table import ARCH_TOKENS
    from stockade.seccomp.build import export_bpf

    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for arch in _COMPAT.get(machine, ()):
        flt.add_arch(ARCH_TOKENS[arch])
    flt.set_attr(pyseccomp.Attr.ACT_BADARCH, 0x80000000)  # SECCOMP_RET_KILL_PROCESS
    for name, index in MODE_ARGUMENT.items():
        for bit in (S_ISUID, S_ISGID):
            flt.add_rule(pyseccomp.ERRNO(errno.EPERM), name,
                         pyseccomp.Arg(index, pyseccomp.MASKED_EQ, bit, bit))
    for name, err in REFUSED.items():
        flt.add_rule(pyseccomp.ERRNO(err), name)
    flags = 1 if machine.startswith("s390") else 0  # clone's flags: s390 swaps the first two
    for name, index in (("clone", flags), ("unshare", 0)):
        flt.add_rule(pyseccomp.ERRNO(errno.EPERM), name,
                     pyseccomp.Arg(index, pyseccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
    return export_bpf(flt)
