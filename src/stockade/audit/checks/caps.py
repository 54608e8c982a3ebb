"""Capability rows: what the effective, bounding and ambient sets allow."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from stockade.audit import caps, probes_lib
from stockade.audit.checks._ns import host_ns
from stockade.audit.model import Severity, Status, Verdict, absent
from stockade.audit.probe import Probe
from stockade.audit.procfs import mask_of
from stockade.audit.registry import Check, Evaluate, Proofs, check
from stockade.audit.view import View

CIS_CAPS = "CIS Docker 5.3"


def _drop(*names: str) -> tuple[tuple[str, object], ...]:
    return (("capabilities.drop", list(names)),)


def _cap_row(view: View, proofs: Proofs, name: str, key: str) -> Verdict:
    if not caps.has(view.cap_eff, name):
        return absent(view.status_line("CapEff"))
    ev = (view.status_line("CapEff"), f"CAP_{name} (bit {caps.CAP[name]}) is effective")
    status = Status.EXPLOITABLE if proofs.ok(key) else Status.PRESENT
    return Verdict(status, ev, proofs.line(key), fix=_drop(name))


def _cap_check(name: str, title: str, severity: Severity, key: str, probe: Callable[[View], Probe],
               *, why: str = "", evaluate: Evaluate | None = None) -> Check:
    """The row of one effective capability (`why` its catalogue text), proved by one probe
    (`key`) that runs only when the capability is effective; `evaluate` instead of the
    plain row for one that reads more than the capability."""
    def plan(view: View) -> Mapping[str, Probe]:
        return {key: probe(view)} if caps.has(view.cap_eff, name) else {}

    def row(view: View, proofs: Proofs) -> Verdict:
        return _cap_row(view, proofs, name, key)

    row.__doc__ = why
    return check(f"CAP-{name}", title, severity, remediation=f"capabilities.drop: [{name}]",
                 references=(CIS_CAPS, "CWE-250"), probes=plan)(evaluate or row)


@check("PRIV-ALLCAPS", "every capability is effective (privileged)", Severity.CRITICAL,
       remediation="capabilities.drop: [ALL] (then add back only what is needed)",
       references=("CIS Docker 5.4", "CWE-250"))
def priv_allcaps(view: View, proofs: Proofs) -> Verdict:
    """Effective = bounding = every capability up to cap_last_cap: a --privileged container."""
    full = mask_of(view.host.cap_last_cap)
    ev = (view.status_line("CapEff"), view.status_line("CapBnd"),
          f"cap_last_cap={view.host.cap_last_cap}: full mask 0x{full:016x}")
    if view.cap_eff & full == full and view.cap_bnd & full == full:
        return Verdict(Status.PRESENT, ev, fix=(("capabilities.drop", ["ALL"]),))
    return absent(*ev)


cap_sys_admin = _cap_check(
    "SYS_ADMIN", "CAP_SYS_ADMIN is effective", Severity.CRITICAL,
    "mount", lambda _view: Probe(probes_lib.mount_tmpfs, isolated=True),
    why="CAP_SYS_ADMIN allows mounts, namespace games and most of the known escapes.\n"
        "Proof: unshare(CLONE_NEWNS) and mount a tmpfs in the private copy.")


def _dac_probe(view: View) -> Probe:
    # a file on a bind mount when there is one (the classic shocker target), else /etc
    target = "/etc/hostname"
    for m in view.mounts:
        if m.mountpoint in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"):
            target = m.mountpoint
            break
    return Probe(lambda: probes_lib.open_by_handle(target))


cap_dac_read_search = _cap_check(
    "DAC_READ_SEARCH", "CAP_DAC_READ_SEARCH with open_by_handle_at (shocker)", Severity.CRITICAL,
    "handle", _dac_probe,
    why="open_by_handle_at with CAP_DAC_READ_SEARCH opens host files by inode handle.")

cap_sys_module = _cap_check(
    "SYS_MODULE", "CAP_SYS_MODULE: kernel modules can be loaded", Severity.CRITICAL,
    "delete_module", lambda _view: Probe(probes_lib.delete_module),
    why="Proof: delete_module on a name that does not exist; ENOENT means it was allowed.")


def _ptrace_probes(view: View) -> Mapping[str, Probe]:
    if not caps.has(view.cap_eff, "SYS_PTRACE") or host_ns(view, "pid")[0] is not True:
        return {}
    return {"exe": Probe(lambda: probes_lib.readlink("/proc/1/exe")),
            "root": Probe(lambda: probes_lib.attempt(lambda: f"mode {os.stat('/proc/1/root').st_mode:o}"))}


@check("CAP-SYS_PTRACE-HOSTPID", "CAP_SYS_PTRACE in the host PID namespace", Severity.CRITICAL,
       remediation="capabilities.drop: [SYS_PTRACE] and namespaces: [pid]",
       references=(CIS_CAPS, "CIS Docker 5.15", "CWE-250"), probes=_ptrace_probes)
def cap_sys_ptrace_hostpid(view: View, proofs: Proofs) -> Verdict:
    """With the host's PID namespace, ptrace reaches host processes (inject into PID 1)."""
    is_host, ns_ev = host_ns(view, "pid")
    if not caps.has(view.cap_eff, "SYS_PTRACE") or not is_host:
        return absent(view.status_line("CapEff"), ns_ev)
    ev = (view.status_line("CapEff"), ns_ev)
    proved = proofs.ok("exe") and proofs.ok("root")
    return Verdict(Status.EXPLOITABLE if proved else Status.PRESENT, ev,
                   "; ".join((proofs.line("exe"), proofs.line("root"))),
                   fix=_drop("SYS_PTRACE") + (("namespaces", ["pid"]),))


cap_sys_rawio = _cap_check(
    "SYS_RAWIO", "CAP_SYS_RAWIO: raw I/O ports and memory", Severity.HIGH,
    "mem", lambda _view: Probe(lambda: probes_lib.open_rdonly("/dev/mem")),
    why="Proof: open /dev/mem read-only, if the node exists in the container.")


def _net_admin_row(view: View, proofs: Proofs) -> Verdict:
    """Medium in its own network namespace, high with the host's (firewall, routes, sniffing).
    Proof: SIOCSIFFLAGS on an interface name that does not exist (ENODEV = allowed)."""
    v = _cap_row(view, proofs, "NET_ADMIN", "ioctl")
    is_host, ns_ev = host_ns(view, "net")
    if v.status.is_open and is_host:
        return Verdict(v.status, (*v.evidence, ns_ev), v.proof, Severity.HIGH, v.fix)
    return v


cap_net_admin = _cap_check(
    "NET_ADMIN", "CAP_NET_ADMIN: network configuration", Severity.MEDIUM, "ioctl",
    lambda _view: Probe(probes_lib.ifflags_nonexistent), evaluate=_net_admin_row)

cap_net_raw = _cap_check(
    "NET_RAW", "CAP_NET_RAW: raw sockets (spoofing, ARP/DNS poisoning)", Severity.MEDIUM,
    "raw", lambda _view: Probe(probes_lib.raw_socket), why="Proof: open and close a raw ICMP socket.")


def _kinfo_probes(view: View) -> Mapping[str, Probe]:
    if not any(caps.has(view.cap_eff, n) for n in ("BPF", "PERFMON", "SYSLOG")):
        return {}
    return {"kallsyms": Probe(probes_lib.kallsyms_first_line),
            "kmsg": Probe(lambda: probes_lib.open_rdonly("/dev/kmsg"))}


@check("CAP-BPF-PERFMON-SYSLOG", "CAP_BPF / CAP_PERFMON / CAP_SYSLOG: kernel introspection",
       Severity.MEDIUM, remediation="capabilities.drop: [BPF, PERFMON, SYSLOG]",
       references=(CIS_CAPS, "CWE-200"), probes=_kinfo_probes)
def cap_bpf_perfmon_syslog(view: View, proofs: Proofs) -> Verdict:
    """Kernel addresses (KASLR bypass), eBPF programs and perf events widen kernel attack surface."""
    held = [n for n in ("BPF", "PERFMON", "SYSLOG") if caps.has(view.cap_eff, n)]
    if not held:
        return absent(view.status_line("CapEff"))
    ev = (view.status_line("CapEff"), "effective: " + ", ".join(f"CAP_{n}" for n in held))
    proved = proofs.ok("kallsyms") or probes_lib.is_exposed(proofs.get("kmsg") or probes_lib.Outcome(False))
    return Verdict(Status.EXPLOITABLE if proved else Status.PRESENT, ev,
                   "; ".join((proofs.line("kallsyms"), proofs.line("kmsg"))), fix=_drop(*held))


@check("CAP-NONDEFAULT", "capabilities beyond Docker's default set", Severity.MEDIUM,
       remediation="capabilities.drop: [ALL] with capabilities.add listing only what is needed",
       references=(CIS_CAPS, "CWE-250"))
def cap_nondefault(view: View, proofs: Proofs) -> Verdict:
    """Effective capabilities outside 0xa80425fb (Docker's defaults)."""
    extra = view.cap_eff & ~caps.DOCKER_DEFAULT
    ev = view.status_line("CapEff")
    if not extra:
        return absent(ev)
    names = caps.names(extra)
    return Verdict(Status.PRESENT, (ev, "beyond the default: " + ", ".join(f"CAP_{n}" for n in names)),
                   fix=_drop(*names))


def _latent_probes(view: View) -> Mapping[str, Probe]:
    if view.no_new_privs or view.inside_uid == 0:
        return {}
    return {"setuid": Probe(_find_setuid)}


def _find_setuid() -> probes_lib.Outcome:
    found = probes_lib.scan_dirs(
        ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin"),
        lambda _d, e, st: bool(st.st_mode & 0o4000 and st.st_uid == 0 and e.is_file(follow_symlinks=False)))
    if not found:
        return probes_lib.Outcome(False, None, "no setuid-root files")
    return probes_lib.Outcome(True, None, ", ".join(sorted(found)[:10]))


@check("PRIV-LATENT", "privileges that can come back (bounding/ambient caps, setuid)",
       Severity.MEDIUM, remediation="capabilities.drop: [ALL]; no_new_privileges: true",
       references=(CIS_CAPS, "CIS Docker 5.25", "CWE-269"), probes=_latent_probes)
def priv_latent(view: View, proofs: Proofs) -> Verdict:
    """Dangerous capabilities kept in the bounding or ambient set though not effective, or a
    non-root process without no_new_privs and with setuid-root files to regain root."""
    dangerous = caps.bits_of(list(caps.DANGEROUS))
    latent = (view.cap_bnd | view.cap("CapAmb")) & dangerous & ~view.cap_eff
    ev = [view.status_line("CapBnd"), view.status_line("CapAmb"), view.status_line("NoNewPrivs")]
    fix: list[tuple[str, object]] = []
    if latent:
        ev.append("latent: " + ", ".join(f"CAP_{n}" for n in caps.names(latent)))
        fix.append(("capabilities.drop", caps.names(latent)))
    if proofs.ok("setuid"):
        ev.append(f"uid {view.inside_uid}, no_new_privs off, setuid-root files: {proofs.outcomes['setuid'].detail}")
        fix.append(("no_new_privileges", True))
    if not fix:
        return absent(*ev)
    return Verdict(Status.PRESENT, tuple(ev), fix=tuple(fix))


CHECKS = (priv_allcaps, cap_sys_admin, cap_dac_read_search, cap_sys_module, cap_sys_ptrace_hostpid,
          cap_sys_rawio, cap_net_admin, cap_net_raw, cap_bpf_perfmon_syslog, cap_nondefault,
          priv_latent)
