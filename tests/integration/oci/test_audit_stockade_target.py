"""`stockade audit --stockade ID` finds a container of `stockade oci` and audits it."""

from __future__ import annotations

import json
from pathlib import Path

from stockade.cli import main
from tests.integration.oci.conftest import Bundles, oci


def test_audit_finds_an_oci_container_by_id(bundles: Bundles, oci_root: Path, tmp_path: Path) -> None:
    cfg = bundles.config()
    cfg["process"]["args"] = ["/bin/sleep", "60"]
    bundle = bundles.make(cfg)
    cid = "audited"
    assert oci(oci_root, "create", "--bundle", str(bundle), cid).returncode == 0
    try:
        assert oci(oci_root, "start", cid).returncode == 0
        report = tmp_path / "report.json"
        status = main(["audit", "--stockade", cid, "--stockade-root", str(oci_root / "stockade"), "--format", "json",
                       "-o", str(report), "--fail-on", "critical"])
        assert status in (0, 1)
        doc = json.loads(report.read_text())
        text = json.dumps(doc)
        assert cid in text and "stockade" in text
        (audit,) = doc["audits"]
        ids = {f["id"] for f in audit["findings"] if f["status"] in ("present", "exploitable")}
        # runc's default spec: seccomp is not set (so the audit must say so), no user namespace
        assert "SECCOMP-DISABLED" in ids and "USERNS-ABSENT" in ids
        assert "NS-HOST-PID" not in ids and "NS-HOST-NET" not in ids
    finally:
        oci(oci_root, "delete", "--force", cid)
