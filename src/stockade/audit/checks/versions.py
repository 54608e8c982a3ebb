"""Version rows: the kernel and the host's runc against known-vulnerable ranges."""

from __future__ import annotations

from stockade.audit import versions
from stockade.audit.model import Severity, Status, Verdict, absent, na
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View
from stockade.linux.runtimes import RuntimeInfo

HOST_ONLY = "host view only: the host's runtime binaries are not visible from inside"


@check("KERNEL-CVE", "kernel release in a known-vulnerable range (candidate)", Severity.HIGH,
       remediation="host: upgrade the kernel (no policy key; seccomp `default` narrows some paths)",
       references=tuple(c.cve for c in versions.KERNEL_CVES))
def kernel_cve(view: View, proofs: Proofs) -> Verdict:
    """Release numbers only: distro kernels backport fixes, so a hit is a candidate to verify
    against the distro's advisory, never a proof."""
    ver, distro = versions.upstream_kernel(view.host.kernel_release, view.host.kernel_version)
    ev = [f"kernel {view.host.kernel_release}", f"upstream base {'.'.join(map(str, ver[:3]))}"]
    hits = [c for c in versions.KERNEL_CVES if versions.kernel_vulnerable(ver, c)]
    if not hits:
        return absent(*ev, "outside every listed range")
    ev += [f"candidate: {c.cve} ({c.name})" + (" - distro kernel, fix may be backported" if distro else "")
           for c in hits]
    return Verdict(Status.PRESENT, tuple(ev))


def _runc(view: View) -> RuntimeInfo | None:
    return view.host.runtimes.get("runc")


def _runc_rows(view: View, cves: tuple[str, ...], fixed: tuple[versions.Version, ...]) -> Verdict:
    if view.host.from_inside:
        return na(HOST_ONLY)
    if view.runtime not in ("", "runc", "docker"):
        return na(f"the container runs under {view.runtime}, not runc")
    info = _runc(view)
    if info is None:
        return na("runc is not installed on this host")
    ev = [f"runc {info.version}" + (f" (Debian package {info.package})" if info.package else "")]
    ver = versions.parse(info.version)
    patched = [c for c in cves if c in info.changelog_cves]
    if patched:
        ev.append("distro changelog lists the fix: " + ", ".join(patched))
    branch_fix = next((f for f in fixed if f[:2] == ver[:2]), None)
    vulnerable = ver < branch_fix if branch_fix else ver < fixed[0] or not any(ver >= f for f in fixed)
    if not vulnerable:
        return absent(*ev, "version is at or past the fix")
    if patched and len(patched) == len(cves):
        return absent(*ev)
    unknown = [c for c in cves if c not in patched]
    ev.append("candidate: " + ", ".join(unknown) + " (version below the upstream fix; "
              "no backport found in the distro changelog)")
    return Verdict(Status.PRESENT, tuple(ev))


@check("RUNC-CVE-2019-5736", "host runc overwritable from a container (CVE-2019-5736)",
       Severity.CRITICAL, remediation="host: upgrade runc (the stockade runner is not affected)",
       references=("CVE-2019-5736", "CWE-78"), host_only=True)
def runc_cve_2019_5736(view: View, proofs: Proofs) -> Verdict:
    """runc before 1.0.0-rc7 can be overwritten through /proc/self/exe."""
    return _runc_rows(view, ("CVE-2019-5736",), ((1, 0, 0, -1, 7),))


@check("RUNC-CVE-2025", "host runc with the 2025 mount-race escapes", Severity.HIGH,
       remediation="host: upgrade runc to 1.2.8 / 1.3.3 / 1.4.0-rc.3 or a distro backport",
       references=("CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"), host_only=True)
def runc_cve_2025(view: View, proofs: Proofs) -> Verdict:
    """maskedPaths / /dev/console / procfs-write redirection races (November 2025)."""
    return _runc_rows(view, ("CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"),
                      ((1, 2, 8, 0), (1, 3, 3, 0), (1, 4, 0, -1, 3)))


CHECKS = (kernel_cve, runc_cve_2019_5736, runc_cve_2025)
