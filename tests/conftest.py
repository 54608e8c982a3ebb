"""Shared fixtures: real tools, real kernel. Each skips with the real reason when absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
# Docker's default seccomp profile (moby, Apache-2.0): tests/data/NOTICE.md says where from
MOBY_PROFILE = REPO / "tests" / "data" / "moby-default-seccomp.json"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def pytest_sessionstart(session: pytest.Session) -> None:
    """The executor every run starts (`stockade-oci --executor`, next to the interpreter)
    must be built from these sources: rebuilt when a C or Python file changed since
    (`scripts/dev` does the same before the suite; this covers a bare `pytest`)."""
    from stockade.executor import spawn
    from stockade.oci import frontend

    try:
        target = spawn.binary()
    except spawn.ExecutorMissing:
        return  # every run reports it; the tests that run something say so
    if frontend.main(["--if-stale", target]) != 0:
        raise pytest.UsageError(f"{target} is stale and could not be rebuilt")


@pytest.fixture(scope="session")
def executor_test_build(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tests' build of the executor (`stockade-oci` with -DSTOCKADE_TEST_HOOKS:
    `--read-plan`, STOCKADE_TEST_FAULT), built once per session."""
    from stockade.oci.frontend import build

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the executor cannot be built here")
    if not Path("/usr/include/json-c/json.h").exists():
        pytest.skip("no json-c headers (Debian libjson-c-dev): the executor cannot be built")
    return build(str(tmp_path_factory.mktemp("executor") / "stockade-oci"), test_hooks=True)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (real namespaces/cgroups/mounts)")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt package provides it)")
    return path


def make_busybox_rootfs(dest: Path) -> Path:
    """A one-binary rootfs: busybox-static plus relative applet symlinks."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run(
        [BUSYBOX, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if not link.exists() and applet != "busybox":
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (dest / "tmp").chmod(0o1777)
    return dest


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bbroot")
    make_busybox_rootfs(root)
    # Read-only tests share this tree; keep it world-readable for rootless runs.
    os.chmod(root, 0o755)
    return root


@dataclass
class Dockerd:
    host: str  # value for DOCKER_HOST
    socket: str
    image: str  # a busybox image imported from a local rootfs

    def docker(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, DOCKER_HOST=self.host)
        return subprocess.run(
            ["docker", *args], capture_output=True, text=True, check=check, env=env, timeout=timeout
        )


def _start_dockerd(base: Path, rootfs: Path) -> tuple[subprocess.Popen[bytes], Dockerd]:
    sock = base / "docker.sock"
    cmd = [
        "dockerd",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        f"--data-root={base / 'data'}",
        f"--exec-root={base / 'exec'}",
        f"--pidfile={base / 'dockerd.pid'}",
        f"--host=unix://{sock}",
        "--storage-driver=vfs",
    ]
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as the daemon
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    daemon = Dockerd(host=f"unix://{sock}", socket=str(sock), image="stockade-test/busybox:latest")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited: {(base / 'dockerd.log').read_text()[-2000:]}")
        if sock.exists() and daemon.docker("version", check=False).returncode == 0:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("dockerd did not answer within 30 s")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    env = dict(os.environ, DOCKER_HOST=daemon.host)
    subprocess.run(["docker", "import", "-", daemon.image], stdin=tar.stdout, check=True, env=env,
                   capture_output=True)
    tar.wait()
    return proc, daemon


@pytest.fixture(scope="session")
def dockerd(busybox_rootfs: Path) -> Iterator[Dockerd]:
    """A private dockerd (its own data/exec roots and socket), stopped at the end."""
    require_root()
    require_tool("dockerd")
    require_tool("docker")
    base = Path(tempfile.mkdtemp(prefix="stockade-dockerd-", dir="/tmp"))
    try:
        proc, daemon = _start_dockerd(base, busybox_rootfs)
    except RuntimeError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"dockerd cannot run on this machine: {exc}")
    try:
        yield daemon
    finally:
        ids = daemon.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            daemon.docker("rm", "-f", *ids, check=False)
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # dockerd leaves its netns bind mounts (exec/netns/*) behind for --net=host containers
        for netns in sorted((base / "exec" / "netns").glob("*")) if (base / "exec" / "netns").is_dir() else []:
            subprocess.run(["umount", "-l", str(netns)], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "data")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
