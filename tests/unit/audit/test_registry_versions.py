from __future__ import annotations

import re
from pathlib import Path

import pytest

from stockade.audit import registry, versions
from stockade.audit.checks import ALL
from stockade.audit.model import Severity, Status, Verdict
from stockade.audit.registry import Check

AUDIT_MD = Path(__file__).resolve().parents[3].parent / "shared" / "design" / "AUDIT.md"


def test_every_catalogue_row_is_a_check() -> None:
    if not AUDIT_MD.exists():
        pytest.skip("shared/design/AUDIT.md not present")
    ids = set(re.findall(r"^\| ([A-Z0-9_-]+) \|", AUDIT_MD.read_text(), re.M)) - {"ID"}
    assert ids == set(ALL)
    for c in ALL.values():
        assert c.remediation and c.doc, c.id


def test_duplicate_ids_fail_at_import() -> None:
    c = next(iter(ALL.values()))
    with pytest.raises(ImportError, match="duplicate"):
        registry.build([(c,), (c,)])


def test_a_crashing_check_reports_error() -> None:
    def boom(view, proofs):  # type: ignore[no-untyped-def]
        raise KeyError("oops")
    c = Check("X-CRASH", "crash", Severity.HIGH, "none", (), boom)
    f = registry.evaluate(None, c, {}, "")  # type: ignore[arg-type]
    assert f.status is Status.ERROR and "crashed" in f.evidence[0]


def test_severity_override() -> None:
    c = Check("X-SEV", "sev", Severity.MEDIUM, "none", (), lambda v, p: Verdict(Status.PRESENT, severity=Severity.HIGH))
    assert registry.evaluate(None, c, {}, "").severity is Severity.HIGH  # type: ignore[arg-type]


def test_version_parse() -> None:
    assert versions.parse("1.1.5+ds1") == (1, 1, 5, 0)
    assert versions.parse("1.0.0-rc6") < versions.parse("1.0.0-rc7") < versions.parse("1.0.0")
    assert versions.parse("1.4.0-rc.3") == (1, 4, 0, -1, 3)


@pytest.mark.parametrize(("kernel", "cves"), [
    ("4.8.2", {"CVE-2016-5195", "CVE-2021-22555", "CVE-2022-0492", "CVE-2024-1086"}),
    ("5.10.101", {"CVE-2022-0847", "CVE-2024-1086"}),
    ("5.16.11", {"CVE-2024-1086"}),
    ("6.1.76", set()),
    ("6.18.44", set()),
])
def test_kernel_ranges(kernel: str, cves: set[str]) -> None:
    v = versions.parse(kernel)
    assert {c.cve for c in versions.KERNEL_CVES if versions.kernel_vulnerable(v, c)} == cves


def test_distro_kernel_uses_its_upstream_base() -> None:
    ver, distro = versions.upstream_kernel("6.1.0-18-amd64", "Linux version 6.1.0-18-amd64 ... Debian 6.1.76-1 (2024-02-01)")
    assert ver[:3] == (6, 1, 76) and distro
