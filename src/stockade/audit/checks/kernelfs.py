"""procfs and sysfs knobs reachable for write or read from the container."""

from __future__ import annotations

from collections.abc import Mapping

from stockade.audit import probes_lib
from stockade.audit.checks._opens import existing, open_probes
from stockade.audit.model import Severity, Status, Verdict, absent
from stockade.audit.probe import Probe
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View


def _write_verdict(proofs: Proofs, paths: tuple[str, ...], extra: tuple[str, ...] = ()) -> Verdict:
    lines = tuple(proofs.line(p) for p in paths)
    missing = [p for p in paths if proofs.get(p) is None]
    if missing and proofs.error:
        return Verdict(Status.ERROR, (proofs.error,))
    opened = [p for p in paths if proofs.ok(p)]
    fix = (("filesystem.deny", list(paths)),)
    if opened:
        return Verdict(Status.EXPLOITABLE, (*extra, *(f"{p} is writable" for p in opened)),
                       "; ".join(lines), fix=fix)
    if extra:
        return Verdict(Status.PRESENT, extra, "; ".join(lines), fix=fix)
    return absent(*lines)


CORE = ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe")


@check("PROCSYS-CORE-PATTERN", "core_pattern / modprobe writable", Severity.CRITICAL,
       remediation="filesystem.deny: [/proc/sys/kernel/core_pattern] (keep /proc/sys read-only)",
       references=("CWE-732",), probes=open_probes(CORE, write=True))
def procsys_core_pattern(view: View, proofs: Proofs) -> Verdict:
    """A writable core_pattern or modprobe path runs a program as host root on the next crash
    or module request. Proof: open O_WRONLY, close without writing."""
    return _write_verdict(proofs, CORE)


BINFMT = ("/proc/sys/fs/binfmt_misc/register",)


@check("BINFMT-MISC", "binfmt_misc register writable", Severity.CRITICAL,
       remediation="filesystem.deny: [/proc/sys/fs/binfmt_misc]", references=("CWE-732",),
       probes=open_probes(BINFMT, write=True))
def binfmt_misc(view: View, proofs: Proofs) -> Verdict:
    """A registered interpreter runs for every matching exec on the host (and with the C flag,
    with the binary's credentials). Proof: open register O_WRONLY, close."""
    return _write_verdict(proofs, BINFMT)


UEVENT_HELPER = ("/sys/kernel/uevent_helper",)


@check("SYSFS-RW", "sysfs (or securityfs/efivarfs/debugfs) writable", Severity.CRITICAL,
       remediation="filesystem.read_only: [/sys]", references=("CWE-732",), probes=open_probes(UEVENT_HELPER, write=True))
def sysfs_rw(view: View, proofs: Proofs) -> Verdict:
    """A writable /sys: uevent_helper runs a program as host root on the next uevent; a
    writable securityfs, efivarfs or debugfs is as bad. Proof: open uevent_helper O_WRONLY."""
    rw = [m for m in view.mounts
          if m.fstype in ("sysfs", "securityfs", "efivarfs", "debugfs", "tracefs")
          and not m.read_only and (m.mountpoint == "/sys" or m.mountpoint.startswith("/sys/"))]
    extra = tuple(f"read-write: {m.line()}" for m in rw)
    return _write_verdict(proofs, UEVENT_HELPER, extra)


DOS = ("/proc/sysrq-trigger", "/proc/sys/vm/panic_on_oom")


@check("PROC-DOS-KNOBS", "sysrq-trigger / panic_on_oom writable", Severity.HIGH,
       remediation="filesystem.deny: [/proc/sysrq-trigger] (keep /proc/sys read-only)",
       references=("CWE-400",), probes=open_probes(DOS, write=True))
def proc_dos_knobs(view: View, proofs: Proofs) -> Verdict:
    """sysrq-trigger reboots or crashes the host; panic_on_oom turns an OOM into a panic.
    Proof: open O_WRONLY, close — never written."""
    return _write_verdict(proofs, DOS)


MASKED = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware")


@check("MASKED-PATHS-MISSING", "masked paths are exposed", Severity.MEDIUM,
       remediation="filesystem.deny: [/proc/kcore, /proc/keys, /proc/timer_list, /sys/firmware]",
       references=("CWE-200",), probes=open_probes(MASKED, write=False))
def masked_paths_missing(view: View, proofs: Proofs) -> Verdict:
    """Runtimes hide these behind /dev/null or an empty read-only tmpfs; without that,
    kernel memory layout, keys and timers leak. Proof: open O_RDONLY, close."""
    covered = {m.mountpoint for m in view.mounts}
    exposed, lines = [], []
    found = existing(proofs, MASKED)
    if found is None:
        return Verdict(Status.ERROR, (proofs.error,))
    for p, o in found:
        if p in covered or "masked" in o.detail:
            lines.append(f"{p}: masked")
            continue
        exposed.append(p)
        lines.append(f"{p}: not masked ({o.describe()})")
    if not exposed:
        return absent(*lines)
    proved = any(proofs.ok(p) for p in exposed)
    return Verdict(Status.EXPLOITABLE if proved else Status.PRESENT, tuple(lines),
                   "; ".join(proofs.line(p) for p in exposed), fix=(("filesystem.deny", exposed),))


def _localnet_probes(view: View) -> Mapping[str, Probe]:
    return {"all": Probe(lambda: probes_lib.read_text("/proc/sys/net/ipv4/conf/all/route_localnet"))}


@check("ROUTE-LOCALNET", "route_localnet enabled", Severity.MEDIUM,
       remediation="network.mode: none (own namespace with route_localnet 0)",
       references=("CVE-2020-8558",), probes=_localnet_probes)
def route_localnet(view: View, proofs: Proofs) -> Verdict:
    """net.ipv4.conf.all.route_localnet=1 makes services bound to 127.0.0.1 reachable from
    neighbours (CVE-2020-8558)."""
    o = proofs.get("all")
    if o is None or not o.ok:
        if proofs.error:
            return Verdict(Status.ERROR, (proofs.error,))
        return absent(proofs.line("all"))
    if o.detail.strip() == "1":
        return Verdict(Status.PRESENT, ("net.ipv4.conf.all.route_localnet = 1",),
                       fix=(("network.mode", "none"),))
    return absent(f"net.ipv4.conf.all.route_localnet = {o.detail.strip()}")


CHECKS = (procsys_core_pattern, binfmt_misc, sysfs_rw, proc_dos_knobs, masked_paths_missing,
          route_localnet)
