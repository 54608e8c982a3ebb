"""Device nodes reachable from the container."""

from __future__ import annotations

import re
import stat

from stockade.audit import probes_lib
from stockade.audit.checks._opens import existing, open_probes
from stockade.audit.model import Severity, Status, Verdict, absent
from stockade.audit.probe import Outcome, Probe
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View

BLOCK_NAMES = re.compile(r"^(sd[a-z]+\d*|vd[a-z]+\d*|xvd[a-z]+\d*|hd[a-z]+\d*|nvme\d+n\d+(p\d+)?|"
                         r"dm-\d+|loop\d+|mmcblk\d+(p\d+)?)$")


def scan_block_devices() -> Outcome:
    """Find host block device nodes under /dev and try each read-only."""
    found = probes_lib.scan_dirs(("/dev", "/dev/mapper", "/dev/disk"),
                                 lambda d, e, st: stat.S_ISBLK(st.st_mode) and bool(BLOCK_NAMES.match(e.name) or d != "/dev"))
    if not found:
        return Outcome(False, 2, "no block device nodes")
    opened: list[str] = []
    failed: list[str] = []
    for path in sorted(found)[:16]:
        o = probes_lib.block_device(path)
        (opened if o.ok else failed).append(o.detail if o.ok else f"{path}: {o.errname}")
    detail = f"nodes: {', '.join(sorted(found)[:16])}; " + "; ".join(opened + failed)
    return Outcome(bool(opened), None if opened else 1, detail)


@check("DEV-BLOCK", "host block devices are openable", Severity.CRITICAL,
       remediation="filesystem.deny: [/dev/sd*, /dev/vd*, /dev/nvme*] (pass no host devices)",
       references=("CIS Docker 5.17", "CWE-668"),
       probes=lambda view: {"scan": Probe(scan_block_devices)})
def dev_block(view: View, proofs: Proofs) -> Verdict:
    """A host disk opened read-only is the whole host filesystem (debugfs, mount it elsewhere).
    Proof: open O_RDONLY, BLKGETSIZE64, close."""
    o = proofs.get("scan")
    if o is None:
        return Verdict(Status.ERROR, (proofs.line("scan"),))
    if o.errno == 2:
        return absent("no block device nodes under /dev")
    return Verdict(Status.EXPLOITABLE if o.ok else Status.PRESENT, (o.detail,), proofs.line("scan"),
                   fix=(("filesystem.deny", [p.split(":")[0] for p in o.detail[7:].split("; ")[0].split(", ")]),))


KERNEL_DEVS = ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg")


@check("DEV-MEM-KMSG", "/dev/mem, /dev/kmem, /dev/port or /dev/kmsg openable", Severity.HIGH,
       remediation="filesystem.deny: [/dev/mem, /dev/kmem, /dev/port, /dev/kmsg]",
       references=("CIS Docker 5.17", "CWE-668"), probes=open_probes(KERNEL_DEVS, write=False))
def dev_mem_kmsg(view: View, proofs: Proofs) -> Verdict:
    """Physical memory, I/O ports and the kernel log. Proof: open O_RDONLY, close."""
    found = existing(proofs, KERNEL_DEVS)
    if found is None:
        return Verdict(Status.ERROR, (proofs.error,))
    present = [p for p, _ in found]
    opened = [p for p, o in found if probes_lib.is_exposed(o)]
    if not present:
        return absent("none of " + ", ".join(KERNEL_DEVS) + " exists")
    ev = tuple(proofs.line(p) for p in present)
    fix = (("filesystem.deny", present),)
    return Verdict(Status.EXPLOITABLE if opened else Status.PRESENT, ev, "; ".join(ev), fix=fix)


CHECKS = (dev_block, dev_mem_kmsg)
