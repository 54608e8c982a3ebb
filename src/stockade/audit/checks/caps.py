"""Capability rows: what the effective, bounding and ambient sets allow."""

from __future__ import annotations

import os
from collections.abc import Mapping

from stockade.audit import caps, probes_lib
from stockade.audit.checks._ns import host_ns
from stockade.audit.model import Severity, Status, Verdict, absent
from stockade.audit.probe import Probe
from stockade.audit.procfs import mask_of
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View

CIS_CAPS = "CIS Docker 5.3"


def _drop(*names: str) -> tuple[tuple[str, object], ...]:
    return (("capabilities.drop", list(names)),)


def _cap_row(view: View, proofs: Proofs, name: str, key: str, fix: str) -> Verdict:
    if not caps.has(view.cap_eff, name):
        return absent(view.status_line("CapEff"))
    ev = (view.status_line("CapEff"), f"CAP_{name} (bit {caps.CAP[name]}) is effective")
    o = proofs.get(key)
    status = Status.EXPLOITABLE if o is not None and o.ok else Status.PRESENT
    return Verdict(status, ev, proofs.line(key), fix=_drop(fix))


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


def _sys_admin_probes(view: View) -> Mapping[str, Probe]:
    if not caps.has(view.cap_eff, "SYS_ADMIN"):
        return {}
    return {"mount": Probe(probes_lib.mount_tmpfs, isolated=True)}


@check("CAP-SYS_ADMIN", "CAP_SYS_ADMIN is effective", Severity.CRITICAL,
       remediation="capabilities.drop: [SYS_ADMIN]", references=(CIS_CAPS, "CWE-250"),
       probes=_sys_admin_probes)
def cap_sys_admin(view: View, proofs: Proofs) -> Verdict:
    """CAP_SYS_ADMIN allows mounts, namespace games and most of the known escapes.
    Proof: unshare(CLONE_NEWNS) and mount a tmpfs in the private copy."""
    return _cap_row(view, proofs, "SYS_ADMIN", "mount", "SYS_ADMIN")


def _dac_probes(view: View) -> Mapping[str, Probe]:
    if not caps.has(view.cap_eff, "DAC_READ_SEARCH"):
        return {}
    # a file on a bind mount when there is one (the classic shocker target), else /etc
    target = "/etc/hostname"
    for m in view.mounts:
        if m.mountpoint in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"):
            target = m.mountpoint
            break
    return {"handle": Probe(lambda: probes_lib.open_by_handle(target))}


@check("CAP-DAC_READ_SEARCH", "CAP_DAC_READ_SEARCH with open_by_handle_at (shocker)",
       Severity.CRITICAL, remediation="capabilities.drop: [DAC_READ_SEARCH]",
       references=(CIS_CAPS, "CWE-250"), probes=_dac_probes)
def cap_dac_read_search(view: View, proofs: Proofs) -> Verdict:
    """open_by_handle_at with CAP_DAC_READ_SEARCH opens host files by inode handle."""
    return _cap_row(view, proofs, "DAC_READ_SEARCH", "handle", "DAC_READ_SEARCH")


def _module_probes(view: View) -> Mapping[str, Probe]:
    return {"delete_module": Probe(probes_lib.delete_module)} if caps.has(view.cap_eff, "SYS_MODULE") else {}


@check("CAP-SYS_MODULE", "CAP_SYS_MODULE: kernel modules can be loaded", Severity.CRITICAL,
       remediation="capabilities.drop: [SYS_MODULE]", references=(CIS_CAPS, "CWE-250"),
       probes=_module_probes)
def cap_sys_module(view: View, proofs: Proofs) -> Verdict:
    """Proof: delete_module on a name that does not exist; ENOENT means it was allowed."""
    return _cap_row(view, proofs, "SYS_MODULE", "delete_module", "SYS_MODULE")


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


def _rawio_probes(view: View) -> Mapping[str, Probe]:
    return {"mem": Probe(lambda: probes_lib.open_rdonly("/dev/mem"))} if caps.has(view.cap_eff, "SYS_RAWIO") else {}


@check("CAP-SYS_RAWIO", "CAP_SYS_RAWIO: raw I/O ports and memory", Severity.HIGH,
       remediation="capabilities.drop: [SYS_RAWIO]", references=(CIS_CAPS, "CWE-250"),
       probes=_rawio_probes)
def cap_sys_rawio(view: View, proofs: Proofs) -> Verdict:
    """Proof: open /dev/mem read-only, if the node exists in the container."""
    return _cap_row(view, proofs, "SYS_RAWIO", "mem", "SYS_RAWIO")


def _net_admin_probes(view: View) -> Mapping[str, Probe]:
    return {"ioctl": Probe(probes_lib.ifflags_nonexistent)} if caps.has(view.cap_eff, "NET_ADMIN") else {}


@check("CAP-NET_ADMIN", "CAP_NET_ADMIN: network configuration", Severity.MEDIUM,
       remediation="capabilities.drop: [NET_ADMIN]", references=(CIS_CAPS, "CWE-250"),
       probes=_net_admin_probes)
def cap_net_admin(view: View, proofs: Proofs) -> Verdict:
    """Medium in its own network namespace, high with the host's (firewall, routes, sniffing).
    Proof: SIOCSIFFLAGS on an interface name that does not exist (ENODEV = allowed)."""
    v = _cap_row(view, proofs, "NET_ADMIN", "ioctl", "NET_ADMIN")
    is_host, ns_ev = host_ns(view, "net")
    if v.status.is_open and is_host:
        return Verdict(v.status, (*v.evidence, ns_ev), v.proof, Severity.HIGH, v.fix)
    return v


def _raw_probes(view: View) -> Mapping[str, Probe]:
    return {"raw": Probe(probes_lib.raw_socket)} if caps.has(view.cap_eff, "NET_RAW") else {}


@check("CAP-NET_RAW", "CAP_NET_RAW: raw sockets (spoofing, ARP/DNS poisoning)", Severity.MEDIUM,
       remediation="capabilities.drop: [NET_RAW]", references=(CIS_CAPS, "CWE-250"),
       probes=_raw_probes)
def cap_net_raw(view: View, proofs: Proofs) -> Verdict:
    """Proof: open and close a raw ICMP socket."""
    return _cap_row(view, proofs, "NET_RAW", "raw", "NET_RAW")


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
