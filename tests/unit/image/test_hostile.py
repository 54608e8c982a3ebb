"""Hostile images (issue 13): nothing an archive holds may reach the host.

Each test builds the attack (tests/data/hostile/images/corpus.py), aims it at a scratch
"host" file or directory it watches, and checks that the host is exactly as before, that
no staging directory is left, and that a refusal is one line with exit 2."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _image_data import store_state
from tests.data.hostile.images import corpus

from stockade import cli
from stockade.errors import StockadeError
from stockade.image import export, spool
from stockade.image import store as store_module
from stockade.image.copytree import apply_layer
from stockade.image.digest import sha256_bytes
from stockade.image.fsutil import force_rmtree
from stockade.image.limits import Budget, Limits, parse_size
from stockade.image.store import LayerMeta, Store
from stockade.image.unpack import OVL_OPAQUE, unpack_layer

EMPTY = {"layers": [], "images": [], "tmp": [], "containers": [], "refs": []}
ROOTLESS = [True, pytest.param(False, marks=pytest.mark.skipif(
    os.geteuid() != 0, reason="unpacking as root (chown, devices, trusted xattrs) needs root"))]


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture()
def host(tmp_path: Path) -> Path:
    """A stand-in for the host: a directory with a 0600 file and a 0755 subdirectory."""
    d = tmp_path / "host"
    d.mkdir()
    (d / "victim").write_text("secret")
    os.chmod(d / "victim", 0o600)
    (d / "b").mkdir(mode=0o755)
    return d


def _snapshot(d: Path) -> dict[str, tuple[int, int, int, str]]:
    """mode, owner, links and content of everything in `d` (and its own mode, xattrs)."""
    out = {}
    for p in [d, *sorted(d.rglob("*"))]:
        st = os.lstat(p)
        body = p.read_text() if stat.S_ISREG(st.st_mode) else ",".join(sorted(os.listxattr(p, follow_symlinks=False)))
        out[str(p.relative_to(d))] = (st.st_mode, st.st_uid, st.st_nlink, body)
    return out


@pytest.fixture()
def untouched(host: Path) -> Iterator[Path]:
    """The host directory, checked unchanged at the end of the test."""
    before = _snapshot(host)
    yield host
    assert _snapshot(host) == before


def _refused(store: Store, path: Path, capsys: pytest.CaptureFixture[str], message: str, *options: str) -> None:
    """`image load` says one line with `message` and exits 2, and the store is as empty as before."""
    rc = cli.main(["image", "--store", str(store.root), "load", *options, str(path)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("stockade: ") and err.count("\n") == 1 and message in err, err
    assert store_state(store) == EMPTY


# -- the finishing pass chmod (the critical one) and its relatives -------------------------

ATTACKS = {
    "symlink": lambda h: corpus.chmod_through_symlink(str(h / "victim")),
    "relative-chain": lambda h: corpus.chmod_through_chain(str(h / "victim")),
    "nested-through-parent": lambda h: corpus.chmod_nested_through_parent(str(h)),
    "hardlink-to-symlink": lambda h: corpus.hardlink_symlink_to_host(str(h / "victim")),
}


@pytest.mark.parametrize("rootless", ROOTLESS)
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_unpacker_never_acts_through_a_symlink(tmp_path: Path, untouched: Path, attack: str, rootless: bool) -> None:
    root = tmp_path / "staging" / "layer" / "root"
    root.mkdir(parents=True)
    unpack_layer(io.BytesIO(ATTACKS[attack](untouched)), root, rootless=rootless)
    # the layer keeps what it said (a symlink is image content), the host is untouched (fixture)
    link = "a" if attack == "nested-through-parent" else "s" if attack.startswith("hardlink") else "d"
    assert stat.S_ISLNK(os.lstat(root / link).st_mode)


def test_chmod_attack_through_image_load(store: Store, tmp_path: Path, untouched: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus.archive(tmp_path / "evil.tar", [corpus.chmod_through_symlink(str(untouched / "victim"))])
    assert cli.main(["image", "--store", str(store.root), "load", str(path)]) == 0
    [rec] = store.images()
    assert os.readlink(store.layer_root(rec.layers[0]) / "d") == str(untouched / "victim")
    assert store_state(store)["tmp"] == []


def _wrong_digest_oci(tmp_path: Path, evil: bytes) -> Path:
    """An OCI layout whose manifest names a benign layer, with the evil bytes in its place."""
    benign = export.layer_tar([("f", "file", "ok")])
    files = export.oci_layout_files([benign], {}, ref_name="evil/image:1", compress=False)
    name = next(n for n, data in files.items() if data == benign)
    files[name] = evil
    return export.write_dir(tmp_path / "oci", files)


def _wrong_diff_id_docker(tmp_path: Path, evil: bytes) -> Path:
    """A docker-save archive whose config lists the diff_id of another layer."""
    benign = export.layer_tar([("f", "file", "ok")])
    files = export.docker_archive_files([benign], {}, repo_tags=["evil/image:1"])
    layer_path = next(n for n in files if n.endswith("layer.tar"))
    files[layer_path] = evil
    return export.write_tar(tmp_path / "evil.tar", files)


@pytest.mark.parametrize("shape", ["oci", "docker"])
def test_wrong_digest_is_refused_before_unpacking(store: Store, tmp_path: Path, untouched: Path, shape: str,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    evil = corpus.chmod_through_symlink(str(untouched / "victim"))
    path = (_wrong_digest_oci if shape == "oci" else _wrong_diff_id_docker)(tmp_path, evil)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a layer with a wrong digest was unpacked")

    monkeypatch.setattr(store_module, "unpack_layer", never)
    _refused(store, path, capsys, "digest mismatch")


@pytest.mark.parametrize("build", [
    lambda h: corpus.write_through_symlink(str(h)),
    lambda h: corpus.whiteout_through_symlink(str(h), "victim"),
    lambda h: corpus.opaque_through_symlink(str(h)),
], ids=["file", "whiteout", "opaque"])
@pytest.mark.parametrize("rootless", ROOTLESS)
def test_writes_through_a_symlinked_directory_refused(tmp_path: Path, untouched: Path, build: object,
                                                      rootless: bool) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(StockadeError, match="goes through a non-directory"):
        unpack_layer(io.BytesIO(build(untouched)), root, rootless=rootless)  # type: ignore[operator]
    if not rootless:
        assert OVL_OPAQUE not in os.listxattr(untouched)


def test_hardlink_through_a_symlinked_directory_refused(tmp_path: Path, untouched: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layer = export.layer_tar([("s", "symlink", str(untouched)), ("h", "hardlink", "s/victim")])
    with pytest.raises(StockadeError, match="is not a directory of this layer"):
        unpack_layer(io.BytesIO(layer), root, rootless=True)


# -- limits ------------------------------------------------------------------------------

class _Counting:
    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.read_bytes += len(data)
        return data


def test_size_limit_stops_the_stream_not_after_it(tmp_path: Path) -> None:
    stream = _Counting(corpus.zeros(32 << 20))
    (tmp_path / "root").mkdir()
    with pytest.raises(StockadeError, match="unpacked size limit"):
        unpack_layer(stream, tmp_path / "root", rootless=True, budget=Budget(Limits(max_size=1 << 20)))
    assert stream.read_bytes < 4 << 20  # stopped near the limit, 32 MiB were on offer
    assert (tmp_path / "root").stat().st_size < 1 << 20


def _gzip_oci(tmp_path: Path, layer: bytes) -> Path:
    files = export.oci_layout_files([layer], {}, ref_name="bomb/image:1")
    return export.write_dir(tmp_path / "oci", files)


def test_gzip_bomb_refused(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _gzip_oci(tmp_path, corpus.zeros(16 << 20))
    assert sum(p.stat().st_size for p in (path / "blobs/sha256").iterdir()) < 100 << 10
    _refused(store, path, capsys, "unpacked size limit", "--max-size", "4M")


def test_bomb_after_the_end_of_the_tar_refused(store: Store, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    layer = export.layer_tar([("f", "file", "small")]) + bytes(16 << 20)  # the digest covers the tail
    _refused(store, _gzip_oci(tmp_path, layer), capsys, "unpacked size limit", "--max-size", "4M")


@pytest.fixture()
def deep_tmp(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, emptied by the test: pytest's own clean-up of old runs recurses per level
    and would fail on the deep trees these tests make."""
    yield tmp_path
    for p in tmp_path.iterdir():
        assert force_rmtree(p)


def test_deep_tree_refused_then_loaded_and_removed(deep_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(deep_tmp / "store")
    path = corpus.archive(deep_tmp / "deep.tar", [corpus.deep_tree(2000)], "deep/image:1")
    _refused(store, path, capsys, "directory depth limit")
    # trusted: raised limits load it; 2000 levels is deeper than Python's recursion and,
    # with the store's prefix, longer than PATH_MAX
    assert cli.main(["image", "--store", str(store.root), "load", "--max-depth", "2000",
                     "--max-path", "4000", str(path)]) == 0
    [rec] = store.images()
    assert len(str(store.layer_root(rec.layers[0]))) + 4000 > os.pathconf("/", "PC_PATH_MAX")
    assert cli.main(["image", "--store", str(store.root), "rm", "deep/image:1"]) == 0
    assert cli.main(["image", "--store", str(store.root), "prune"]) == 0
    assert store_state(store) == EMPTY


def test_copy_fallback_walks_deeper_than_recursion(deep_tmp: Path) -> None:
    depth = sys.getrecursionlimit() + 200
    layer, copy = deep_tmp / "layer", deep_tmp / "copy"
    layer.mkdir()
    copy.mkdir()
    res = unpack_layer(io.BytesIO(corpus.deep_tree(depth)), layer, rootless=True,
                       budget=Budget(Limits(max_depth=depth, max_path=2 * depth)))
    apply_layer(layer, LayerMeta("sha256:" + "0" * 64, res.whiteouts, res.opaques, res.native, 0), copy)
    assert (copy / "/".join(["d"] * depth)).is_dir()


def test_prune_removes_a_deep_unreadable_leftover(deep_tmp: Path) -> None:
    """What an older stockade left after a RecursionError: a staging tree 3000 deep (longer
    than PATH_MAX), with 0000 directories and a symlink to the host, no live lock."""
    store = Store(deep_tmp / "store")
    host = deep_tmp / "hostdir"
    host.mkdir()
    (host / "keep").write_text("keep")
    store.ensure()
    fd = os.open(store.tmp_dir, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(3000):
        name = "load-dead" if i == 0 else "d"
        os.mkdir(name, dir_fd=fd)
        if i == 10:
            os.symlink(str(host), "s", dir_fd=fd)
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        if i % 500 == 1:
            os.fchmod(fd, 0)  # its child is made: now it is unreadable
        os.close(fd)
        fd = child
    os.close(fd)
    assert "1 leftover loads" in _prune(store)
    assert store_state(store) == EMPTY
    assert (host / "keep").read_text() == "keep"


def _prune(store: Store) -> str:
    out = io.StringIO()
    real, sys.stdout = sys.stdout, out
    try:
        assert cli.main(["image", "--store", str(store.root), "prune"]) == 0
    finally:
        sys.stdout = real
    return out.getvalue()


def test_force_rmtree_does_not_follow_symlinks(tmp_path: Path, untouched: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "to-host").symlink_to(untouched)
    (tree / "to-victim").symlink_to(untouched / "victim")
    assert force_rmtree(tree)
    assert not tree.exists()


@pytest.mark.parametrize(("layer", "options", "message"), [
    (lambda: corpus.many_entries(50), ("--max-entries", "20"), "entry count limit"),
    (lambda: corpus.long_path(300), ("--max-path", "200"), "path length limit"),
    (lambda: corpus.long_path(1100), (), "path length limit"),
    (lambda: export.layer_tar([("l", "symlink", "x" * 300)]), ("--max-path", "200"), "path length limit"),
    (lambda: corpus.huge_pax_header(2 << 20), (), "extended header"),
], ids=["entries", "path", "path-default", "link-target", "pax-header"])
def test_limits_refuse(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       layer: object, options: tuple[str, ...], message: str) -> None:
    path = corpus.archive(tmp_path / "x.tar", [layer()])  # type: ignore[operator]
    _refused(store, path, capsys, message, *options)


def test_entry_limit_counts_the_whole_load(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus.archive(tmp_path / "x.tar", [corpus.many_entries(15), export.layer_tar([("g", "file", "")] * 10)])
    _refused(store, path, capsys, "entry count limit", "--max-entries", "20")


def test_limits_from_env_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Limits.from_env({}) == Limits()
    env = {"STOCKADE_IMAGE_MAX_SIZE": "2G", "STOCKADE_IMAGE_MAX_DEPTH": "7"}
    assert Limits.from_env(env, max_depth=9) == Limits(max_size=2 << 30, max_depth=9)
    assert parse_size("512M", "x") == 512 << 20 and parse_size("1048576", "x") == 1 << 20
    for bad in ("0", "-1", "12Q", "", "1.5G"):
        with pytest.raises(StockadeError, match="expected a positive size"):
            parse_size(bad, "--max-size")
    with pytest.raises(StockadeError, match="STOCKADE_IMAGE_MAX_ENTRIES: found 'many'"):
        Limits.from_env({"STOCKADE_IMAGE_MAX_ENTRIES": "many"})


def test_bad_limit_option_is_one_line(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus.archive(tmp_path / "ok.tar", [export.layer_tar([("f", "file", "ok")])])
    _refused(store, path, capsys, "--max-size: found 'lots'", "--max-size", "lots")


def test_stdin_spool_is_limited(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool, "SLACK", 0)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(bytes(3 << 20))))
    _refused(store, Path("-"), capsys, "archive size (stdin) limit", "--max-size", "1M")


def test_sparse_holes_count_against_the_size_limit(tmp_path: Path) -> None:
    # A GNU sparse member: 1 byte of data says it is 64 MiB long.
    layer = corpus.sparse_file(64 << 20)
    (tmp_path / "root").mkdir()
    with pytest.raises(StockadeError, match="unpacked size limit"):
        unpack_layer(io.BytesIO(layer), tmp_path / "root", rootless=True, budget=Budget(Limits(max_size=1 << 20)))


def test_layer_meta_of_a_loaded_hostile_image(store: Store, tmp_path: Path, untouched: Path) -> None:
    """The image loads as content: whatever it says is recorded, nothing is followed."""
    path = corpus.archive(tmp_path / "evil.tar", [corpus.chmod_through_chain(str(untouched / "victim"))])
    [rec] = store.load(path)
    meta: LayerMeta = store.layer_meta(rec.layers[0])
    assert meta.diff_id == sha256_bytes(corpus.chmod_through_chain(str(untouched / "victim")))
    assert json.loads((store.images_dir / f"{rec.id.split(':')[1]}.json").read_text())["layers"] == list(rec.layers)


# -- the archive around the layers ---------------------------------------------------------

def test_fifo_planted_in_a_layout_refused_not_waited_for(store: Store, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _gzip_oci(tmp_path, export.layer_tar([("f", "file", "ok")]))
    blob = next(p for p in (path / "blobs/sha256").iterdir() if p.read_bytes()[:2] == b"\x1f\x8b")
    blob.unlink()
    os.mkfifo(blob)  # opened blocking, this would wait for a writer forever
    _refused(store, path, capsys, "is not a regular file")


def test_outer_archive_headers_and_members_bounded(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade.image import archive

    files = export.docker_archive_files([export.layer_tar([("f", "file", "ok")])], {}, repo_tags=["a:1"])
    path = export.write_tar(tmp_path / "a.tar", files)
    with tarfile.open(path, "a", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("padding")
        info.pax_headers = {"comment": "x" * (2 << 20)}
        tar.addfile(info, io.BytesIO(b""))
    _refused(store, path, capsys, "extended header")
    monkeypatch.setattr(archive, "MAX_MEMBERS", 2)  # the archive has 3
    _refused(store, export.write_tar(tmp_path / "b.tar", files), capsys, "more than 2 files")
