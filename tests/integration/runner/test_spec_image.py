"""`stockade oci spec --image`: a bundle from a stored image, run by the stockade runtime
and by runc; the image's process settings are honoured and the policy wins."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from stockade.cli import main
from stockade.image.store import Store
from tests.conftest import require_tool
from tests.integration.runner.test_run_image import APP, _app_layers, _load, base_layer, store  # noqa: F401


def test_spec_from_an_image_runs_under_runc(store: Store, tmp_path: Path, base_layer: bytes) -> None:  # noqa: F811
    runc = require_tool("runc")
    _load(store, tmp_path, "app:1", _app_layers(base_layer), APP)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    assert main(["oci", "spec", "--image", "app:1", "--store", str(store.root), "--bundle", str(bundle)]) == 0
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["root"]["path"] == "rootfs" and (bundle / "rootfs" / "srv" / "app" / "hello").is_file()
    assert cfg["process"]["cwd"] == "/srv/app"
    assert cfg["process"]["user"]["uid"] == 65534  # the image's USER nobody, allowed: it lowers privilege
    assert "FOO=from-image" in cfg["process"]["env"]
    assert cfg["process"]["args"][:2] == ["/bin/sh", "-c"]
    # the bundle from the image is a real bundle: runc runs it (its own seccomp/caps from the policy)
    cfg["process"]["terminal"] = False
    cfg["linux"].pop("uidMappings", None)
    cfg["linux"].pop("gidMappings", None)
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "user"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    name = f"spec-image-{uuid.uuid4().hex[:6]}"
    try:
        out = subprocess.run([runc, "run", "--bundle", str(bundle), name], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run([runc, "delete", "--force", name], capture_output=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "from-image image-bar" and lines[1] == "/srv/app" and lines[2] == "65534"
    assert "NoNewPrivs:\t1" in out.stdout


def test_spec_from_an_unknown_image_writes_nothing(store: Store, tmp_path: Path) -> None:  # noqa: F811
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    assert main(["oci", "spec", "--image", "nope:1", "--store", str(store.root), "--bundle", str(bundle)]) == 2
    assert list(bundle.iterdir()) == []
