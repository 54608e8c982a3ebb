from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from tools import gen_audit_catalogue as gen

from stockade.audit import registry, versions
from stockade.audit.checks import ALL
from stockade.audit.model import Severity, Status, Verdict
from stockade.audit.registry import Check
from stockade.audit.view import build_view

from .fakeproc import FakeProc, host_facts


def test_every_check_has_a_doc_and_a_remediation() -> None:
    for c in ALL.values():
        assert c.remediation.strip() and c.doc.strip() and c.title.strip(), c.id


def test_committed_catalogue_is_current() -> None:
    """docs/AUDIT.md is generated from the registry; a changed check must be regenerated."""
    assert gen.OUT.exists(), f"docs/AUDIT.md is missing: run `{gen.COMMAND}`"
    assert gen.OUT.read_text() == gen.render(), f"docs/AUDIT.md is stale: run `{gen.COMMAND}`"


def test_catalogue_rows_are_exactly_the_checks() -> None:
    text = gen.OUT.read_text()
    rows = re.findall(r"^\| \[([A-Z0-9_-]+)\]\(#([a-z0-9_-]+)\) \| (\w+) \|", text, re.M)
    assert [r[0] for r in rows] == list(ALL)
    for cid, anchor, severity in rows:
        assert anchor == cid.lower() and f"\n### {cid}\n" in text  # the link finds its section
        assert severity == ALL[cid].severity.label
        assert f"- Remediation: {' '.join(ALL[cid].remediation.split())}\n" in text


def test_a_changed_check_makes_the_catalogue_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    committed = gen.render()
    c = next(iter(ALL.values()))
    changed = dataclasses.replace(c, remediation="capabilities.drop: [EVERYTHING]")
    monkeypatch.setattr(gen, "ALL", {**ALL, c.id: changed})
    fresh = gen.render()
    assert fresh != committed and "capabilities.drop: [EVERYTHING]" in fresh
    assert gen.main(["gen", "--check"]) == 1


def test_active_checks_probe_only_with_active(tmp_path: Path) -> None:
    """A check the catalogue marks `--active` plans its network probe only with --active."""
    fake = FakeProc(tmp_path)
    fake.write()
    views = {flag: build_view(fake.pid, host_facts(), proc_root=str(tmp_path / "proc"),
                              fs_prefix=str(tmp_path / "fs"), active=flag) for flag in (False, True)}
    active = [c for c in ALL.values() if c.active]
    assert active
    for c in active:
        assert c.probes is not None, c.id
        assert c.probes(views[False]) == {} and c.probes(views[True]), c.id


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
