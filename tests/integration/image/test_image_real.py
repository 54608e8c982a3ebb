"""Images from real tools on this machine: `docker save` of `docker import`ed and `docker
load`ed images, OCI layouts from skopeo, the rootfs on the real kernel's overlayfs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Dockerd, require_root, require_tool

from stockade import cli
from stockade.errors import StockadeError
from stockade.image import export
from stockade.image.config import ImageConfig
from stockade.image.process import resolve_process
from stockade.image.rootfs import prepare_rootfs
from stockade.image.store import Store

STOCKADE = [sys.executable, "-m", "stockade"]
# Files docker's init layer adds to every container: not image content.
DOCKER_INIT = {".dockerenv", "dev", "proc", "sys", "etc/hostname", "etc/hosts", "etc/mtab",
               "etc/resolv.conf"}

BASE = export.layer_tar([
    ("etc", "dir"), ("etc/keep", "file", "keep"), ("etc/gone", "file", "gone"),
    ("opq", "dir"), ("opq/old", "file", "old"), ("opq/sub", "dir"), ("opq/sub/deep", "file", "deep"),
    ("bin", "dir"), ("bin/x", "file", "x1"), ("bin/hard", "hardlink", "bin/x"),
    ("link", "symlink", "/etc/keep"),
])
UPPER = export.layer_tar([
    ("etc/gone", "whiteout"), ("opq", "opaque"), ("opq/new", "file", "new"),
    ("bin/x", "file", "x2"), ("newdir", "dir"), ("newdir/f", "file", "f"),
])
EXTRA = export.layer_tar([("extra", "file", "extra")])


@pytest.fixture(scope="module")
def archives(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every archive made once per module, by docker and skopeo."""
    d = tmp_path_factory.mktemp("archives")
    out: dict[str, Path] = {}
    out["busybox"] = d / "busybox.tar"
    dockerd.docker("save", "-o", str(out["busybox"]), dockerd.image)
    # A multi-layer image with whiteouts: layers made here, image assembled by docker itself
    # (docker load, then docker save writes its own archive of it).
    crafted = export.write_tar(d / "crafted-in.tar", export.docker_archive_files(
        [BASE, UPPER], {"Entrypoint": ["/bin/busybox"], "Cmd": ["true"], "User": "65534:65534",
                        "Env": ["FOO=bar"], "WorkingDir": "/opq"}, repo_tags=["craft/ml:1"]))
    dockerd.docker("load", "-i", str(crafted))
    # A second image sharing the bottom layer with the first.
    shared = export.write_tar(d / "shared-in.tar", export.docker_archive_files(
        [BASE, EXTRA], {"Cmd": ["/bin/x"]}, repo_tags=["craft/shared:1"]))
    dockerd.docker("load", "-i", str(shared))
    out["multi"] = d / "multi.tar"
    dockerd.docker("save", "-o", str(out["multi"]), "craft/ml:1", "craft/shared:1")
    out["ml"] = d / "ml.tar"
    dockerd.docker("save", "-o", str(out["ml"]), "craft/ml:1")
    if shutil.which("skopeo"):
        for name, ref in (("busybox", dockerd.image), ("ml", "craft/ml:1")):
            oci = d / f"{name}-oci"
            subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{out[name]}",
                            f"oci:{oci}:{ref}"], check=True, capture_output=True, timeout=60)
            out[f"{name}-oci"] = oci
            out[f"{name}-oci.tar"] = d / f"{name}-oci.tar"
            with tarfile.open(out[f"{name}-oci.tar"], "w") as tar:
                tar.add(oci, arcname=".")
    return out


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    require_root()
    s = Store(tmp_path / "store")
    yield s
    for c in s.containers_dir.glob("*/merged"):
        subprocess.run(["umount", "-l", str(c)], capture_output=True)


def _skopeo(archives: dict[str, Path], key: str) -> Path:
    if key not in archives:
        pytest.skip("skopeo is not installed")
    return archives[key]


def _chroot(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(root), "/bin/sh", "-c", script], capture_output=True,
                          text=True, timeout=20)


def _layers_digest(store: Store) -> str:
    """A hash over every file of every stored layer: a container must never change it."""
    h = hashlib.sha256()
    for p in sorted(store.layers_dir.rglob("*")):
        st = os.lstat(p)
        h.update(f"{p}:{st.st_mode}:{st.st_size}:{st.st_mtime_ns}".encode())
        if stat.S_ISREG(st.st_mode):
            h.update(p.read_bytes())
    return h.hexdigest()


def _docker_view(dockerd: Dockerd, image: str) -> dict[str, tuple[str, bytes, int]]:
    """The merged filesystem as docker sees it: `docker create` + `docker export`."""
    cid = dockerd.docker("create", "--network", "none", image).stdout.strip()
    try:
        env = dict(os.environ, DOCKER_HOST=dockerd.host)
        data = subprocess.run(["docker", "export", cid], capture_output=True, check=True, env=env).stdout
    finally:
        dockerd.docker("rm", cid, check=False)
    view = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            name = m.name.rstrip("/")
            if name in DOCKER_INIT or name.split("/")[0] in DOCKER_INIT:
                continue
            f = tar.extractfile(m) if m.isreg() else None
            kind = "dir" if m.isdir() else "sym" if m.issym() else "file"
            view[name] = (kind, f.read() if f else m.linkname.encode(), m.mode & 0o7777 if kind != "sym" else 0)
    return view


def _our_view(root: Path) -> dict[str, tuple[str, bytes, int]]:
    view = {}
    for p in root.rglob("*"):
        st = os.lstat(p)
        name = str(p.relative_to(root))
        if stat.S_ISDIR(st.st_mode):
            view[name] = ("dir", b"", stat.S_IMODE(st.st_mode))
        elif stat.S_ISLNK(st.st_mode):
            view[name] = ("sym", os.readlink(p).encode(), 0)
        else:
            view[name] = ("file", p.read_bytes(), stat.S_IMODE(st.st_mode))
    return view


def test_docker_save_busybox_runs(store: Store, archives: dict[str, Path], dockerd: Dockerd) -> None:
    [rec] = store.load(archives["busybox"])
    assert rec.names == (dockerd.image,)
    inspect = json.loads(dockerd.docker("image", "inspect", dockerd.image).stdout)[0]
    assert rec.id == inspect["Id"]
    assert list(rec.layers) == inspect["RootFS"]["Layers"]
    for read_only in (False, True):
        with prepare_rootfs(store, dockerd.image, read_only=read_only, keep=False) as root:
            assert root.method == ("bind-ro" if read_only else "overlay")
            r = _chroot(root.path, "echo hello > /tmp/f && cat /tmp/f")
            if read_only:
                assert "Read-only file system" in r.stderr
            else:
                assert r.stdout == "hello\n", r.stderr
                assert (root.container_dir / "upper/tmp/f").exists()
    assert list(store.containers_dir.iterdir()) == []


@pytest.mark.parametrize("key", ["busybox-oci", "busybox-oci.tar"])
def test_skopeo_oci_layout_shares_layer(store: Store, archives: dict[str, Path], key: str) -> None:
    store.load(archives["busybox"])
    [rec] = store.load(_skopeo(archives, key), tags=["from/skopeo:1"])
    # skopeo rewrites the config (another image ID) and gzips the layer, but the diff_id
    # (the unpacked content) is the same: stored once.
    assert len(store.images()) == 2
    assert len(list(store.layers_dir.iterdir())) == 1
    with prepare_rootfs(store, "from/skopeo:1", read_only=False, keep=False) as root:
        assert _chroot(root.path, "busybox true").returncode == 0


@pytest.mark.parametrize("key", ["ml", "ml-oci"])
def test_whiteouts_match_docker(store: Store, archives: dict[str, Path], dockerd: Dockerd, key: str) -> None:
    path = archives[key] if key == "ml" else _skopeo(archives, key)
    [rec] = store.load(path, tags=["craft/ml:1"] if key != "ml" else [])
    assert len(rec.layers) == 2
    want = _docker_view(dockerd, "craft/ml:1")
    assert "etc/gone" not in want and "opq/old" not in want and want["bin/x"][1] == b"x2"
    for method in ("overlay", "copy"):
        with prepare_rootfs(store, "craft/ml:1", read_only=False, keep=False, method=method) as root:
            got = _our_view(root.path)
            assert got == want, method


def test_two_images_share_a_layer(store: Store, archives: dict[str, Path]) -> None:
    recs = store.load(archives["multi"])
    assert sorted(n for r in recs for n in r.names) == ["craft/ml:1", "craft/shared:1"]
    assert recs[0].layers[0] == recs[1].layers[0]
    assert len(list(store.layers_dir.iterdir())) == 3


def test_image_config_honoured(store: Store, archives: dict[str, Path]) -> None:
    store.load(archives["ml"])
    with prepare_rootfs(store, "craft/ml:1", read_only=True, keep=False) as root:
        assert root.method == "overlay-ro"
        cfg: ImageConfig = root.config
        r = resolve_process(cfg, [], _User(0, 0), rootfs=root.path)
        assert r.argv == ["/bin/busybox", "true"]
        assert (r.uid, r.gid, r.cwd) == (65534, 65534, "/opq") and "FOO=bar" in r.env
        r = resolve_process(cfg, ["sh"], _User(1000, 1000), rootfs=root.path)
        assert r.argv == ["/bin/busybox", "sh"] and (r.uid, r.gid) == (1000, 1000)
        assert r.refusals and "uid 65534" in r.refusals[0]


class _User:
    def __init__(self, uid: int, gid: int) -> None:
        self.uid, self.gid = uid, gid


def test_tampered_docker_save_refused(store: Store, archives: dict[str, Path], tmp_path: Path) -> None:
    src = archives["busybox"]
    bad = tmp_path / "bad.tar"
    with tarfile.open(src) as tin, tarfile.open(bad, "w") as tout:
        for m in tin:
            f = tin.extractfile(m) if m.isreg() else None
            data = f.read() if f else None
            if m.name.endswith("layer.tar") and data:
                i = data.index(b"\x7fELF") + 200  # one byte of the busybox binary
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
            tout.addfile(m, io.BytesIO(data) if data is not None else None)
    r = subprocess.run([*STOCKADE, "image", "--store", str(store.root), "load", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "digest mismatch" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    for sub in ("layers", "images", "tmp"):
        assert list((store.root / sub).iterdir()) == []
    assert store.refs() == {}


def test_truncated_docker_save_refused(store: Store, archives: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "short.tar"
    data = archives["busybox"].read_bytes()
    bad.write_bytes(data[: len(data) * 2 // 3])
    assert cli.main(["image", "--store", str(store.root), "load", str(bad)]) == 2
    assert store.images() == [] and list(store.layers_dir.iterdir()) == []


def test_concurrent_cli_loads(store: Store, archives: dict[str, Path]) -> None:
    procs = [subprocess.Popen([*STOCKADE, "image", "--store", str(store.root), "load",
                               str(archives["multi"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(6)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else b"") for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    assert len(store.images()) == 2 and len(list(store.layers_dir.iterdir())) == 3
    assert list(store.tmp_dir.iterdir()) == []


def test_concurrent_runs_do_not_touch_layers(store: Store, archives: dict[str, Path]) -> None:
    store.load(archives["busybox"])
    before = _layers_digest(store)
    errors: list[str] = []

    def one(i: int) -> None:
        try:
            with prepare_rootfs(store, "stockade-test/busybox", read_only=False, keep=False) as root:
                r = _chroot(root.path, f"echo {i} > /bin/busybox.txt; rm -f /bin/sh; cat /bin/busybox.txt")
                if r.stdout != f"{i}\n":
                    errors.append(r.stderr)
        except StockadeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _layers_digest(store) == before
    assert list(store.containers_dir.iterdir()) == []


def test_keep_then_prune(store: Store, archives: dict[str, Path]) -> None:
    store.load(archives["busybox"])
    with prepare_rootfs(store, "stockade-test/busybox", read_only=False, keep=True) as root:
        _chroot(root.path, "echo kept > /kept")
        cdir = root.container_dir
    assert (cdir / "upper/kept").read_text() == "kept\n"
    assert not any(str(cdir) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_rootless_copy_and_device_refusal(nobody_home: Path, archives: dict[str, Path], dockerd: Dockerd) -> None:
    """As an unprivileged user: the copy fallback (whiteouts applied as docker does), and
    device nodes refused at load."""
    require_root()
    require_tool("setpriv")
    home = nobody_home
    shutil.copy(archives["busybox"], home / "bb.tar")
    shutil.copy(archives["ml"], home / "ml.tar")
    dev = export.write_tar(home / "dev.tar", export.docker_archive_files(
        [export.layer_tar([("dev", "dir"), ("dev/sda", "chr", "8:0")])], {}, repo_tags=["dev:1"]))
    os.chown(home, 65534, 65534)
    for p in home.iterdir():
        os.chown(p, 65534, 65534)
    script = (
        "import sys; from pathlib import Path;"
        "from stockade.image.store import Store; from stockade.image.rootfs import prepare_rootfs;"
        f"s = Store(Path('{home}/store')); s.load(Path('{home}/bb.tar'));"
        "r = prepare_rootfs(s, 'stockade-test/busybox', read_only=False, keep=False);"
        "print(r.method, (r.path / 'bin/busybox').stat().st_uid); r.close();"
        f"s.load(Path('{home}/ml.tar'));"
        "r = prepare_rootfs(s, 'craft/ml:1', read_only=False, keep=True); print(r.path)"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path), "HOME": str(home)}
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    method, uid, kept = r.stdout.split()
    assert (method, uid) == ("copy", "65534")
    assert _our_view(Path(kept)) == _docker_view(dockerd, "craft/ml:1")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *STOCKADE,
                        "image", "--store", f"{home}/store", "load", str(dev)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "device node" in r.stderr, r.stderr
    assert len(list((home / "store/images").iterdir())) == 2  # nothing added by the refused load


def test_auto_falls_back_to_copy(store: Store, tmp_path: Path) -> None:
    """Too many layers for one overlayfs mount: "auto" copies, "overlay" says why not."""
    layers = [export.layer_tar([(f"f{i}", "file", str(i))]) for i in range(40)]
    store.load(export.write_tar(tmp_path / "many.tar", export.docker_archive_files(layers, {}, repo_tags=["many:1"])))
    with prepare_rootfs(store, "many:1", read_only=False, keep=False) as root:
        assert root.method == "copy" and "too many layers" in root.note
        assert (root.path / "f39").read_text() == "39"
    with pytest.raises(StockadeError, match="too many layers"):
        prepare_rootfs(store, "many:1", read_only=False, keep=False, method="overlay")
    assert list(store.containers_dir.iterdir()) == []


def test_runner_starts_from_the_image(store: Store, archives: dict[str, Path], tmp_path: Path) -> None:
    """The wiring `stockade run --image` will use: image_for_run + the runner's API."""
    pytest.importorskip("stockade.api")  # the runner (another area) may not be there yet
    from stockade.image.run import image_for_run

    extra = export.layer_tar([("srv", "dir"), ("srv/app", "dir"), ("srv/app/hello", "file", "hi\n")])
    # The busybox layer as docker saved it, plus one layer and a config asking for things.
    with tarfile.open(archives["busybox"]) as t:
        base_layer = next(t.extractfile(m).read() for m in t if m.name.endswith("layer.tar"))  # type: ignore[union-attr]
    cfg = {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo $FOO; pwd; cat hello"],
           "Env": ["FOO=from-image"], "WorkingDir": "/srv/app"}
    store.load(export.write_tar(tmp_path / "app.tar", export.docker_archive_files(
        [base_layer, extra], cfg, repo_tags=["app:1"])))
    store.load(archives["busybox"])
    assert len(list(store.layers_dir.iterdir())) == 2  # the busybox layer is shared
    out = tmp_path / "out"
    with image_for_run("app:1", [], uid=0, gid=0, read_only=True, store=store) as run:
        env = dict(e.split("=", 1) for e in run.process.env)
        with open(out, "w") as fh:
            r = subprocess.run([sys.executable, "-c", (
                "import sys, json; from stockade import api;"
                "a = json.loads(sys.argv[1]);"
                "sys.exit(api.run(a['argv'], policy='default', rootfs=a['root'], env=a['env'], cwd=a['cwd']).exit_code)"),
                json.dumps({"argv": run.process.argv, "root": run.rootfs_path, "env": env, "cwd": run.process.cwd})],
                stdout=fh, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "from-image\n/srv/app\nhi\n"
    assert list(store.containers_dir.iterdir()) == []


RUN_FROM_IMAGE = """
import sys
from pathlib import Path
from stockade import api
from stockade.image.run import image_for_run
from stockade.image.store import Store

store, ref, script = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with image_for_run(ref, ["/bin/sh", "-c", script], uid=0, gid=0, read_only=False,
                   store=Store(store)) as run:
    env = dict(e.split("=", 1) for e in run.process.env)
    sys.exit(api.run(run.process.argv, policy="default", rootfs=run.rootfs_path, env=env,
                     cwd=run.process.cwd).exit_code)
"""


def test_concurrent_runner_starts(store: Store, archives: dict[str, Path]) -> None:
    """Several `run --image` at once from one image: each sees its own /tmp, the layers stay
    as they were, every writable layer is gone afterwards."""
    pytest.importorskip("stockade.api")
    store.load(archives["busybox"])
    before = _layers_digest(store)
    procs = [subprocess.Popen([sys.executable, "-c", RUN_FROM_IMAGE, str(store.root), "stockade-test/busybox",
                               f"echo {i} > /tmp/mine; sleep 0.2; cat /tmp/mine"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert sorted(o for o, _ in outs) == [f"{i}\n" for i in range(4)]
    assert _layers_digest(store) == before
    assert list(store.containers_dir.iterdir()) == []
