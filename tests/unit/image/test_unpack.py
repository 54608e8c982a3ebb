"""Safe layer extraction: whiteouts, and every escape the issue lists."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from _image_data import BASE, UPPER

from stockade.errors import StockadeError
from stockade.image.export import layer_tar
from stockade.image.unpack import OVL_OPAQUE, UnpackResult, unpack_layer


def _unpack(data: bytes, dest: Path, rootless: bool = True) -> UnpackResult:
    dest.mkdir(exist_ok=True)
    return unpack_layer(io.BytesIO(data), dest, rootless=rootless)


def test_plain_layer(tmp_path: Path) -> None:
    root = tmp_path / "root"
    res = _unpack(BASE, root)
    assert (root / "etc/keep").read_text() == "keep"
    assert os.readlink(root / "link") == "/etc/keep"
    assert os.stat(root / "bin/x").st_ino == os.stat(root / "bin/hard").st_ino
    assert res.whiteouts == () and res.opaques == ()


def test_whiteouts_recorded(tmp_path: Path) -> None:
    root = tmp_path / "root"
    res = _unpack(UPPER, root)
    assert res.whiteouts == ("etc/gone",)
    assert res.opaques == ("opq",)
    assert not any(p.name.startswith(".wh.") for p in root.rglob("*"))
    assert (root / "opq/new").read_text() == "new"


def test_whiteouts_native_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("overlayfs markers (mknod 0/0, trusted.* xattr) need root")
    root = tmp_path / "root"
    res = _unpack(UPPER, root, rootless=False)
    st = os.lstat(root / "etc/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(root / "opq", OVL_OPAQUE) == b"y"
    assert res.native


def test_same_layer_file_wins_over_its_whiteout(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _unpack(layer_tar([("a", "whiteout"), ("a", "file", "kept")]), root, rootless=os.geteuid() != 0)
    assert (root / "a").read_text() == "kept"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("../evil", "file", "x")], "path traversal"),
        ([("a/../../evil", "file", "x")], "path traversal"),
        ([("/abs/evil", "file", "x")], "absolute path"),
        ([("up", "symlink", "../../../etc")], "points out of the root"),
        ([("d", "dir"), ("d/up", "symlink", "../..")], "points out of the root"),
        ([("out", "symlink", "/tmp"), ("out/evil", "file", "x")], "non-directory"),
        ([("h", "hardlink", "../../etc/passwd")], "path traversal"),
        ([("h", "hardlink", "/etc/passwd")], "absolute path"),
        ([("h", "hardlink", "missing")], "target is not a file"),
        ([("null", "chr", "1:3")], "device node"),
        ([("../.wh.x", "file", "")], "path traversal"),
    ],
)
def test_escapes_refused(tmp_path: Path, entries: list[tuple[str, str, str]], message: str) -> None:
    root = tmp_path / "inner" / "root"
    root.parent.mkdir()
    with pytest.raises(StockadeError, match=message):
        _unpack(layer_tar(entries), root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inner"]
    assert sorted(p.name for p in root.parent.iterdir()) == ["root"]


def test_device_allowed_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    root = tmp_path / "root"
    _unpack(layer_tar([("null", "chr", "1:3")]), root, rootless=False)
    assert os.stat(root / "null").st_rdev == os.makedev(1, 3)


def test_trusted_xattrs_dropped(tmp_path: Path) -> None:
    """A layer must not be able to mark its own directories opaque or redirect overlayfs."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("d")
        info.type = tarfile.DIRTYPE
        info.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
        tar.addfile(info)
    root = tmp_path / "root"
    _unpack(buf.getvalue(), root, rootless=os.geteuid() != 0)
    with pytest.raises(OSError):
        os.getxattr(root / "d", OVL_OPAQUE)


def test_truncated_layer(tmp_path: Path) -> None:
    data = layer_tar([("big", "file", "x" * 10000)])
    with pytest.raises(StockadeError, match="truncated or corrupt"):
        _unpack(data[:3000], tmp_path / "root")


def test_setid_bits_dropped_rootless(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _unpack(layer_tar([("suid", "file", "x")], mode=0o4755), root)
    assert stat.S_IMODE(os.stat(root / "suid").st_mode) == 0o755


def test_whiteout_then_entries_below_it(tmp_path: Path) -> None:
    """`.wh.d` then `d/f` in one layer: the lower d stays hidden, d/f shows."""
    from stockade.image.copytree import apply_layer
    from stockade.image.store import LayerMeta

    rootless = os.geteuid() != 0
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _unpack(layer_tar([("d", "dir"), ("d/old", "file", "old")]), lower, rootless=rootless)
    res = _unpack(layer_tar([("d", "whiteout"), ("d/f", "file", "f")]), upper, rootless=rootless)
    merged = tmp_path / "merged"
    merged.mkdir()
    for root, r in ((lower, UnpackResult((), (), not rootless, 0)), (upper, res)):
        apply_layer(root, LayerMeta("sha256:" + "0" * 64, r.whiteouts, r.opaques, r.native, 0), merged)
    assert sorted(p.name for p in (merged / "d").iterdir()) == ["f"]
