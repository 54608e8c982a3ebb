"""systemd: a service drop-in (systemd.exec(5) / systemd.resource-control(5))."""

from __future__ import annotations

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import ActionKind, Policy
from stockade.policy.paths import subtree_prefix, validate_filesystem
from stockade.profiles import capabilities as caps
from stockade.profiles import network_targets as net
from stockade.profiles.base import Artifact, Artifacts, Enforcement

_AF = {"unix": "AF_UNIX", "inet": "AF_INET", "inet6": "AF_INET6", "netlink": "AF_NETLINK",
       "packet": "AF_PACKET", "alg": "AF_ALG", "vsock": "AF_VSOCK", "can": "AF_CAN",
       "bluetooth": "AF_BLUETOOTH", "key": "AF_KEY", "x25": "AF_X25", "tipc": "AF_TIPC"}
# libseccomp arch names → systemd's (systemd-analyze arch lists them)
_ARCH = {"x86_64": "x86-64", "x86": "x86", "x32": "x32", "aarch64": "arm64", "arm": "arm",
         "riscv64": "riscv64", "s390x": "s390x", "s390": "s390", "ppc64le": "ppc64-le",
         "ppc64": "ppc64", "ppc": "ppc", "mips64": "mips64", "mips64n32": "mips64-n32",
         "mipsel64": "mips64-le", "mipsel64n32": "mips64-le-n32", "mips": "mips", "mipsel": "mips-le",
         "loongarch64": "loongarch64", "parisc": "parisc", "parisc64": "parisc64"}
_RLIMITS = {"nofile": "LimitNOFILE", "core": "LimitCORE", "nproc": "LimitNPROC",
            "memlock": "LimitMEMLOCK", "stack": "LimitSTACK", "as": "LimitAS", "cpu": "LimitCPU",
            "fsize": "LimitFSIZE", "data": "LimitDATA", "rss": "LimitRSS", "locks": "LimitLOCKS",
            "sigpending": "LimitSIGPENDING", "msgqueue": "LimitMSGQUEUE", "nice": "LimitNICE",
            "rtprio": "LimitRTPRIO", "rttime": "LimitRTTIME"}


def syscall_filter(policy: Policy, host: HostFacts) -> tuple[list[tuple[str, str]], list[str]]:
    """SystemCallFilter= and friends; argument conditions cannot be said to systemd."""
    sc = policy.syscalls
    warnings: list[str] = []
    lines: list[tuple[str, str]] = []
    kept = frozenset(policy.capabilities.kept)
    # `when`/`unless` (arch, kept caps, kernel) are decided here, at compile time; a rule
    # that applies on no arch of the policy is not a rule for this unit at all.
    live = [r for r in sc.rules if any(r.applies(a, kept, host.kernel) for a in sc.arches)]
    arg_rules = [r for r in live if r.args]
    for names in dict.fromkeys(",".join(r.syscalls) for r in arg_rules):
        warnings.append(f"systemd: syscalls.rules for {names} has argument "
                        "conditions SystemCallFilter= cannot express; not enforced by systemd")
    plain_allow = {n for r in live if not r.args and r.action.is_allow for n in r.syscalls}
    plain_deny = {n for r in live if not r.args and not r.action.is_allow for n in r.syscalls}
    if sc.default.is_allow:
        denied = (set(sc.deny) | plain_deny) - plain_allow
        if denied:
            lines.append(("SystemCallFilter", "~" + " ".join(sorted(denied))))
        errno = sc.deny_action
    else:
        # Arg-conditioned rules that allow a call must keep it in the allow list (broader
        # than the policy; said in warnings); conditioned denies leave it allowed too.
        allowed = (set(sc.allow) - set(sc.deny) - plain_deny) | plain_allow
        allowed |= {n for r in arg_rules if r.action.is_allow for n in r.syscalls}
        # An empty allow list would read as "SystemCallFilter=" = reset = no filter at
        # all; spell "nothing allowed" as denying every call systemd knows.
        lines.append(("SystemCallFilter", " ".join(sorted(allowed)) or "~@known"))
        errno = sc.default
    # Names that exist on none of the policy's arches mean nothing to systemd (which
    # would log and ignore them); the filter lists only the ones that exist.
    from stockade.linux.syscall_table import syscall_table

    table = syscall_table()
    arches = [a for a in sc.arches if a in table.by_arch] or [host.arch]
    known = {n for a in arches for n in table.by_arch.get(a, {})}
    lines = [(k, _keep_known(v, known)) if k == "SystemCallFilter" else (k, v) for k, v in lines]
    if errno.kind is ActionKind.ERRNO:
        from stockade.policy.vocab.errnos import errno_name

        lines.append(("SystemCallErrorNumber", errno_name(errno.errno)))
    elif errno.kind not in (ActionKind.KILL_PROCESS, ActionKind.KILL_THREAD):
        warnings.append(f"systemd: action {errno} has no SystemCallFilter= equivalent; "
                        "systemd kills the process instead")
    if tuple(sc.arches) == (host.arch,):
        lines.append(("SystemCallArchitectures", "native"))
    else:
        for a in sc.arches:
            if a not in _ARCH:
                warnings.append(f"systemd: arch {a} has no SystemCallArchitectures= name; left out")
        lines.append(("SystemCallArchitectures", " ".join(_ARCH[a] for a in sc.arches if a in _ARCH)))
    return lines, warnings


def _keep_known(value: str, known: set[str]) -> str:
    neg = value.startswith("~")
    names = [n for n in value.removeprefix("~").split() if n in known or n.startswith("@")]
    return ("~" if neg else "") + " ".join(names)


def _paths(entries: object, key: str, warnings: list[str], prefix: str = "") -> list[str]:
    out = []
    for e in entries:  # type: ignore[attr-defined]
        p = subtree_prefix(e.path)
        if p is None:
            warnings.append(f"systemd: {key}[{e.path}] is a glob systemd paths cannot express; skipped")
            continue
        out.append(prefix + p)
    return list(dict.fromkeys(out))


def directives(policy: Policy, host: HostFacts) -> tuple[list[tuple[str, str]], list[str]]:
    warnings: list[str] = []
    fs = policy.filesystem
    d: list[tuple[str, str]] = []
    sc_lines, sc_warn = syscall_filter(policy, host)
    d += sc_lines
    warnings += sc_warn
    d += caps.systemd_lines(policy, host)
    d.append(("NoNewPrivileges", "yes" if policy.no_new_privileges else "no"))
    ro_dirs = {e.path for e in fs.read_only}
    if fs.root != "writable":
        d.append(("ProtectSystem", "strict"))
    elif {"/usr", "/etc"} <= ro_dirs:
        d.append(("ProtectSystem", "full"))  # /usr, /boot, /efi and /etc read-only
    else:
        d.append(("ProtectSystem", "no"))
    if fs.root == "writable":
        ro = _paths(fs.read_only, "filesystem.read_only", warnings, "-")
        if ro:
            d.append(("ReadOnlyPaths", " ".join(ro)))
    rw = _paths(fs.writable, "filesystem.writable", warnings, "-")
    if rw:
        d.append(("ReadWritePaths", " ".join(rw)))
    tmp = _paths(fs.tmpfs, "filesystem.tmpfs", warnings)
    if tmp:
        d.append(("TemporaryFileSystem", " ".join(tmp)))
    deny = _paths(fs.deny, "filesystem.deny", warnings, "-")
    if deny:
        d.append(("InaccessiblePaths", " ".join(deny)))
    if fs.exec:
        ex = _paths(fs.exec, "filesystem.exec", warnings, "-")
        d.append(("NoExecPaths", "/"))
        d.append(("ExecPaths", " ".join(ex)))
    families = sorted({_AF[s.family] for s in policy.network.allow if s.family in _AF})
    for s in policy.network.allow:
        if s.family not in _AF:
            warnings.append(f"systemd: socket family {s.family} has no AF_ name here; skipped")
    if not families and net.is_private(policy):
        families = ["AF_INET", "AF_UNIX"]  # its egress needs inet; IPv6 never leaves
    d.append(("RestrictAddressFamilies", " ".join(families) if families else "none"))
    if net.is_private(policy):
        d += net.systemd_directives(policy, warnings)  # host network, IP-filtered
    elif policy.network.mode != "host":
        d.append(("PrivateNetwork", "yes"))  # a namespace with only lo (up)
    if "uts" in policy.namespaces:
        d.append(("ProtectHostname", "yes"))
    if "ipc" in policy.namespaces:
        d.append(("PrivateIPC", "yes"))
    if "user" in policy.namespaces and policy.user.map != "host":
        d.append(("PrivateUsers", "yes"))
    if policy.user.uid != 0 or policy.user.gid != 0:
        d.append(("User", str(policy.user.uid)))
        d.append(("Group", str(policy.user.gid)))
    r = policy.resources
    if r.memory is not None:
        d.append(("MemoryMax", str(r.memory)))
    if r.swap is not None:
        d.append(("MemorySwapMax", str(r.swap)))
    if r.pids is not None:
        d.append(("TasksMax", str(r.pids)))
    if r.cpu is not None:
        d.append(("CPUQuota", f"{r.cpu * 100:g}%"))
    if r.cpu_weight is not None:
        d.append(("CPUWeight", str(r.cpu_weight)))
    if r.io_weight is not None:
        d.append(("IOWeight", str(r.io_weight)))
    for name, value in sorted(policy.rlimits.items()):
        key = _RLIMITS.get(name)
        if key is None:
            warnings.append(f"systemd: rlimit {name} has no Limit*= directive; skipped")
        else:
            d.append((key, str(value)))
    return d, warnings


def render(policy: Policy, host: HostFacts) -> tuple[str, list[str]]:
    d, warnings = directives(policy, host)
    lines = [f"# systemd drop-in generated by stockade from policy '{policy.name}'.",
             "# Install: /etc/systemd/system/UNIT.service.d/50-stockade.conf, then daemon-reload.",
             "[Service]"]
    lines += [f"{k}={v}" for k, v in d]
    return "\n".join(lines) + "\n", warnings


def enforcements(policy: Policy, host: HostFacts) -> list[Enforcement]:
    fs = policy.filesystem
    out = [Enforcement("no_new_privileges", "systemd", "NoNewPrivileges="),
           Enforcement(f"filesystem.root[{fs.root}]", "systemd", "ProtectSystem=")]
    for section, how in (("writable", "ReadWritePaths="), ("tmpfs", "TemporaryFileSystem="),
                         ("deny", "InaccessiblePaths="), ("exec", "ExecPaths=")):
        for e in getattr(fs, section):
            if subtree_prefix(e.path) is not None:
                out.append(Enforcement(f"filesystem.{section}[{e.path}]", "systemd", how))
    if fs.root == "writable":
        for e in fs.read_only:
            if subtree_prefix(e.path) is not None:
                out.append(Enforcement(f"filesystem.read_only[{e.path}]", "systemd", "ReadOnlyPaths="))
    for s in policy.network.allow:
        key = s.family + (f":{s.type}" if s.type else "")
        if s.family in _AF:
            how = "RestrictAddressFamilies=" + ("" if s.type is None else " (family only)")
            out.append(Enforcement(f"network.allow[{key}]", "systemd", how))
    kept = ",".join(c.removeprefix("CAP_") for c in caps.ordered(policy.capabilities.kept))
    out.append(Enforcement(f"capabilities.kept[{kept}]", "systemd", "CapabilityBoundingSet="))
    return out + net.enforcements(policy, "systemd")


def compile(policy: Policy, host: HostFacts) -> Artifacts:  # noqa: A001 - the Backend name
    validate_filesystem(policy)  # one glob language for every target (paths.py)
    text, warnings = render(policy, host)
    return Artifacts(
        target="systemd",
        files=(Artifact(f"{policy.name}.service.d/50-stockade.conf", text=text,
                        description="systemd service drop-in"),),
        enforcements=tuple(enforcements(policy, host)),
        warnings=tuple(warnings + caps.critical_warnings(policy)),
        notes=("copy the drop-in to /etc/systemd/system/UNIT.service.d/ and run systemctl daemon-reload",),
    )
