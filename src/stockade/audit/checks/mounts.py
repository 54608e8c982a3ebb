"""Mount-table rows: host directories, a second procfs, propagation, the root's write flag."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial

from stockade.audit import probes_lib
from stockade.audit.checks.sockets import RUNTIME_SOCKETS
from stockade.audit.model import Severity, Status, Verdict, absent
from stockade.audit.probe import Probe
from stockade.audit.procfs import Mount
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View

BLOCK_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "vfat", "zfs", "jfs", "reiserfs"})
SENSITIVE = ("/etc", "/root", "/var/lib/docker", "/var/lib/kubelet", "/var/lib/containerd",
             "/boot", "/usr", "/lib", "/var/log", "/home", "/run")
# Files every runtime bind-mounts from its own state dir; not host data.
RUNTIME_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/termination-log",
                           "/run/.containerenv"})


def host_binds(view: View) -> list[Mount]:
    """Mounts of a host block-device filesystem other than the container's own root."""
    return [m for m in view.mounts
            if m.fstype in BLOCK_FS and m.major != 0 and m.mountpoint != "/"
            and m.mountpoint not in RUNTIME_FILES]


def is_sensitive(root: str) -> bool:
    root = root.rstrip("/") or "/"
    if root == "/":
        return True
    return any(s == root or s.startswith(root + "/") for s in SENSITIVE)


# The host's installed software, no data of anyone: sensitive when writable (a payload
# could plant a binary the host runs), not when read-only (the view of a `stockade run`
# jail, which shows the host's /usr read-only and nothing else).
SOFTWARE = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def _sensitive_mounts(view: View) -> list[Mount]:
    return [m for m in host_binds(view) if is_sensitive(m.root)
            and not (m.read_only and m.root.rstrip("/") in SOFTWARE)]


def _host_root_probes(view: View) -> Mapping[str, Probe]:
    return {m.mountpoint: Probe(partial(probes_lib.open_first_file_wronly, m.mountpoint))
            for m in _sensitive_mounts(view) if not m.read_only}


@check("MNT-HOST-ROOT", "a sensitive host directory is mounted in", Severity.CRITICAL,
       remediation="filesystem.deny: [the mount point] (and drop the bind mount)",
       references=("CIS Docker 5.5", "CWE-668"), probes=_host_root_probes)
def mnt_host_root(view: View, proofs: Proofs) -> Verdict:
    """A mount from a host block device whose root is / or a sensitive directory (/etc, /root,
    /var/lib/docker, /boot, /usr, ...); the host's software (/usr, /lib*) only when writable.
    Proof: open a file in it for write, close unwritten."""
    found = _sensitive_mounts(view)
    if not found:
        return absent("no host block-device mount of a sensitive directory")
    ev = tuple(m.line() for m in found)
    writable = [m.mountpoint for m in found if proofs.ok(m.mountpoint)]
    proof = "; ".join(proofs.line(m.mountpoint) for m in found if not m.read_only) or "mounted read-only"
    return Verdict(Status.EXPLOITABLE if writable else Status.PRESENT, ev, proof,
                   fix=(("filesystem.deny", [m.mountpoint for m in found]),))


def _second_procs(view: View) -> list[Mount]:
    return [m for m in view.mounts if m.fstype == "proc" and m.mountpoint != "/proc"
            and not m.mountpoint.startswith("/proc/")]


def _proc_probes(view: View) -> Mapping[str, Probe]:
    return {m.mountpoint: Probe(partial(probes_lib.open_wronly, m.mountpoint + "/sys/kernel/core_pattern"))
            for m in _second_procs(view) if m.root == "/"}


@check("MNT-HOST-PROC", "a second procfs is mounted", Severity.CRITICAL,
       remediation="filesystem.deny: [the procfs mount point]", references=("CWE-668",),
       probes=_proc_probes)
def mnt_host_proc(view: View, proofs: Proofs) -> Verdict:
    """A procfs outside /proc (often the host's, e.g. /host/proc) escapes the masked and
    read-only /proc paths. Proof: open its sys/kernel/core_pattern for write, close."""
    found = _second_procs(view)
    if not found:
        return absent("procfs only at /proc")
    ev = tuple(m.line() for m in found)
    proved = any(proofs.ok(m.mountpoint) for m in found)
    return Verdict(Status.EXPLOITABLE if proved else Status.PRESENT, ev,
                   "; ".join(proofs.line(m.mountpoint) for m in found),
                   fix=(("filesystem.deny", [m.mountpoint for m in found]),))


@check("MNT-HOST-VARLOG", "host /var/log is mounted in", Severity.HIGH,
       remediation="filesystem.deny: [the mount point]", references=("CIS Docker 5.5", "CWE-668"))
def mnt_host_varlog(view: View, proofs: Proofs) -> Verdict:
    """With host /var/log writable, symlinks planted in logs make the kubelet or log readers
    follow them (the /var/log escape)."""
    found = [m for m in host_binds(view) if "/var/log".startswith(m.root.rstrip("/") + "/")
             or m.root.rstrip("/") == "/var/log"]
    if not found:
        return absent("no mount of host /var/log")
    return Verdict(Status.PRESENT, tuple(m.line() for m in found),
                   fix=(("filesystem.deny", [m.mountpoint for m in found]),))


@check("MNT-LXCFS-RW", "lxcfs mounted read-write", Severity.HIGH,
       remediation="filesystem.read_only: [the lxcfs mount points]", references=("CWE-732",))
def mnt_lxcfs_rw(view: View, proofs: Proofs) -> Verdict:
    """A read-write lxcfs mount lets the container reach the lxcfs daemon's files."""
    found = [m for m in view.mounts if "lxcfs" in (m.fstype + m.source) and not m.read_only]
    if not found:
        return absent("no read-write lxcfs mount")
    return Verdict(Status.PRESENT, tuple(m.line() for m in found),
                   fix=(("filesystem.read_only", [m.mountpoint for m in found]),))


@check("MNT-RW-NOSUID", "a writable host bind mount without nosuid", Severity.MEDIUM,
       remediation="filesystem.read_only: [the mount point] (or mount it nosuid)",
       references=("CIS Docker 5.5", "CWE-732"))
def mnt_rw_nosuid(view: View, proofs: Proofs) -> Verdict:
    """A setuid binary written from the container onto a host directory can be run by a
    host user to gain the container's root."""
    # runtime sockets are SOCK-RUNTIME's business; nothing can be planted through them
    found = [m for m in host_binds(view) if not m.read_only and "nosuid" not in m.options
             and os.path.basename(m.mountpoint) not in RUNTIME_SOCKETS]
    if not found:
        return absent("every writable host bind mount is nosuid (or there is none)")
    return Verdict(Status.PRESENT, tuple(m.line() for m in found),
                   fix=(("filesystem.read_only", [m.mountpoint for m in found]),))


@check("MNT-SHARED-PROPAGATION", "shared mount propagation", Severity.MEDIUM,
       remediation="filesystem: do not use shared propagation (the runner makes / private)",
       references=("CIS Docker 5.19",))
def mnt_shared_propagation(view: View, proofs: Proofs) -> Verdict:
    """A `shared:N` mount propagates the container's mounts to the host and back."""
    found = [m for m in view.mounts if m.shared]
    if not found:
        return absent("no shared:N mount")
    return Verdict(Status.PRESENT, tuple(m.line() for m in found[:8]))


@check("ROOTFS-RW", "the root filesystem is writable", Severity.LOW,
       remediation="filesystem.root: read-only", references=("CIS Docker 5.12",))
def rootfs_rw(view: View, proofs: Proofs) -> Verdict:
    """A writable / lets an intruder persist tools and modify binaries."""
    roots = [m for m in view.mounts if m.mountpoint == "/"]
    if not roots:
        return Verdict(Status.ERROR, ("no / in the mount table",))
    top = roots[-1]  # the last mount on / is the visible one
    if top.read_only:
        return absent(top.line())
    return Verdict(Status.PRESENT, (top.line(),), fix=(("filesystem.root", "read-only"),))


CHECKS = (mnt_host_root, mnt_host_proc, mnt_host_varlog, mnt_lxcfs_rw, mnt_rw_nosuid,
          mnt_shared_propagation, rootfs_rw)
