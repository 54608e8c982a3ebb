"""cgroup rows: release_agent, the device controller, memory and pids limits."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from stockade.audit import caps, probes_lib
from stockade.audit.checks._ns import host_ns
from stockade.audit.model import Severity, Status, Verdict, absent, na
from stockade.audit.probe import Probe
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View

UNLIMITED_V1 = 1 << 62  # v1 reports "unlimited" as PAGE_COUNTER_MAX pages, ~9.2e18


def _has_v1(view: View) -> bool:
    return any(c.controllers for c in view.cgroups) or view.host.cgroup_mode in ("v1", "hybrid")


def _rw_v1_roots(view: View) -> list[str]:
    return [m.mountpoint for m in view.mounts if m.fstype == "cgroup" and not m.read_only
            and m.root == "/"]


def _release_probes(view: View) -> Mapping[str, Probe]:
    probes: dict[str, Probe] = {}
    if caps.has(view.cap_eff, "SYS_ADMIN") and _has_v1(view):
        probes["mount"] = Probe(probes_lib.cgroup_release_agent, isolated=True)
    for mp in _rw_v1_roots(view):
        probes[mp] = Probe(partial(probes_lib.open_wronly, mp + "/release_agent"))
    return probes


@check("CG1-RELEASE-AGENT", "cgroup v1 release_agent reachable", Severity.CRITICAL,
       remediation="capabilities.drop: [SYS_ADMIN]; namespaces: [cgroup]",
       references=("CVE-2022-0492", "CWE-269"), probes=_release_probes)
def cg1_release_agent(view: View, proofs: Proofs) -> Verdict:
    """With cgroup v1 and CAP_SYS_ADMIN (or a writable release_agent), a program runs as host
    root when a cgroup empties. Proof: in a private mount namespace mount a fresh named v1
    hierarchy and open its release_agent for write, close unwritten."""
    v1 = _has_v1(view)
    admin = caps.has(view.cap_eff, "SYS_ADMIN")
    rw = _rw_v1_roots(view)
    if not v1:
        return absent("no cgroup v1 hierarchy")
    if not admin and not rw:
        return absent(view.status_line("CapEff"), "no read-write cgroup v1 root mounted")
    ev = [f"cgroup mode: {view.host.cgroup_mode}"]
    if admin:
        ev.append("CAP_SYS_ADMIN is effective")
    ev.extend(f"read-write v1 root: {mp}" for mp in rw)
    keys = (["mount"] if admin else []) + rw
    proved = any(proofs.ok(k) for k in keys)
    return Verdict(Status.EXPLOITABLE if proved else Status.PRESENT, tuple(ev),
                   "; ".join(proofs.line(k) for k in keys),
                   fix=(("capabilities.drop", ["SYS_ADMIN"]), ("namespaces", ["cgroup"])))


# loop0 (block 7:0): on nearly every host, in no runtime's default allow-list, and opening
# it read-only is harmless; EPERM at open means the device cgroup refused it.
PROBE_DEVICE = (7, 0)


def _dev_probes(view: View) -> Mapping[str, Probe]:
    if not caps.has(view.cap_eff, "MKNOD") or not caps.has(view.cap_eff, "SYS_ADMIN"):
        return {}
    major, minor = PROBE_DEVICE
    return {"mknod": Probe(lambda: probes_lib.mknod_open(major, minor), isolated=True)}


@check("DEV-CGROUP-ALLOW-ALL", "the device cgroup allows every device", Severity.CRITICAL,
       remediation="capabilities.drop: [MKNOD] (the runner's device allow-list is the default)",
       references=("CIS Docker 5.17", "CWE-284"), probes=_dev_probes)
def dev_cgroup_allow_all(view: View, proofs: Proofs) -> Verdict:
    """`a *:* rwm` in devices.list (v1), or no device program (v2), with CAP_MKNOD: any host
    disk can be created and opened. Proof: mknod loop0 (b 7:0) in a private tmpfs of
    a throw-away child, open read-only (EPERM means the device cgroup refused)."""
    dl = view.cgroup_values.get("devices/devices.list")
    ev = [view.status_line("CapEff"), host_ns(view, "user")[1]]
    # creating device nodes needs CAP_MKNOD in the initial user namespace
    can_mknod = caps.has(view.cap_eff, "MKNOD") and host_ns(view, "user")[0] is True
    allow_all = dl is not None and "a *:* rwm" in dl.splitlines()
    if dl is not None:
        ev.append("devices.list: " + " | ".join(dl.splitlines()[:4]))
    fix = (("capabilities.drop", ["MKNOD"]),)
    if proofs.ok("mknod"):
        return Verdict(Status.EXPLOITABLE, tuple(ev), proofs.line("mknod"), fix=fix)
    if not can_mknod:
        return absent(*ev, "no CAP_MKNOD in the initial user namespace: no device node can be made")
    if allow_all:
        proof = proofs.line("mknod") if "mknod" in proofs.outcomes else "not proved: needs CAP_SYS_ADMIN for a private mount namespace"
        return Verdict(Status.PRESENT, tuple(ev), proof, fix=fix)
    if dl is None and "mknod" not in proofs.outcomes:
        return na("devices.list is not visible and the mknod proof could not run")
    return absent(*ev)


def _limit(view: View, v1_key: str, v2_key: str) -> tuple[bool | None, str]:
    if v1_key in view.cgroup_values:
        value = view.cgroup_values[v1_key]
        unlimited = value == "max" or (value.isdigit() and int(value) >= UNLIMITED_V1)
        return unlimited, f"{v1_key} = {value}"
    if v2_key in view.cgroup_values:
        value = view.cgroup_values[v2_key]
        return value == "max", f"{v2_key} = {value}"
    return None, f"neither {v1_key} nor {v2_key} is visible"


@check("RES-NO-MEMORY-LIMIT", "no memory limit", Severity.MEDIUM,
       remediation="resources.memory: 512Mi (size it to the workload)",
       references=("CIS Docker 5.10", "CWE-770"))
def res_no_memory_limit(view: View, proofs: Proofs) -> Verdict:
    """Without a memory limit one container can push the whole host into OOM."""
    unlimited, ev = _limit(view, "memory/memory.limit_in_bytes", "unified/memory.max")
    if unlimited is None:
        return na(ev)
    if unlimited:
        return Verdict(Status.PRESENT, (ev,), fix=(("resources.memory", "512Mi"),))
    return absent(ev)


@check("RES-NO-PIDS-LIMIT", "no pids limit (fork bomb)", Severity.MEDIUM,
       remediation="resources.pids: 512", references=("CIS Docker 5.28", "CWE-770"))
def res_no_pids_limit(view: View, proofs: Proofs) -> Verdict:
    """Without pids.max a fork bomb exhausts the host's PID space."""
    unlimited, ev = _limit(view, "pids/pids.max", "unified/pids.max")
    if unlimited is None:
        return na(ev)
    if unlimited:
        return Verdict(Status.PRESENT, (ev,), fix=(("resources.pids", 512),))
    return absent(ev)


CHECKS = (cg1_release_agent, dev_cgroup_allow_all, res_no_memory_limit, res_no_pids_limit)
