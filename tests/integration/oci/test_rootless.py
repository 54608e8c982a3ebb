"""`spec --rootless` and an unprivileged `oci run` (as nobody, through setpriv)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import require_root, require_tool
from tests.integration.oci.conftest import STOCKADE


def test_rootless_spec_runs_unprivileged(shared_rootfs: Path) -> None:
    require_root()
    setpriv = require_tool("setpriv")
    base = Path(tempfile.mkdtemp(prefix="stockade-oci-rl-", dir="/tmp"))
    try:
        base.chmod(0o777)
        nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        spec = subprocess.run([*nobody, *STOCKADE, "spec", "--rootless", "--policy", "default",
                               "-o", "-"], capture_output=True, text=True, timeout=60)
        assert spec.returncode == 0, spec.stderr
        cfg = json.loads(spec.stdout)
        assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 65534, "size": 1}]
        cfg["root"]["path"] = str(shared_rootfs)
        cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; "
                                  "grep NoNewPrivs /proc/self/status"]
        (base / "config.json").write_text(json.dumps(cfg))
        run = subprocess.run([*nobody, *STOCKADE, "--root", str(base / "state"), "run",
                              "--bundle", str(base), "rl1"], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, run.stderr
        lines = run.stdout.split("\n")
        assert lines[0] == "0" and lines[1].split() == ["0", "65534", "1"]
        assert "NoNewPrivs:\t1" in run.stdout
        assert not (base / "state" / "rl1").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
