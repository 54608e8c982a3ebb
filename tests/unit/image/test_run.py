"""image_for_run: what `stockade run --image` gets, dry run included."""

from __future__ import annotations

from pathlib import Path

import pytest
from _image_data import BASE, CONFIG, UPPER

from stockade.errors import StockadeError
from stockade.image import export
from stockade.image.run import image_for_run
from stockade.image.store import Store

PASSWD = export.layer_tar([("etc/passwd", "file", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")])


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    cfg = dict(CONFIG, User="app")
    s.load(export.write_tar(tmp_path / "a.tar", export.docker_archive_files(
        [BASE, UPPER, PASSWD], cfg, repo_tags=["app:1"])))
    return s


def test_dry_run_mounts_nothing(store: Store) -> None:
    run = image_for_run("app:1", [], uid=0, gid=0, read_only=True, dry_run=True, store=store,
                        method="copy")
    assert run.rootfs is None and run.rootfs_path is None
    assert run.process.argv == ["/bin/x", "--flag"]
    assert (run.process.uid, run.process.gid) == (1000, 1000)  # resolved from the layers
    assert run.lines[0].startswith("image app:1 (sha256:")
    assert list(store.containers_dir.iterdir()) == []


def test_policy_user_wins(store: Store) -> None:
    run = image_for_run("app:1", ["--other"], uid=2000, gid=2000, read_only=False, dry_run=True,
                        store=store)
    assert (run.process.uid, run.process.gid) == (2000, 2000)
    assert run.process.argv == ["/bin/x", "--other"]
    assert run.lines[1] == ("refused: image User 'app' asks for uid 1000, gid 1000; "
                            "the policy runs as uid 2000, gid 2000")


def test_prepared_and_cleaned(store: Store) -> None:
    with image_for_run("app:1", [], uid=0, gid=0, read_only=False, store=store, method="copy") as run:
        assert run.rootfs is not None
        assert (run.rootfs.path / "bin/x").read_text() == "x2"
        assert run.process.cwd == "/etc" and "HOME=/home/app" in run.process.env
    assert list(store.containers_dir.iterdir()) == []


def test_unknown_image(store: Store) -> None:
    with pytest.raises(StockadeError, match="no such image"):
        image_for_run("nope:1", [], uid=0, gid=0, read_only=False, store=store)
