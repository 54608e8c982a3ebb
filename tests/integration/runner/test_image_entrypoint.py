"""`stockade run --image` the Docker way (issue 16): `-- ARGS` replace the image's Cmd and
keep its Entrypoint; `--entrypoint` replaces the Entrypoint (and drops the image's Cmd);
`--entrypoint ""` clears it. The image is built here from the host's static busybox."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.image import export
from stockade.image.store import Store
from tests.conftest import require_root

CLI = [sys.executable, "-m", "stockade", "run"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_root()
    busybox = shutil.which("busybox")
    if busybox is None or b"statically linked" not in subprocess.run(
            ["file", "-L", busybox], capture_output=True).stdout:
        pytest.skip("no static busybox on this host to build a test image from")
    base = tmp_path_factory.mktemp("img")
    tools = export.layer_tar([("bin", "dir"), ("bin/busybox", "file", Path(busybox).read_bytes())],
                             mode=0o755)
    root = export.layer_tar([(d, "dir") for d in ("etc", "proc", "dev", "sys", "tmp", "data")]
                            + [("etc/passwd", "file", "root:x:0:0::/:/bin/sh\n"),
                               ("data/old", "file", "old")])
    config = {"Entrypoint": ["/bin/busybox", "echo", "EP"], "Cmd": ["image-cmd"]}
    s = Store(base / "store")
    s.load(export.write_tar(base / "a.tar", export.docker_archive_files(
        [tools, root], config, repo_tags=["bb:1"])))
    return str(base / "store")


def _run(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--image", "bb:1", "--store", store, *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "out"), [
    ((), "EP image-cmd"),  # Entrypoint + Cmd
    (("--", "mine"), "EP mine"),  # -- ARGS replace the Cmd only
    (("--entrypoint", "/bin/busybox", "--", "echo", "replaced"), "replaced"),
    (("--entrypoint", "", "--", "/bin/busybox", "echo", "cleared"), "cleared"),
])
def test_docker_rules(store: str, args: tuple[str, ...], out: str) -> None:
    proc = _run(store, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == out


def test_entrypoint_drops_the_image_cmd(store: str) -> None:
    proc = _run(store, "--entrypoint", "/bin/busybox")  # busybox with no applet: usage
    assert "image-cmd" not in proc.stdout + proc.stderr


def test_entrypoint_without_image_is_refused() -> None:
    proc = subprocess.run([*CLI, "--entrypoint", "/bin/sh", "--", "true"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--entrypoint go with --image" in proc.stderr


def test_root_owned_files_and_the_writable_layer(store: str, tmp_path: Path) -> None:
    """As in Docker: the image's root-owned files are root's inside (idmapped layers), and
    root inside writes them (copy-up into the container's own upper layer)."""
    policy = tmp_path / "rw.yaml"
    policy.write_text("stockade: 1\nname: rw\nextends: [default]\nfilesystem: {root: writable}\n")
    proc = _run(store, "--policy", str(policy), "--entrypoint", "/bin/busybox", "--", "sh", "-c",
                "stat -c '%u %g' /data /data/old; echo more >> /data/old && echo new > /data/f"
                " && cat /data/old /data/f && grep ' / ' /proc/self/mountinfo")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:4] == ["0 0", "0 0", "oldmore", "new"]  # nobody's without idmapped layers
    assert " - overlay " in lines[4] and "lowerdir+=" in lines[4]  # rebuilt by the runner
    layers = list((Path(store) / "layers").glob("*/root/data/old"))
    assert [p.read_text() for p in layers] == ["old"]  # the image itself is untouched
    assert list((Path(store) / "containers").iterdir()) == []  # removed at the end
    with open("/proc/self/mountinfo") as fh:
        assert store not in fh.read()  # no overlay left mounted on the host


def test_dry_run_shows_the_idmapped_layers(store: str) -> None:
    """--dry-run plans the image's root as the run builds it (on idmapped layers)."""
    proc = _run(store, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "the image's overlay rebuilt on idmapped layers" in proc.stdout
    assert "set-id guard" not in proc.stdout  # an image's root alone brings none
