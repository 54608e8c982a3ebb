"""`--policy P`: lay a stockade policy over a bundle; the stricter of the two wins.

Field by field: capability sets are intersected, no_new_privs and a read-only root are
OR-ed, both seccomp filters are loaded (the kernel applies the stricter verdict),
resource limits and rlimits take the lower value, namespaces the policy asks for are
added, the policy's denied and read-only paths are added to the masked and read-only
paths, a non-root policy user replaces a root config user, and the policy's LSM labels
and Landlock rules apply when config.json has none. Nothing is ever loosened.
"""

from __future__ import annotations

import os

from stockade.errors import StockadeError
from stockade.linux import syscalls as L
from stockade.oci import notice
from stockade.oci.translate import Container
from stockade.runner._record import replace
from stockade.runner.plan import (
    RLIM_INFINITY,
    CapsPlan,
    IdentityPlan,
    IdMap,
    Limits,
    MountOp,
    PolicyPart,
    _caps_text,
)


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _rl(v: int) -> int:
    return RLIM_INFINITY if v < 0 else v


def merge(c: Container, pol: PolicyPart) -> tuple[Container, list[str]]:
    plan = c.plan
    cfg = plan.policy
    lines: list[str] = [f"overlay     policy {pol.name} over config.json (stricter wins)"]

    def show(field: str, a: object, b: object, out: object) -> None:
        lines.append(f"merge       {field}: config={a} policy={b} -> {out}")

    cc, pc = cfg.caps, pol.caps
    caps = CapsPlan(cc.bounding & pc.bounding, cc.permitted & pc.permitted,
                    cc.effective & pc.effective, cc.inheritable & pc.inheritable,
                    tuple(a for a in cc.ambient if a in pc.ambient), cc.last_cap)
    for name in ("bounding", "permitted", "effective"):
        show(f"caps.{name}", _caps_text(getattr(cc, name), cc.last_cap).split()[1],
             _caps_text(getattr(pc, name), cc.last_cap).split()[1],
             _caps_text(getattr(caps, name), cc.last_cap).split()[1])
    nnp = cfg.no_new_privs or pol.no_new_privs
    show("noNewPrivileges", cfg.no_new_privs, pol.no_new_privs, nnp)

    new_ns = set(cfg.namespaces)
    joined = {k for k, _ in c.join}
    wanted = set(pol.namespaces) - ({"net"} if pol.network == "host" else set())
    oci_name = {"net": "network"}
    for ns in sorted(wanted - new_ns):
        if oci_name.get(ns, ns) in joined:
            why = " (network.mode private: the engine owns the container's network)" \
                if ns == "net" and pol.network == "private" else ""
            raise StockadeError(f"--policy {pol.name}: asks for a new {ns} namespace, "
                                f"config.json joins one by path{why}")
        new_ns.add(ns)
    if pol.network == "private":
        # The jail (veth, egress rules, publish, rates) is `stockade run`'s; over a bundle
        # the engine owns the network. Never silently: the container gets a namespace of
        # its own with lo only, stricter than the policy asked.
        notice.warn(f"--policy {pol.name}: network.mode private is not applied to an OCI "
                    "bundle (no veth, egress, publish or bandwidth): the container gets "
                    "its own network namespace with lo only")
        show("network.mode", "-", "private", "loopback (the jail is stockade run's)")
    show("namespaces", " ".join(sorted(cfg.namespaces)), " ".join(sorted(wanted)),
         " ".join(sorted(new_ns)))
    flags = 0
    for ns in new_ns:
        if ns != "cgroup":
            flags |= L.NS_FLAGS[ns]

    rl = {n: (s, h) for n, s, h in cfg.rlimits}
    for n, s, h in pol.rlimits:
        if n in rl:
            rl[n] = (min(_rl(rl[n][0]), _rl(s)), min(_rl(rl[n][1]), _rl(h)))
        else:
            rl[n] = (s, h)
    rlimits = tuple((n, s, h) for n, (s, h) in sorted(rl.items()))
    show("rlimits", len(cfg.rlimits), len(pol.rlimits), len(rlimits))

    a, b = cfg.limits, pol.limits
    limits = Limits(memory=_min(a.memory, b.memory), swap=_min(a.swap, b.swap),
                    pids=_min(a.pids, b.pids), cpu_quota_us=_min(a.cpu_quota_us, b.cpu_quota_us),
                    cpu_period_us=a.cpu_period_us if a.cpu_quota_us else b.cpu_period_us,
                    cpu_weight=_min(a.cpu_weight, b.cpu_weight), io_weight=a.io_weight,
                    cpu_shares=a.cpu_shares, devices_allow=a.devices_allow)
    for f in ("memory", "swap", "pids", "cpu_quota_us"):
        show(f"resources.{f}", getattr(a, f), getattr(b, f), getattr(limits, f))

    fs_root = "read-only" if "read-only" in (cfg.fs_root, pol.fs_root) or \
        pol.fs_root != "writable" else "writable"
    show("root.readonly", cfg.fs_root, pol.fs_root, fs_root)
    mounts = list(plan.mounts)
    mounts[0] = replace(mounts[0], readonly=fs_root != "writable")
    have = {(m.kind, m.dst) for m in mounts}
    for p in pol.fs_deny:
        if ("mask", p) not in have and "*" not in p:
            mounts.append(MountOp("mask", p, why="policy filesystem.deny", optional=True))
            show("maskedPaths", "-", p, "added")
    for p in pol.fs_read_only:
        if ("readonly", p) not in have and "*" not in p and fs_root == "writable":
            mounts.append(MountOp("readonly", p, readonly=True, why="policy read_only",
                                  optional=True))

    ident = plan.identity
    if "user" in new_ns and not ident.userns:
        # The policy wants a user namespace the bundle does not have: a range of the id
        # pool of its own (root inside is an unprivileged id outside), as `stockade run`;
        # create pins it to the container (runner.idalloc.pin), delete gives it back.
        if os.geteuid() != 0:
            raise StockadeError(f"--policy {pol.name}: asks for a user namespace; add "
                                "linux.uidMappings/gidMappings to config.json")
        from stockade.runner.idalloc import configured_pool

        pool = configured_pool()
        auto = (IdMap(0, pool.start, pool.range_size),)  # placeholder: the pool's first
        ident = IdentityPlan(ident.uid, ident.gid, True, auto, auto, "allow", "direct",
                             ident.groups, pool=pool)
        show("user namespace", "none", "auto",
             f"0 -> a free range of {pool.range_size} ids from {pool.start}")
    if ident.uid == 0 and pol.user_uid != 0:
        ident = replace(ident, uid=pol.user_uid, gid=pol.user_gid)
    show("user", f"{plan.identity.uid}:{plan.identity.gid}", f"{pol.user_uid}:{pol.user_gid}",
         f"{ident.uid}:{ident.gid}")

    lsm = cfg.lsm
    if not lsm.apparmor_profile and not lsm.selinux_label and (
            pol.lsm.apparmor_profile or pol.lsm.selinux_label):
        lsm = pol.lsm
    show("lsm", cfg.lsm.apparmor_profile or cfg.lsm.selinux_label or "-",
         pol.lsm.apparmor_profile or pol.lsm.selinux_label or "-",
         lsm.apparmor_profile or lsm.selinux_label or "-")
    landlock = pol.landlock if pol.landlock.enabled else cfg.landlock
    seccomp_bpf, extra = cfg.seccomp_bpf, pol.seccomp_bpf
    if not seccomp_bpf:
        seccomp_bpf, extra = pol.seccomp_bpf, b""
    show("seccomp", f"{len(cfg.seccomp_bpf) // 8} insns", f"{len(pol.seccomp_bpf) // 8} insns",
         "both filters loaded" if extra else "policy filter")

    part = replace(cfg, namespaces=tuple(sorted(new_ns)),
                   network="loopback" if "net" in new_ns else "host", caps=caps,
                   no_new_privs=nnp, rlimits=rlimits, limits=limits, fs_root=fs_root,
                   user_uid=ident.uid, user_gid=ident.gid, lsm=lsm, landlock=landlock,
                   seccomp_bpf=seccomp_bpf, seccomp_extra=extra)
    new_plan = replace(plan, policy=part, clone_flags=flags, cgroup_ns="cgroup" in new_ns,
                       identity=ident, mounts=tuple(mounts))
    return replace(c, plan=new_plan), lines


def overlay(c: Container, ref: str) -> tuple[Container, str]:
    from stockade.runner.prepare import load_part

    merged, lines = merge(c, load_part(ref))  # cached like `stockade run --policy`
    return merged, "\n".join(lines)
