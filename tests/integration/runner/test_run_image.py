"""`stockade run --image` on the real kernel (root): the image's Entrypoint/Cmd, Env,
WorkingDir and User are honoured, the command line overrides them, the policy wins over
them, the writable layer goes away unless --keep, and the archive is not needed again."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from stockade.image import export
from stockade.image.store import Store
from stockade.policy.model import Policy, User
from tests.conftest import Dockerd, require_root
from tests.integration.runner.conftest import stockade_cgroups

STOCKADE = [sys.executable, "-m", "stockade"]
APP: dict[str, object] = {
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ["echo $FOO $BAR; pwd; id -u; id -g; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status"],
    "Env": ["FOO=from-image", "BAR=image-bar", "PATH=/bin"],
    "WorkingDir": "/srv/app",
    "User": "nobody",  # 65534:65534 in the busybox rootfs's /etc/passwd
}


def _tar_dir(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=".")
    return buf.getvalue()


@pytest.fixture(scope="module")
def base_layer(busybox_rootfs: Path) -> bytes:
    return _tar_dir(busybox_rootfs)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    require_root()
    s = Store(tmp_path / "store")
    monkeypatch.setenv("STOCKADE_STORE", str(s.root))  # the CLI's store, for subprocesses too
    return s


def _load(store: Store, tmp_path: Path, name: str, layers: list[bytes],
          config: Mapping[str, object]) -> Path:
    archive = export.write_tar(tmp_path / f"{name.replace(':', '_')}.tar",
                               export.docker_archive_files(layers, config, repo_tags=[name]))
    store.load(archive)
    return archive


def _app_layers(base_layer: bytes) -> list[bytes]:
    extra = export.layer_tar([("srv", "dir"), ("srv/app", "dir"), ("srv/app/hello", "file", "hi\n")])
    data = export.layer_tar([("data", "dir")], mode=0o1777)  # writable by the payload
    return [base_layer, extra, data]


def _run(*args: str, check_rc: int | None = 0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*STOCKADE, "run", *args], capture_output=True, text=True, timeout=120)
    if check_rc is not None:
        assert r.returncode == check_rc, (r.returncode, r.stdout, r.stderr)
    return r


def _policy_file(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"stockade: 1\nname: {name}\nextends: [default]\n{body}")
    return str(path)


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return [line.split()[4] for line in fh if line.split()[4].startswith(str(root))]


def _left_behind(store: Store) -> list[str]:
    cdir = store.containers_dir
    return (sorted(p.name for p in cdir.iterdir()) if cdir.is_dir() else []) + _mounts_under(store.root)


def test_image_config_is_honoured(store: Store, tmp_path: Path, base_layer: bytes) -> None:
    _load(store, tmp_path, "app:1", _app_layers(base_layer), APP)
    cgroups = stockade_cgroups()
    r = _run("--image", "app:1")
    lines = r.stdout.splitlines()
    # Entrypoint + Cmd, Env, WorkingDir, and User nobody: the image lowers privileges
    assert lines[:4] == ["from-image image-bar", "/srv/app", "65534", "65534"], r.stdout
    assert "NoNewPrivs:\t1" in lines
    assert _left_behind(store) == [] and stockade_cgroups() <= cgroups


def test_command_line_overrides_the_image(store: Store, tmp_path: Path, base_layer: bytes) -> None:
    _load(store, tmp_path, "app:1", _app_layers(base_layer), APP)
    # `-- CMD` replaces Cmd (the Entrypoint stays), -e overrides one variable, --cwd WorkingDir
    r = _run("--image", "app:1", "-e", "BAR=cli", "--cwd", "/tmp", "--", "echo $FOO $BAR; pwd")
    assert r.stdout == "from-image cli\n/tmp\n"
    # an image without Entrypoint: the command line is the whole argv
    _load(store, tmp_path, "plain:1", [base_layer], {"Cmd": ["/bin/false"], "Env": ["PATH=/bin"]})
    assert _run("--image", "plain:1", "--", "cat", "/etc/group").stdout.startswith("root:x:0:")
    assert _run("--image", "plain:1", check_rc=1).stdout == ""  # its Cmd, /bin/false
    assert _left_behind(store) == []


def test_policy_wins_over_the_image(store: Store, tmp_path: Path, base_layer: bytes) -> None:
    suid = export.layer_tar([("bin/suid-tool", "file", "#!/bin/sh\nid -u\n")], mode=0o4755)
    _load(store, tmp_path, "greedy:1", [base_layer, suid],
          {"Cmd": ["/bin/sh", "-c", "id -u; id -g; grep -E '^(NoNewPrivs|CapEff|CapBnd)' /proc/self/status"],
           "User": "root", "Env": ["PATH=/bin"]})
    policy = _policy_file(tmp_path, "as-1000", "user: {uid: 1000, gid: 1000, map: auto}\n"
                          "capabilities: {drop: [ALL], add: [CHOWN]}\n")
    dry = _run("--policy", policy, "--image", "greedy:1", "--dry-run")
    assert "identity    uid 1000 gid 1000" in dry.stdout
    assert "refused: image User 'root' asks for root; the policy runs as uid 1000, gid 1000" in dry.stdout
    assert "refused: image file /bin/suid-tool (setuid): ignored, no_new_privileges is set" in dry.stdout
    assert _left_behind(store) == []  # a dry run mounts nothing
    r = _run("--policy", policy, "--image", "greedy:1")
    lines = r.stdout.splitlines()
    assert lines[:2] == ["1000", "1000"], r.stdout  # not root: the policy's identity
    assert "NoNewPrivs:\t1" in lines  # the set-id file cannot raise anything
    # no root, and nothing above the policy's bounding set (CHOWN alone)
    assert "CapEff:\t0000000000000000" in lines and "CapBnd:\t0000000000000001" in lines
    assert "image User 'root'" in r.stderr  # the refusal is said at run time too
    assert "set-id or file-capability files are neutralised" in r.stderr
    # Under the default (root) policy the same image runs as root, with the policy's caps.
    r = _run("--image", "greedy:1", "--json-report", str(tmp_path / "report.json"))
    assert r.stdout.splitlines()[:2] == ["0", "0"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ran"] and any("/bin/suid-tool (setuid)" in n for n in report["notes"])
    assert _left_behind(store) == []


def test_keep_keeps_the_writable_layer(store: Store, tmp_path: Path, base_layer: bytes) -> None:
    _load(store, tmp_path, "app:1", _app_layers(base_layer), APP)
    writable = _policy_file(tmp_path, "writable-root", "filesystem: {root: writable, tmpfs: [/tmp]}\n")
    r = _run("--policy", writable, "--image", "app:1", "--", "echo gone > /data/f")
    assert _left_behind(store) == []  # without --keep the upper layer is removed
    r = _run("--policy", writable, "--image", "app:1", "--keep", "--", "echo kept > /data/f")
    kept = list(store.containers_dir.iterdir())
    assert len(kept) == 1 and f"kept in {kept[0]}" in r.stderr
    assert (kept[0] / "upper" / "data" / "f").read_text() == "kept\n"
    assert _mounts_under(store.root) == []  # kept means the files, not the mount
    # A read-only policy root has no upper layer to write into.
    r = _run("--image", "app:1", "--", "echo x > /data/f", check_rc=None)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    # prune -a removes the kept container
    subprocess.run([*STOCKADE, "image", "prune", "-a"], check=True, capture_output=True)
    assert list(store.containers_dir.iterdir()) == []


def test_second_start_needs_no_archive(store: Store, tmp_path: Path, base_layer: bytes) -> None:
    archive = _load(store, tmp_path, "app:1", _app_layers(base_layer), APP)
    archive.unlink()  # the store alone must be enough
    layers = sorted(p.name for p in store.layers_dir.iterdir())
    for _ in range(2):
        assert _run("--image", "app:1").stdout.startswith("from-image image-bar\n/srv/app\n")
    assert sorted(p.name for p in store.layers_dir.iterdir()) == layers
    assert _left_behind(store) == []


def test_bad_input(store: Store, tmp_path: Path, base_layer: bytes) -> None:
    r = _run("--image", "nope:1", "--", "/bin/true", check_rc=2)
    assert "nope" in r.stderr
    _load(store, tmp_path, "bare:1", [base_layer], {})
    r = _run("--image", "bare:1", check_rc=2)
    assert "no Entrypoint or Cmd" in r.stderr
    r = _run("--image", "bare:1", "--rootfs", str(tmp_path), "--", "/bin/true", check_rc=2)
    assert "--image excludes --rootfs" in r.stderr
    _run("--keep", "--", "/bin/true", check_rc=2)
    assert _run("--image", "bare:1", "--", "/bin/nonexistent", check_rc=127).returncode == 127
    assert _left_behind(store) == []


def test_python_api(store: Store, tmp_path: Path, base_layer: bytes,
                    default_policy: Policy) -> None:
    import stockade
    from stockade import api

    assert stockade.run is api.run  # `stockade.run(..., image=...)`
    _load(store, tmp_path, "app:1", _app_layers(base_layer), APP)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    as_1000 = dataclasses.replace(default_policy, user=User(uid=1000, gid=1000),
                                  digest=default_policy.digest + "-as-1000")
    res = api.run(["echo $FOO; id -u > /data/uid"], policy=as_1000, image="app:1",
                  store=str(store.root), binds=[f"{out}:/data"], env={"FOO": "api"})
    assert res.exit_code == 0, res
    # the policy's 1000, not the image's nobody: a non-root policy is never swapped for
    # another identity
    assert (out / "uid").read_text() == "1000\n"
    assert any("image User 'nobody'" in n for n in res.notes)
    assert _left_behind(store) == []


def test_docker_saved_busybox(dockerd: Dockerd, store: Store, tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    dockerd.docker("save", "-o", str(archive), dockerd.image)
    subprocess.run([*STOCKADE, "image", "load", str(archive)], check=True, capture_output=True)
    r = _run("--image", dockerd.image, "-e", "PATH=/bin", "--", "/bin/sh", "-c",
             "id -u; cat /etc/hostname 2>/dev/null; hostname; ls /")
    lines = r.stdout.splitlines()
    assert lines[0] == "0" and "bin" in lines and "etc" in lines
    r = _run("--image", dockerd.image, "--dry-run", "--", "/bin/true")
    assert f"image       {dockerd.image} (" in r.stdout
    assert _left_behind(store) == []
    assert not os.path.exists(store.containers_dir) or not any(store.containers_dir.iterdir())
