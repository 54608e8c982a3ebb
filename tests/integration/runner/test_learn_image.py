"""`stockade learn --image`: learn inside a stored image, then run the image under what
was learned (default: kill for everything else)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stockade.image.store import Store
from stockade.policy.loader import load_policy
from tests.integration.runner.test_run_image import APP, _app_layers, _load, base_layer, store  # noqa: F401

STOCKADE = [sys.executable, "-m", "stockade"]


def test_learn_inside_an_image_then_run_it(store: Store, tmp_path: Path, base_layer: bytes) -> None:  # noqa: F811
    _load(store, tmp_path, "app:1", _app_layers(base_layer), APP)
    out = tmp_path / "learned.yaml"
    learn = subprocess.run([*STOCKADE, "learn", "--image", "app:1", "-o", str(out)], capture_output=True,
                           text=True, timeout=120)
    assert learn.returncode == 0, learn.stderr
    policy = load_policy(str(out))
    assert policy.syscalls.default.kind.value == "kill"
    assert "execve" in policy.syscalls.allow
    run = subprocess.run([*STOCKADE, "run", "--policy", str(out), "--image", "app:1"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[0] == "from-image image-bar"
    assert not list(store.containers_dir.iterdir()) if store.containers_dir.is_dir() else True


def test_learn_image_and_rootfs_exclude_each_other(store: Store, tmp_path: Path) -> None:  # noqa: F811
    r = subprocess.run([*STOCKADE, "learn", "--image", "x:1", "--rootfs", str(tmp_path), "-o",
                        str(tmp_path / "o.yaml"), "--", "/bin/true"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "exclude each other" in r.stderr
    assert not (tmp_path / "o.yaml").exists()
