"""Report formats and --fix, on synthetic results (no privileges)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from stockade.audit import fix
from stockade.audit.checks import ALL
from stockade.audit.model import AuditResult, Finding, Severity, Status, Target
from stockade.audit.report import FORMATS
from stockade.audit.report.jsonfmt import schema
from stockade.cli.audit import exit_status

from .fakeproc import host_facts


def finding(cid: str, status: Status, fix_: tuple[tuple[str, object], ...] = ()) -> Finding:
    c = ALL[cid]
    return Finding(c.id, c.title, c.severity, status, ("evidence <line> | 1",), c.remediation,
                   c.references, "proof", fix_)


def result() -> AuditResult:
    fs = (
        finding("CAP-SYS_ADMIN", Status.EXPLOITABLE, (("capabilities.drop", ["SYS_ADMIN"]),)),
        finding("SECCOMP-DISABLED", Status.EXPLOITABLE, (("extends", ["default"]),)),
        finding("NS-HOST-PID", Status.PRESENT, (("namespaces", ["pid"]),)),
        finding("ROOTFS-RW", Status.PRESENT, (("filesystem.root", "read-only"),)),
        finding("MNT-HOST-ROOT", Status.PRESENT, (("filesystem.deny", ["/host"]),)),
        finding("RES-NO-PIDS-LIMIT", Status.PRESENT, (("resources.pids", 512),)),
        finding("APPARMOR-UNCONFINED", Status.NOT_APPLICABLE),
        finding("KERNEL-CVE", Status.ABSENT),
    )
    return AuditResult(Target("docker", 42, name="web", runtime="docker", image="busybox"), fs, 0.01,
                       (), ("CHOWN", "SYS_ADMIN", "NET_RAW"))


def test_json_matches_the_shipped_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    doc = json.loads(FORMATS["json"]([result()], host_facts()))
    jsonschema.validate(doc, schema())
    audit = doc["audits"][0]
    assert audit["passed"] == ["KERNEL-CVE"]
    assert {f["status"] for f in audit["findings"]} == {"exploitable", "present", "not-applicable"}


def test_sarif_2_1_0_shape() -> None:
    doc = json.loads(FORMATS["sarif"]([result()], host_facts()))
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    assert len(run["tool"]["driver"]["rules"]) == len(ALL)
    ids = [r["ruleId"] for r in run["results"]]
    assert "CAP-SYS_ADMIN" in ids and "KERNEL-CVE" not in ids
    for r in run["results"]:
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
        assert r["level"] in ("error", "warning", "note", "none")


def test_markdown_escapes_pipes() -> None:
    text = FORMATS["markdown"]([result()], host_facts())
    assert "| CAP-SYS_ADMIN | critical | exploitable |" in text
    assert "\\| 1" in text


def test_html_is_self_contained_with_a_chart() -> None:
    page = FORMATS["html"]([result()], host_facts())
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "<script" not in page and "src=" not in page and "<link" not in page
    assert "&lt;line&gt;" in page  # evidence is escaped


def test_html_columns_have_fixed_widths_and_evidence_wraps() -> None:
    """A 400-character evidence line must wrap inside its column, not widen the table."""
    page = FORMATS["html"]([result()], host_facts())
    assert "table-layout:fixed" in page and "overflow-wrap:anywhere" in page
    widths = [int(w) for w in re.findall(r'<col style="width:(\d+)%">', page)]
    assert len(widths) == 6 and sum(widths) == 100


def test_terminal_table() -> None:
    text = FORMATS["table"]([result()], host_facts())
    assert "CAP-SYS_ADMIN" in text and "1 checks passed" in text


def test_exit_status_gates_on_severity() -> None:
    r = result()
    assert exit_status([r], Severity.HIGH) == 1
    only_low = AuditResult(r.target, (finding("ROOTFS-RW", Status.PRESENT),), 0.0)
    assert exit_status([only_low], Severity.HIGH) == 0
    assert exit_status([only_low], Severity.LOW) == 1
    na = AuditResult(r.target, (finding("APPARMOR-UNCONFINED", Status.NOT_APPLICABLE),), 0.0)
    assert exit_status([na], Severity.INFO) == 0
    err = AuditResult(r.target, (finding("CAP-SYS_ADMIN", Status.ERROR),), 0.0)
    assert exit_status([err], Severity.HIGH) == 1  # an error is never a pass


def test_fix_policy_closes_the_findings(tmp_path: Path) -> None:
    doc = yaml.safe_load(fix.render(result()))
    assert doc["stockade"] == 1 and doc["extends"] == ["default"]
    assert doc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "NET_RAW"]}
    assert set(doc["namespaces"]) == {"user", "pid", "mount", "net", "ipc", "uts", "cgroup"}
    assert doc["filesystem"] == {"root": "read-only", "deny": ["/host"]}
    assert doc["resources"] == {"pids": 512}
    path = tmp_path / "fix.yaml"
    path.write_text(fix.render(result()))
    try:
        from stockade.policy.loader import load_policy
    except ImportError:
        pytest.skip("the policy loader is not available")
    policy = load_policy(str(path))
    assert policy is not None
