"""Namespace rows: is the container sharing the host's pid/net/ipc/uts/cgroup namespace?"""

from __future__ import annotations

from collections.abc import Mapping

from stockade.audit import probes_lib
from stockade.audit.checks._ns import host_ns
from stockade.audit.model import Severity, Status, Verdict, absent
from stockade.audit.probe import Probe
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View


def _ns_verdict(view: View, name: str, key: str) -> Verdict:
    is_host, ev = host_ns(view, name)
    if is_host is None:
        return Verdict(Status.ERROR, (ev,))
    if is_host:
        return Verdict(Status.PRESENT, (ev,), fix=(("namespaces", [key]),))
    return absent(ev)


def _pid_probes(view: View) -> Mapping[str, Probe]:
    return {"comm": Probe(lambda: probes_lib.read_text("/proc/1/comm"))}


@check("NS-HOST-PID", "host PID namespace", Severity.HIGH, remediation="namespaces: [pid]",
       references=("CIS Docker 5.15", "CWE-668"), probes=_pid_probes)
def ns_host_pid(view: View, proofs: Proofs) -> Verdict:
    """Host processes are visible (and signalable with matching uid). Proof: /proc/1/comm is
    the host's init, not the container's entry point."""
    v = _ns_verdict(view, "pid", "pid")
    if v.status is Status.PRESENT and proofs.ok("comm"):
        return Verdict(Status.EXPLOITABLE, v.evidence, proofs.line("comm"), fix=v.fix)
    return v


def _net_probes(view: View) -> Mapping[str, Probe]:
    return {"ifaces": Probe(lambda: probes_lib.listdir("/sys/class/net"))}


@check("NS-HOST-NET", "host network namespace", Severity.HIGH,
       remediation="network.mode: none (or loopback)", references=("CIS Docker 5.9", "CWE-668"),
       probes=_net_probes)
def ns_host_net(view: View, proofs: Proofs) -> Verdict:
    """Host interfaces, listening sockets on 127.0.0.1 and abstract unix sockets are reachable."""
    is_host, ev = host_ns(view, "net")
    if is_host is None:
        return Verdict(Status.ERROR, (ev,))
    if is_host:
        return Verdict(Status.PRESENT, (ev, proofs.line("ifaces")), fix=(("network.mode", "none"),))
    return absent(ev)


@check("NS-HOST-IPC", "host IPC namespace", Severity.MEDIUM, remediation="namespaces: [ipc]",
       references=("CIS Docker 5.16", "CWE-668"))
def ns_host_ipc(view: View, proofs: Proofs) -> Verdict:
    """Host SysV IPC and POSIX message queues are shared."""
    return _ns_verdict(view, "ipc", "ipc")


@check("NS-HOST-UTS", "host UTS namespace", Severity.LOW, remediation="namespaces: [uts]",
       references=("CIS Docker 5.20",))
def ns_host_uts(view: View, proofs: Proofs) -> Verdict:
    """The container can change the host's hostname (with CAP_SYS_ADMIN)."""
    return _ns_verdict(view, "uts", "uts")


@check("NS-HOST-CGROUP", "host cgroup namespace or writable cgroupfs", Severity.MEDIUM,
       remediation="namespaces: [cgroup]", references=("CWE-668",))
def ns_host_cgroup(view: View, proofs: Proofs) -> Verdict:
    """Host cgroup paths are visible (cgroup ns not unshared), or /sys/fs/cgroup is mounted
    read-write inside the container."""
    is_host, ev = host_ns(view, "cgroup")
    evidence = [ev]
    rw = [m for m in view.mounts if m.fstype in ("cgroup", "cgroup2") and not m.read_only]
    for m in rw[:4]:
        evidence.append(f"read-write cgroup mount: {m.line()}")
    if is_host is None and not rw:
        return Verdict(Status.ERROR, tuple(evidence))
    if is_host or rw:
        paths = sorted({c.path for c in view.cgroups})[:3]
        evidence.append("cgroup paths: " + ", ".join(paths))
        return Verdict(Status.PRESENT, tuple(evidence), fix=(("namespaces", ["cgroup"]),))
    return absent(*evidence)


CHECKS = (ns_host_pid, ns_host_net, ns_host_ipc, ns_host_uts, ns_host_cgroup)
