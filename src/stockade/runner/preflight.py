"""Checks on the frozen plan before anything is created (fail closed, fail early).

A plain list of check functions, like runc's validator: each raises RunnerError naming
the step; none has side effects.
"""

from __future__ import annotations

import os
import stat

from stockade.runner.codes import runner_error
from stockade.runner.plan import Plan

TYPE_CHECKING = False  # not typing's: the run path loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from collections.abc import Callable


def _rootfs(plan: Plan) -> None:
    if plan.host_root:
        return
    try:
        st = os.stat(plan.rootfs)
    except OSError as exc:
        raise runner_error("preflight", f"rootfs {plan.rootfs}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise runner_error("preflight", f"rootfs {plan.rootfs} is not a directory")


def _sources(plan: Plan) -> None:
    for op in plan.mounts[1:]:
        if op.kind in ("bind", "writable") and op.src and not os.path.exists(op.src):
            what = "--bind source" if op.why == "--bind" else f"{op.why} path"
            raise runner_error("preflight", f"{what} {op.src} does not exist")


def _idmap(plan: Plan) -> None:
    ident = plan.identity
    if not ident.userns or os.geteuid() != 0:
        return
    # A pooled range (`map: auto`, an OCI --policy user namespace) is checked against
    # the host's accounts when it is picked (runner.idalloc.acquire).
    for m in ident.uid_map + ident.gid_map:
        if m.count <= 0 or m.outside < 0 or m.inside < 0 or m.outside + m.count > 2**32 - 1:
            raise runner_error("idmap", f"bad id map {m.inside} {m.outside} {m.count}")
    if not any(m.inside <= ident.uid < m.inside + m.count for m in ident.uid_map):
        raise runner_error("idmap", f"user.uid {ident.uid} is not mapped")
    if not any(m.inside <= ident.gid < m.inside + m.count for m in ident.gid_map):
        raise runner_error("idmap", f"user.gid {ident.gid} is not mapped")


def _cgroups(plan: Plan) -> None:
    # Probed for real at create time; unprivileged v1 has no delegation at all.
    # (a preset's limits only: best-effort, the launcher goes on without them)
    if (os.geteuid() != 0 and plan.policy.limits.any and not plan.policy.limits_best_effort
            and not os.path.exists("/sys/fs/cgroup/cgroup.controllers")):
            raise runner_error("cgroups", "the policy sets resources, but an unprivileged "
                               "user cannot create cgroups on this host (cgroup v1, no "
                               "delegation); use a policy without resources or run as root")


def _seccomp(plan: Plan) -> None:
    bpf = plan.policy.seccomp_bpf
    if not bpf or len(bpf) % 8:
        raise runner_error("seccomp", "no valid seccomp program in the plan")


CHECKS: tuple[Callable[[Plan], None], ...] = (_rootfs, _sources, _idmap, _cgroups, _seccomp)


def check(plan: Plan) -> None:
    for fn in CHECKS:
        fn(plan)
