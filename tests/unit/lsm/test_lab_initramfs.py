"""The LSM lab's initramfs, built on the host from installed packages (no guest boot:
the lab itself is `bash scripts/dev lab`)."""

from __future__ import annotations

import glob
import gzip
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BUILD = REPO / "scripts" / "lab" / "build_initramfs.sh"


def _kernel_with_modules() -> str:
    for vmlinuz in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        kver = vmlinuz.removeprefix("/boot/vmlinuz-")
        if os.path.exists(f"/lib/modules/{kver}/modules.dep"):
            return kver
    pytest.skip("no installed kernel with its modules (Debian package linux-image-amd64)")


def _members(archive: bytes) -> dict[str, bytes]:
    """newc cpio entries: name -> data."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos + 110 <= len(archive):
        header = archive[pos:pos + 110]
        assert header[:6] == b"070701", header[:6]
        size, name_len = int(header[54:62], 16), int(header[94:102], 16)
        name_end = pos + 110 + name_len
        name = archive[pos + 110:name_end - 1].decode()
        data_start = (name_end + 3) & ~3
        out[name] = archive[data_start:data_start + size]
        pos = (data_start + size + 3) & ~3
        if name == "TRAILER!!!":
            break
    return out


def test_initramfs_has_init_busybox_and_modules_in_load_order(tmp_path: Path) -> None:
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    kver = _kernel_with_modules()
    out = tmp_path / "initramfs.gz"
    subprocess.run(["bash", str(BUILD), kver, str(out)], check=True)
    files = _members(gzip.decompress(out.read_bytes()))
    assert files["init"] == (REPO / "scripts" / "lab" / "init.sh").read_bytes()
    assert files["bin/busybox"] == Path("/bin/busybox").read_bytes()
    order = files["modules/order"].decode().split()
    # dependencies before the modules that need them; each once
    assert len(order) == len(set(order))
    for before, after in (("virtio.ko", "virtio_pci.ko"), ("9pnet.ko", "9pnet_virtio.ko"),
                          ("9pnet.ko", "9p.ko")):
        if before in order:  # a built-in module is not in the list
            assert order.index(before) < order.index(after), order
    for name in ("9p.ko", "9pnet_virtio.ko", "overlay.ko"):
        assert name in order and f"modules/{name}" in files


def test_a_dynamic_busybox_is_refused(tmp_path: Path) -> None:
    kver = _kernel_with_modules()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "busybox").symlink_to("/bin/ls")  # dynamically linked
    got = subprocess.run(["bash", str(BUILD), kver, str(tmp_path / "out.gz")],
                         capture_output=True, text=True, check=False,
                         env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    assert got.returncode == 1 and "not statically linked" in got.stderr
    assert not (tmp_path / "out.gz").exists()
