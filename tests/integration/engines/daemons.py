"""Real engines started privately for the tests (and for tests/data/engines/capture.py
and bench/oci_bench.py): a dockerd, podman with its own storage, a containerd with its
own root/state/socket. Each gets a busybox image imported from a local rootfs (no
registry). Nothing here is a pytest fixture: callers decide when to skip."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE = "stockade-test/busybox:latest"
# podman's own default ulimits (RLIMIT_NOFILE 1048576) exceed this host's hard limits and
# the bounding set lacks CAP_SYS_RESOURCE: runc fails on them as well.
PODMAN_ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")


class EngineUnavailable(RuntimeError):
    """The engine cannot run here; the message says why (tests skip with it)."""


def rootfs_tar(rootfs: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tf:
        tf.add(rootfs, arcname=".")
    return dest


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path,
              what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineUnavailable(f"{what} exited: {log.read_text(errors='replace')[-1500:]}")
        if check():
            return
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise EngineUnavailable(f"{what} did not answer within 30 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _unmount_under(base: Path) -> None:
    """Mounts an engine left below base (netns files, overlay/shm mounts), deepest first."""
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    for point in sorted((p for p in points if p.startswith(str(base) + "/")), key=len,
                        reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _cgroup_parent_exists(name: str) -> bool:
    return any((ctl / name).is_dir() for ctl in Path("/sys/fs/cgroup").iterdir())


def _remove_cgroup_parent(name: str) -> None:
    """The engine's parent cgroup (/docker, containerd's /NAMESPACE), once empty."""
    for ctl in Path("/sys/fs/cgroup").iterdir():
        with contextlib.suppress(OSError):
            (ctl / name).rmdir()


@dataclass(frozen=True)
class Docker:
    host: str
    base: Path

    def __call__(self, *args: str, check: bool = False, timeout: float = 60,
                 stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, DOCKER_HOST=self.host)
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                              env=env, timeout=timeout, stdin=stdin)


@contextlib.contextmanager
def dockerd(rootfs: Path, runtimes: dict[str, str], default_runtime: str | None = None,
            bridge: str = "none") -> Iterator[Docker]:
    """A private dockerd: its own data/exec roots and socket, no iptables, and by default
    no bridge (--bridge=none: containers get a network namespace of their own with
    loopback only); `bridge` names one the caller made, for docker's default network
    (a veth on it, set up by docker's libnetwork-setkey prestart hook), with the host's
    forwarding and masquerading left alone. The given runtimes are registered
    (--add-runtime NAME=PATH). Otherwise docker's defaults (the overlay2 storage driver:
    its rootfs is a mount of its own)."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None or shutil.which("docker") is None:
        raise EngineUnavailable("needs root, dockerd and docker (apt: docker.io)")
    base = Path(tempfile.mkdtemp(prefix="sk-dockerd-", dir="/tmp"))
    sock = base / "docker.sock"
    cmd = ["dockerd", f"--bridge={bridge}", "--iptables=false", "--ip6tables=false",
           f"--data-root={base / 'data'}", f"--exec-root={base / 'exec'}",
           f"--pidfile={base / 'dockerd.pid'}", f"--host=unix://{sock}"]
    if bridge != "none":
        cmd += ["--ip-forward=false", "--ip-masq=false"]
    cmd += [f"--add-runtime={name}={path}" for name, path in runtimes.items()]
    if default_runtime:
        cmd.append(f"--default-runtime={default_runtime}")
    log = base / "dockerd.log"
    had_parent = _cgroup_parent_exists("docker")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    docker = Docker(f"unix://{sock}", base)
    try:
        _wait_for(lambda: sock.exists() and docker("version").returncode == 0, proc, log,
                  "dockerd")
        with open(rootfs_tar(rootfs, base / "rootfs.tar"), "rb") as tar:
            imp = docker("import", "-", IMAGE, stdin=tar.fileno(), timeout=120)
        if imp.returncode != 0:
            raise EngineUnavailable(f"docker import failed: {imp.stderr.strip()}")
        yield docker
    finally:
        if proc.poll() is None:
            ids = docker("ps", "-aq").stdout.split()
            if ids:
                docker("rm", "-f", *ids, timeout=120)
            _stop(proc)
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        if not had_parent:
            _remove_cgroup_parent("docker")


@dataclass(frozen=True)
class Podman:
    argv: tuple[str, ...]  # podman and its global storage/runroot options
    base: Path

    def __call__(self, *args: str, timeout: float = 120
                 ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def podman(rootfs: Path) -> Iterator[Podman]:
    """podman with private storage and runroot (the cgroupfs manager: stockade has no
    systemd driver). Its default network (CNI bridge) is the host's configuration."""
    if os.geteuid() != 0 or shutil.which("podman") is None:
        raise EngineUnavailable("needs root and podman")
    # podman refuses a runroot longer than 50 characters
    base = Path(tempfile.mkdtemp(prefix="sk-pod-", dir="/tmp"))
    had_network = _cni_network_present()
    pm = Podman(("podman", "--root", str(base / "storage"), "--runroot", str(base / "run"),
                 "--tmpdir", str(base / "tmp"), "--cgroup-manager", "cgroupfs",
                 "--events-backend", "file"), base)
    try:
        imp = pm("import", str(rootfs_tar(rootfs, base / "rootfs.tar")), "localhost/" + IMAGE)
        if imp.returncode != 0:
            raise EngineUnavailable(f"podman cannot import an image: {imp.stderr.strip()}")
        yield pm
    finally:
        pm("rm", "-af", "-t", "1")
        pm("rmi", "-af")
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        if not had_network:
            _remove_cni_network()
        # podman's cgroupfs manager leaves its conmon cgroups behind: remove them if empty
        for ctl in Path("/sys/fs/cgroup").iterdir():
            for d in (ctl / "libpod_parent" / "conmon", ctl / "libpod_parent"):
                with contextlib.suppress(OSError):
                    d.rmdir()


# What podman's default CNI network adds to the host: its bridge and the firewall
# plugin's filter chains (podman keeps them for later containers).
_CNI_BRIDGE = "cni-podman0"
_CNI_JUMP = ("FORWARD", "-m", "comment", "--comment", "CNI firewall plugin rules", "-j",
             "CNI-FORWARD")


def _cni_network_present() -> bool:
    if Path(f"/sys/class/net/{_CNI_BRIDGE}").exists():
        return True
    # without iptables (a dependency of podman's CNI plugins) there is no chain to find
    return shutil.which("iptables") is not None and subprocess.run(
        ["iptables", "-S", "CNI-FORWARD"], capture_output=True).returncode == 0


def _remove_cni_network() -> None:
    """Leave the host as it was before podman's first container on its default network."""
    subprocess.run(["ip", "link", "delete", _CNI_BRIDGE], capture_output=True)
    if shutil.which("iptables") is None:
        return
    subprocess.run(["iptables", "-D", *_CNI_JUMP], capture_output=True)
    for chain in ("CNI-FORWARD", "CNI-ADMIN"):
        subprocess.run(["iptables", "-F", chain], capture_output=True)
        subprocess.run(["iptables", "-X", chain], capture_output=True)


CTR_NAMESPACE = "sk-test"  # also the parent cgroup of its containers


@dataclass(frozen=True)
class Containerd:
    address: str
    base: Path

    def ctr(self, *args: str, timeout: float = 60,
            stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", self.address, "--namespace", CTR_NAMESPACE,
                               *args], capture_output=True, text=True, timeout=timeout,
                              stdin=stdin)


def oci_image_archive(rootfs: Path, dest: Path, ref: str) -> Path:
    """An OCI image layout tar (one gzip layer) that `ctr image import` takes."""
    layer_raw = io.BytesIO()
    with tarfile.open(fileobj=layer_raw, mode="w") as tf:
        tf.add(rootfs, arcname=".")
    layer = gzip.compress(layer_raw.getvalue(), mtime=0)

    def blob(data: bytes) -> tuple[str, bytes]:
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    diff_id = "sha256:" + hashlib.sha256(layer_raw.getvalue()).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                                    "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    layer_d, _ = blob(layer)
    config_d, _ = blob(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_d, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_d, "size": len(layer)}]}).encode()
    manifest_d, _ = blob(manifest)
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_d,
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": ref,
                                               "io.containerd.image.name": ref}}]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index,
             f"blobs/sha256/{layer_d[7:]}": layer, f"blobs/sha256/{config_d[7:]}": config,
             f"blobs/sha256/{manifest_d[7:]}": manifest}
    with tarfile.open(dest, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return dest


CONTAINERD_IMAGE = "docker.io/" + IMAGE


@contextlib.contextmanager
def containerd(rootfs: Path) -> Iterator[Containerd]:
    """A private containerd (own root, state, socket; CRI plugin off) with the busybox
    image imported (native snapshotter). `ctr run --runc-binary` picks the runtime."""
    if os.geteuid() != 0 or shutil.which("containerd") is None or shutil.which("ctr") is None:
        raise EngineUnavailable("needs root, containerd and ctr (apt: containerd)")
    base = Path(tempfile.mkdtemp(prefix="sk-ctrd-", dir="/tmp"))
    sock = base / "containerd.sock"
    config = [
        "version = 2", f'root = "{base / "root"}"', f'state = "{base / "state"}"',
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        "[grpc]", f'  address = "{sock}"', "[ttrpc]", f'  address = "{sock}.ttrpc"',
        "[debug]", '  address = ""', "[metrics]", '  address = ""',
    ]
    (base / "config.toml").write_text("\n".join(config) + "\n")
    log = base / "containerd.log"
    had_parent = _cgroup_parent_exists(CTR_NAMESPACE)
    with open(log, "wb") as out:
        proc = subprocess.Popen(["containerd", "--config", str(base / "config.toml")],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    ctrd = Containerd(str(sock), base)
    try:
        _wait_for(lambda: sock.exists() and ctrd.ctr("version").returncode == 0, proc, log,
                  "containerd")
        archive = oci_image_archive(rootfs, base / "image.tar", CONTAINERD_IMAGE)
        imp = ctrd.ctr("image", "import", "--snapshotter", "native", str(archive),
                       timeout=120)
        if imp.returncode != 0:
            raise EngineUnavailable(f"ctr image import failed: {imp.stderr.strip()}")
        yield ctrd
    finally:
        if proc.poll() is None:
            for task in ctrd.ctr("task", "ls", "-q").stdout.split():
                ctrd.ctr("task", "kill", "-s", "SIGKILL", task)
                ctrd.ctr("task", "delete", "-f", task)
            for cont in ctrd.ctr("container", "ls", "-q").stdout.split():
                ctrd.ctr("container", "delete", cont)
            _stop(proc)
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        if not had_parent:
            _remove_cgroup_parent(CTR_NAMESPACE)
