"""Loading into the store: both archive shapes, verification, atomicity, sharing, rm/prune."""

from __future__ import annotations

import json
import multiprocessing
import os
import tarfile
from pathlib import Path

import pytest
from _image_data import BASE, CONFIG, OTHER, UPPER, store_state

from stockade import cli
from stockade.errors import StockadeError
from stockade.image import export
from stockade.image.config import ImageConfig
from stockade.image.digest import hex_of, sha256_bytes
from stockade.image.rootfs import prepare_rootfs
from stockade.image.store import Store, normalize_name


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    """A private store per test, never the host's /var/lib/stockade."""
    return Store(tmp_path / "store")


def _oci_dir(tmp: Path, layers: list[bytes] | None = None, **kw: object) -> tuple[Path, dict[str, bytes]]:
    files = export.oci_layout_files(layers or [BASE, UPPER], CONFIG, ref_name="example/app:1", **kw)  # type: ignore[arg-type]
    return export.write_dir(tmp / "oci", files), files


def _docker_tar(tmp: Path, layers: list[bytes] | None = None, name: str = "example/app:1") -> tuple[Path, dict[str, bytes]]:
    files = export.docker_archive_files(layers or [BASE, UPPER], CONFIG, repo_tags=[name])
    return export.write_tar(tmp / f"docker-{hex_of(export.config_digest(files))[:8]}.tar", files), files


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_text()
    return out


MERGED = {
    "bin": "dir", "bin/hard": "x1", "bin/x": "x2",
    "etc": "dir", "etc/keep": "keep",
    "link": "-> /etc/keep", "rel": "-> etc/keep",
    "newdir": "dir", "newdir/f": "f",
    "opq": "dir", "opq/new": "new",
}


@pytest.mark.parametrize("shape", ["oci-dir", "oci-tar", "oci-uncompressed", "docker-tar"])
def test_load_and_merge(store: Store, tmp_path: Path, shape: str) -> None:
    if shape == "docker-tar":
        path, files = _docker_tar(tmp_path)
    elif shape == "oci-uncompressed":
        path, files = _oci_dir(tmp_path, compress=False)
    else:
        path, files = _oci_dir(tmp_path)
        if shape == "oci-tar":
            path = export.write_tar(tmp_path / "oci.tar", files)
    [rec] = store.load(path)
    assert rec.id == export.config_digest(files)
    assert rec.names == ("example/app:1",)
    assert rec.config.entrypoint == ("/bin/x",) and rec.config.user == "1000:1000"
    assert rec.config.exposed_ports == ("8080/tcp",) and rec.config.volumes == ("/data",)
    assert dict(rec.config.labels) == {"org.example": "yes"}
    with prepare_rootfs(store, "example/app:1", read_only=False, keep=False, method="copy") as root:
        assert _tree(root.path) == MERGED
        cdir = root.container_dir
    assert not cdir.exists()
    assert store_state(store)["tmp"] == []


def test_shared_layer_stored_once(store: Store, tmp_path: Path) -> None:
    a, _ = _docker_tar(tmp_path, [BASE, UPPER], "a:1")
    b, _ = _oci_dir(tmp_path, [BASE, OTHER])  # other shape, same bottom layer
    store.load(a)
    store.load(b, tags=["b:1"])
    assert len(store.images()) == 2
    assert len(list(store.layers_dir.iterdir())) == 3
    # removing one image keeps the shared layer for the other
    store.remove("a:1")
    assert len(list(store.layers_dir.iterdir())) == 2
    assert store.resolve("b:1").layers[0] in {"sha256:" + p.name for p in store.layers_dir.iterdir()}


def test_second_load_reads_no_layer(store: Store, tmp_path: Path) -> None:
    path, files = _oci_dir(tmp_path)
    store.load(path)
    for name in files:
        if name.startswith("blobs/") and len(files[name]) > 1000:
            (path / name).write_bytes(b"garbage")  # a layer blob read again would fail
    for f in (path / "blobs/sha256").iterdir():
        data = f.read_bytes()
        if data.startswith(b"\x1f\x8b"):
            f.write_bytes(b"garbage")
    [rec] = store.load(path)
    assert rec.names == ("example/app:1",)


def _flip_byte(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


def test_tampered_layer_refused(store: Store, tmp_path: Path) -> None:
    path, files = _docker_tar(tmp_path)
    layer_path = next(n for n in files if n.endswith("layer.tar") and files[n] == UPPER)
    files[layer_path] = _flip_byte(files[layer_path], files[layer_path].index(b"x2"))
    export.write_tar(path, files)
    before = store_state(store)
    with pytest.raises(StockadeError, match="digest mismatch"):
        store.load(path)
    assert store_state(store) == before | {"layers": [], "images": [], "tmp": [], "containers": []}


def test_tampered_compressed_blob_refused(store: Store, tmp_path: Path) -> None:
    path, files = _oci_dir(tmp_path)
    blob = next(p for p in (path / "blobs/sha256").iterdir() if p.read_bytes()[:2] == b"\x1f\x8b")
    data = blob.read_bytes()
    blob.write_bytes(data[:-9] + bytes([data[-9] ^ 1]) + data[-8:])  # gzip crc region
    with pytest.raises(StockadeError, match="digest mismatch"):
        store.load(path)
    assert store_state(store)["layers"] == [] and store_state(store)["images"] == []


def test_tampered_tar_header_still_a_digest_error(store: Store, tmp_path: Path) -> None:
    path, files = _oci_dir(tmp_path, compress=False)
    blob = next(p for p in (path / "blobs/sha256").iterdir() if p.read_bytes() == UPPER)
    blob.write_bytes(_flip_byte(UPPER, 100))  # a header byte: the tar itself breaks first
    with pytest.raises(StockadeError, match="digest mismatch"):
        store.load(path)
    assert store_state(store)["layers"] == [] and store_state(store)["images"] == []


def test_missing_blob(store: Store, tmp_path: Path) -> None:
    path, files = _oci_dir(tmp_path)
    victim = next(p for p in (path / "blobs/sha256").iterdir() if p.read_bytes()[:2] == b"\x1f\x8b")
    victim.unlink()
    with pytest.raises(StockadeError, match="missing blob"):
        store.load(path)
    assert store_state(store)["images"] == [] and store_state(store)["layers"] == []


def test_unknown_media_type(store: Store, tmp_path: Path) -> None:
    path, _ = _oci_dir(tmp_path, layer_media_type="application/x-strange")
    with pytest.raises(StockadeError, match="unknown media type"):
        store.load(path)
    assert store_state(store)["images"] == []


def test_truncated_archive_cli_exit_2(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _docker_tar(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    rc = cli.main(["image", "--store", str(store.root), "load", str(path)])
    assert rc == 2
    assert "stockade:" in capsys.readouterr().err
    assert store_state(store)["images"] == [] and store_state(store)["layers"] == []
    assert store_state(store)["tmp"] == []


def test_traversal_layer_leaves_nothing(store: Store, tmp_path: Path) -> None:
    evil = export.layer_tar([("../../../../escaped", "file", "x")])
    path, _ = _docker_tar(tmp_path, [BASE, evil])
    with pytest.raises(StockadeError, match="path traversal"):
        store.load(path)
    assert not list(tmp_path.rglob("escaped"))
    assert store_state(store) == {"layers": [], "images": [], "tmp": [], "containers": [], "refs": []}


def test_manifest_paths_cannot_escape(store: Store, tmp_path: Path) -> None:
    files = export.docker_archive_files([BASE], {})
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"] = ["../../etc/passwd"]
    files["manifest.json"] = json.dumps(manifest).encode()
    path = export.write_dir(tmp_path / "d", files)
    with pytest.raises(StockadeError, match="escapes the archive"):
        store.load(path)


def test_not_an_archive(store: Store, tmp_path: Path) -> None:
    (tmp_path / "x.tar").write_bytes(b"hello")
    with pytest.raises(StockadeError, match="not a readable tar"):
        store.load(tmp_path / "x.tar")
    with pytest.raises(StockadeError, match="neither a docker save"):
        store.load(tmp_path)


@pytest.mark.parametrize("content", [b"hello", b"\x1f\x8b" + b"\0" * 64, b"root:x:0:0::/root:/bin/sh\n" * 40])
def test_not_an_archive_is_one_line_exit_2(store: Store, tmp_path: Path, content: bytes,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # tarfile's message for a file of no known format is five lines (one per method it
    # tried); it used to reach the terminal as they were
    (tmp_path / "x.tar").write_bytes(content)
    assert cli.main(["image", "--store", str(store.root), "load", str(tmp_path / "x.tar")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"stockade: {tmp_path / 'x.tar'}: not a readable tar"), err
    assert store_state(store)["images"] == [] and store_state(store)["tmp"] == []


def _load_worker(root: str, path: str) -> str:
    return Store(Path(root)).load(Path(path))[0].id


def test_concurrent_loads(store: Store, tmp_path: Path) -> None:
    path, files = _docker_tar(tmp_path)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        ids = pool.starmap(_load_worker, [(str(store.root), str(path))] * 8)
    assert set(ids) == {export.config_digest(files)}
    assert len(list(store.layers_dir.iterdir())) == 2
    assert store_state(store)["tmp"] == []
    with prepare_rootfs(store, ids[0], read_only=False, keep=False, method="copy") as root:
        assert _tree(root.path) == MERGED


def test_resolve_rm_prune(store: Store, tmp_path: Path) -> None:
    a, files = _docker_tar(tmp_path, [BASE, UPPER], "a")
    [rec] = store.load(a, tags=["alias:2"])
    assert store.resolve("a").id == rec.id  # :latest implied
    assert store.resolve("docker.io/library/a:latest").id == rec.id
    assert store.resolve(rec.short_id).id == rec.id
    assert store.resolve(rec.id).id == rec.id
    assert store.resolve(f"a@{rec.id}").id == rec.id
    with pytest.raises(StockadeError, match="several names"):
        store.remove(rec.short_id)
    store.remove("alias:2")
    assert store.resolve("a").names == ("a:latest",)
    # untagging the last name deletes the image and its now unused layers
    store.remove("a")
    assert store.images() == [] and list(store.layers_dir.iterdir()) == []
    # prune: an untagged image goes, a tagged one stays (unless --all)
    store.load(a)
    b, _ = _docker_tar(tmp_path, [OTHER], "b:1")
    store.load(b)
    store.remove("b:1")
    store.load(b)
    refs = store.refs()
    refs.pop("a:latest")
    store.refs_path.write_text(json.dumps(refs))  # simulate a tag that moved away
    rep = store.prune()
    assert rep.images == (export.config_digest(files),)
    assert [r.names for r in store.images()] == [("b:1",)]
    rep = store.prune(all_images=True)
    assert store.images() == [] and list(store.layers_dir.iterdir()) == []


def test_in_use_image_keeps_layers(store: Store, tmp_path: Path) -> None:
    a, _ = _docker_tar(tmp_path, [BASE], "a:1")
    store.load(a)
    with prepare_rootfs(store, "a:1", read_only=False, keep=False, method="copy"):
        with pytest.raises(StockadeError, match="in use"):
            store.remove("a:1")
        store.prune(all_images=True)
        assert len(list(store.layers_dir.iterdir())) == 1
    store.prune(all_images=True)
    assert list(store.layers_dir.iterdir()) == []


def test_keep_leaves_writable_layer(store: Store, tmp_path: Path) -> None:
    a, _ = _docker_tar(tmp_path, [BASE], "a:1")
    store.load(a)
    with prepare_rootfs(store, "a:1", read_only=False, keep=True, method="copy") as root:
        (root.path / "written").write_text("w")
        cdir = root.container_dir
    assert (cdir / "rootfs" / "written").read_text() == "w"
    assert store.prune().containers == 0  # kept on purpose
    assert cdir.exists()
    store.remove("a:1")
    assert len(list(store.layers_dir.iterdir())) == 1  # the kept writable layer needs it
    rep = store.prune(all_images=True)
    assert rep.containers == 1 and not cdir.exists()
    assert list(store.layers_dir.iterdir()) == []


def test_cli_ls_inspect(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, files = _docker_tar(tmp_path)
    base = ["image", "--store", str(store.root)]
    assert cli.main([*base, "load", str(a)]) == 0
    assert cli.main([*base, "ls"]) == 0
    assert "example/app:1" in capsys.readouterr().out
    assert cli.main([*base, "inspect", "example/app:1"]) == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert doc["Id"] == export.config_digest(files)
    assert doc["Config"]["Entrypoint"] == ["/bin/x"] and doc["Config"]["WorkingDir"] == "/etc"
    assert doc["Config"]["Env"] == ["PATH=/bin", "A=1"] and doc["Config"]["User"] == "1000:1000"
    assert doc["Config"]["ExposedPorts"] == ["8080/tcp"] and doc["Config"]["Volumes"] == ["/data"]
    assert doc["Config"]["Labels"] == {"org.example": "yes"}
    assert cli.main([*base, "inspect", "nope:1"]) == 2


def test_normalize_name() -> None:
    assert normalize_name("busybox") == "busybox:latest"
    assert normalize_name("docker.io/library/busybox:1") == "busybox:1"
    assert normalize_name("localhost:5000/x") == "localhost:5000/x:latest"


def test_gzipped_docker_save(store: Store, tmp_path: Path) -> None:
    """`docker save | gzip > x.tar.gz` loads too."""
    import gzip

    path, _ = _docker_tar(tmp_path)
    gz = tmp_path / "x.tar.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert tarfile.is_tarfile(gz)
    [rec] = store.load(gz)
    assert rec.names == ("example/app:1",)


def test_read_file_through_layers(store: Store, tmp_path: Path) -> None:
    """`run --dry-run` resolves the image's User from the layers, without a mount."""
    import functools

    from stockade.image.process import resolve_process

    l1 = export.layer_tar([("etc", "dir"), ("etc/passwd", "file", "app:x:1000:1000::/home/app:/bin/sh\n")])
    l2 = export.layer_tar([("etc/passwd", "whiteout")])
    l3 = export.layer_tar([("etc", "opaque"), ("etc/group", "file", "g:x:5:\n")])
    l4 = export.layer_tar([("etc/passwd", "file", "app:x:2000:2000::/:/bin/sh\n")])
    for name, layers in (("one", [l1]), ("two", [l1, l2]), ("three", [l1, l3]), ("four", [l1, l2, l4])):
        path, _ = _docker_tar(tmp_path, layers, f"{name}:1")
        store.load(path)
    read = {n: store.read_file(store.resolve(f"{n}:1"), "etc/passwd") for n in ("one", "two", "three", "four")}
    assert read == {"one": b"app:x:1000:1000::/home/app:/bin/sh\n", "two": None, "three": None,
                    "four": b"app:x:2000:2000::/:/bin/sh\n"}
    rec = store.resolve("four:1")
    r = resolve_process(ImageConfig(cmd=("x",), user="app"), [], _Root(),
                        rootfs=functools.partial(store.read_file, rec))
    assert (r.uid, r.gid) == (2000, 2000)


class _Root:
    uid = 0
    gid = 0


# struct vfs_cap_data, revision 2, effective, permitted = CAP_NET_RAW (bit 13)
CAP_NET_RAW = "\x01\x00\x00\x02" + "\x00\x20\x00\x00" + "\x00" * 12


def test_privileged_files_recorded(store: Store, tmp_path: Path) -> None:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        su = tarfile.TarInfo("su")
        su.mode, su.size = 0o4755, 1
        tar.addfile(su, io.BytesIO(b"x"))
        ping = tarfile.TarInfo("ping")
        ping.size, ping.pax_headers = 1, {"SCHILY.xattr.security.capability": CAP_NET_RAW}
        tar.addfile(ping, io.BytesIO(b"x"))
    path, _ = _docker_tar(tmp_path, [BASE, buf.getvalue()], "priv:1")
    store.load(path)
    assert store.privileged_files(store.resolve("priv:1")) == ("/su (setuid)", "/ping (file capabilities)")


def test_describe_rootfs(store: Store, tmp_path: Path) -> None:
    from stockade.image.rootfs import describe_rootfs

    path, files = _docker_tar(tmp_path)
    store.load(path)
    line = describe_rootfs(store, "example/app:1", read_only=False, method="copy")
    assert line == (f"image example/app:1 ({export.config_digest(files)}, 2 layers): "
                    "rootfs is a copy of the layers")


def test_read_file_never_follows_symlinks(store: Store, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("host:x:0:0::/:/bin/sh\n")
    layer = export.layer_tar([("etc", "symlink", str(secret))])
    path, _ = _docker_tar(tmp_path, [layer], "sym:1")
    store.load(path)
    assert store.read_file(store.resolve("sym:1"), "etc/passwd") is None


def test_resolve_by_manifest_digest(store: Store, tmp_path: Path) -> None:
    path, files = _oci_dir(tmp_path)
    [rec] = store.load(path)
    assert rec.manifest_digest is not None
    assert store.resolve(rec.manifest_digest).id == rec.id
    assert store.resolve(f"example/app@{rec.manifest_digest}").id == rec.id
    with pytest.raises(StockadeError, match="no such image"):
        store.resolve("sha256:" + "0" * 64)


def test_docker25_save_layout(store: Store, tmp_path: Path) -> None:
    """docker >= 25 writes an OCI layout and a manifest.json naming blobs/sha256/... paths."""
    files = export.oci_layout_files([BASE, UPPER], CONFIG, compress=False)
    cfg = export.config_digest(files)
    files["manifest.json"] = json.dumps([{
        "Config": f"blobs/sha256/{hex_of(cfg)}", "RepoTags": ["new/docker:1"],
        "Layers": [f"blobs/sha256/{hex_of(sha256_bytes(x))}" for x in (BASE, UPPER)],
    }]).encode()
    [rec] = store.load(export.write_tar(tmp_path / "d25.tar", files))
    assert rec.id == cfg and rec.names == ("new/docker:1",)


def test_cli_load_stdin(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    path, files = _docker_tar(tmp_path)
    fake = io.TextIOWrapper(io.BytesIO(path.read_bytes()))
    monkeypatch.setattr(sys, "stdin", fake)
    assert cli.main(["image", "--store", str(store.root), "load", "-"]) == 0
    assert store.resolve("example/app:1").id == export.config_digest(files)
    assert list(store.tmp_dir.iterdir()) == []


def test_cli_load_stdin_error_names_stdin(store: Store, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # names "stdin", not the temporary spool file the bytes were copied to (gone by then)
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hi\n")))
    assert cli.main(["image", "--store", str(store.root), "load", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stockade: stdin: not a readable tar archive") and err.count("\n") == 1, err
    assert list(store.tmp_dir.iterdir()) == []


def test_read_only_directories_copied_and_cleaned(store: Store, tmp_path: Path) -> None:
    """A 0555 directory must neither block the copy nor its removal (rootless: no CAP_DAC)."""
    ro = export.layer_tar([("ro", "dir"), ("ro/f", "file", "f")], mode=0o555)
    ro2 = export.layer_tar([("ro", "dir"), ("ro/g", "file", "g")], mode=0o555)
    path, _ = _docker_tar(tmp_path, [ro, ro2], "ro:1")
    store.load(path)
    with prepare_rootfs(store, "ro:1", read_only=False, keep=False, method="copy") as root:
        assert sorted(p.name for p in (root.path / "ro").iterdir()) == ["f", "g"]
        assert os.stat(root.path / "ro").st_mode & 0o777 == 0o555
    assert list(store.containers_dir.iterdir()) == []
    store.prune(all_images=True)
    assert store.images() == [] and list(store.layers_dir.iterdir()) == []


def test_rm_by_name_that_looks_like_an_id_prefix(store: Store, tmp_path: Path) -> None:
    path, files = _docker_tar(tmp_path, [OTHER], "x:1")
    [rec] = store.load(path, tags=[hex_of(export.config_digest(files))[:1]])
    short = hex_of(rec.id)[:1]  # a one-character name equal to the ID's first character
    assert store.remove(short) == [f"untagged {short}:latest"]
    assert store.resolve("x:1").id == rec.id


def test_materialize_rootfs(store: Store, tmp_path: Path) -> None:
    from stockade.image.rootfs import materialize_rootfs

    path, _ = _docker_tar(tmp_path)
    store.load(path)
    dest = tmp_path / "bundle" / "rootfs"
    materialize_rootfs(store, "example/app:1", dest)
    assert _tree(dest) == MERGED
    with pytest.raises(StockadeError, match="not empty"):
        materialize_rootfs(store, "example/app:1", dest)


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from stockade.image import store as store_mod

    monkeypatch.setenv("STOCKADE_STORE", str(tmp_path / "s"))
    assert store_mod.default_root() == tmp_path / "s"
    monkeypatch.delenv("STOCKADE_STORE")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert store_mod.default_root() == Path("/var/lib/stockade")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert store_mod.default_root() == tmp_path / "xdg" / "stockade"
