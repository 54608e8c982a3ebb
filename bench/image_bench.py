"""Images: load + unpack, first and second start, store size — against docker on this machine.

Run as root:  .venv/bin/python bench/image_bench.py [--runs N] [--storage-driver overlay2|vfs]

Starts a private dockerd (its own data root and socket, no network), builds two images with
docker itself (`docker import` of a busybox rootfs; a 3-layer image with /usr/lib/python3.11
in a layer and whiteouts, `docker load`ed), `docker save`s them, and compares:

  load         `stockade image load` (verify + unpack into a fresh store) vs `docker load`
  first start  fresh store: load + prepare_rootfs + run /bin/true + clean up
  second start prepare_rootfs from the store + run /bin/true + clean up
  docker run   `docker run --rm --network none IMAGE /bin/true`
  size         disk used by the stockade store vs by docker's data root for the same image

"run /bin/true" is `stockade run --image` when the runner's CLI has it, else the runner's
Python API on the prepared root, else `chroot ROOT /bin/true`; the output says which.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from stockade.image import export
from stockade.image.rootfs import prepare_rootfs
from stockade.image.run import image_for_run
from stockade.image.store import Store

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def du(path: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def busybox_rootfs(dest: Path) -> Path:
    for d in ("bin", "etc", "tmp", "proc", "dev", "sys", "root"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, dest / "bin/busybox")
    for applet in ("sh", "true", "ls", "cat"):
        (dest / "bin" / applet).symlink_to("busybox")
    (dest / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return dest


class Docker:
    def __init__(self, base: Path, driver: str) -> None:
        self.base = base
        self.sock = base / "docker.sock"
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}")
        log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as the daemon
        self.proc = subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false",
             f"--data-root={base / 'data'}", f"--exec-root={base / 'exec'}",
             f"--pidfile={base / 'dockerd.pid'}", f"--host=unix://{self.sock}",
             f"--storage-driver={driver}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((base / "dockerd.log").read_text()[-2000:])
            if self.sock.exists() and self.run("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("dockerd did not start")

    def run(self, *args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", *args], env=self.env, capture_output=True, check=check,
                              input=stdin, timeout=300)

    def stop(self) -> None:
        ids = self.run("ps", "-aq", check=False).stdout.split()
        if ids:
            self.run("rm", "-f", *[i.decode() for i in ids], check=False)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for sub in ("exec", "data"):
            subprocess.run(["umount", "-R", "-l", str(self.base / sub)], capture_output=True)


def tar_dir(path: Path, arcname: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=arcname or ".")
    return buf.getvalue()


def median_ms(fn: Callable[[], object], runs: int, setup: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(runs):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def start_mode() -> str:
    """cli: `stockade run --image`; api: image_for_run + stockade.api.run in-process (the
    runner exists but its CLI has no --image yet); chroot: no runner at all."""
    r = subprocess.run([sys.executable, "-m", "stockade", "run", "--help"], capture_output=True, text=True)
    if r.returncode == 0 and "--image" in r.stdout:
        return "cli"
    try:
        import stockade.api  # noqa: F401
    except ImportError:
        return "chroot"
    return "api"


def stockade_cli() -> list[str]:
    """The `stockade` command a user runs: the environment's entry script (the fast one
    when `python -m stockade.entry_script` wrote it), else `python -m stockade`."""
    script = os.path.join(os.path.dirname(sys.executable), "stockade")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "stockade"]


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="stockade-image-bench-", dir="/tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--storage-driver", default="overlay2")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (dockerd, overlayfs)", file=sys.stderr)
        return 2
    mode = start_mode()
    with workdir() as base:
        (base / "docker").mkdir()
        docker = Docker(base / "docker", args.storage_driver)
        try:
            return bench(docker, base, args.runs, mode, args.storage_driver)
        finally:
            docker.stop()


def bench(docker: Docker, base: Path, runs: int, mode: str, driver: str) -> int:
    rootfs = busybox_rootfs(base / "bbroot")
    docker.run("import", "-", "bench/busybox:1", stdin=tar_dir(rootfs))
    # A bigger 3-layer image: busybox, the Python stdlib, then a layer with whiteouts.
    bb_layer = tar_dir(rootfs)
    py_layer = tar_dir(Path("/usr/lib/python3.11"), "usr/lib/python3.11")
    wh_layer = export.layer_tar([("usr/lib/python3.11/test", "whiteout"),
                                 ("usr/lib/python3.11/idlelib", "opaque"), ("etc/motd", "file", "hi")])
    crafted = export.write_tar(base / "py-in.tar", export.docker_archive_files(
        [bb_layer, py_layer, wh_layer], {"Cmd": ["/bin/sh"]}, repo_tags=["bench/py:1"]))
    docker.run("load", "-i", str(crafted))
    rows = []
    store_root = base / "store"
    archives = {}
    for image in ("bench/busybox:1", "bench/py:1"):
        archives[image] = base / (image.replace("/", "_").replace(":", "_") + ".tar")
        docker.run("save", "-o", str(archives[image]), image)
    for image, archive in archives.items():

        def fresh() -> None:
            shutil.rmtree(store_root, ignore_errors=True)

        def load(image: str = image, archive: Path = archive) -> None:
            Store(store_root).load(archive)

        def start(image: str = image) -> None:
            if mode == "cli":
                subprocess.run([*stockade_cli(), "run", "--image", image, "--", "/bin/true"],
                               check=True, capture_output=True,
                               env=dict(os.environ, STOCKADE_STORE=str(store_root)))
            elif mode == "api":
                from stockade import api

                with image_for_run(image, ["/bin/true"], uid=0, gid=0, read_only=True,
                                   store=Store(store_root)) as run:
                    rc = api.run(run.process.argv, policy="default", rootfs=run.rootfs_path,
                                 env=dict(e.split("=", 1) for e in run.process.env)).exit_code
                    assert rc == 0, rc
            else:
                with prepare_rootfs(Store(store_root), image, read_only=False, keep=False) as root:
                    subprocess.run(["chroot", str(root.path), "/bin/true"], check=True)

        def first(load: Callable[[], None] = load, start: Callable[[], None] = start) -> None:
            load()
            start()

        t_load = median_ms(load, runs, setup=fresh)
        t_first = median_ms(first, runs, setup=fresh)
        fresh()
        load()
        t_second = median_ms(start, runs)
        size = du(store_root / "layers") + du(store_root / "images")
        nlayers = len(Store(store_root).resolve(image).layers)

        def docker_load(image: str = image, archive: Path = archive) -> None:
            docker.run("load", "-i", str(archive))

        def docker_rmi(image: str = image) -> None:
            docker.run("rmi", "-f", image, check=False)

        t_dload = median_ms(docker_load, runs, setup=docker_rmi)
        def docker_run(image: str = image) -> None:
            docker.run("run", "--rm", "--network", "none", image, "/bin/true")

        t_drun = median_ms(docker_run, runs)
        # docker's disk for this image alone: nothing else loaded, measured as the growth
        for other in archives:
            docker_rmi(other)
        docker.run("image", "prune", "-af", check=False)
        empty = du(docker.base / "data")
        docker_load()
        dsize = du(docker.base / "data") - empty
        rows.append((image, nlayers, t_load, t_dload, t_first, t_second, t_drun, size, dsize))
        for path in archives.values():
            docker.run("load", "-i", str(path))
    method = {
        "cli": f"`{' '.join(stockade_cli())} run --image IMAGE -- /bin/true` (a new process "
               "each time, default policy)",
        "api": "image_for_run + stockade.api.run(['/bin/true'], policy='default') in-process "
               "(`stockade run` has no --image yet)",
        "chroot": "prepare_rootfs + chroot /bin/true (no runner yet)",
    }[mode]
    print(f"docker storage driver: {driver}; runs: {runs}; start = {method}")
    print("| image | layers | load+unpack (stockade) | docker load | first start | second start "
          "| docker run | 2nd start / docker run | disk: stockade vs docker |")
    print("|---|---|---|---|---|---|---|---|---|")
    for image, n, t_load, t_dload, t_first, t_second, t_drun, size, dsize in rows:
        print(f"| {image} | {n} | {t_load:.1f} ms | {t_dload:.1f} ms | {t_first:.1f} ms | "
              f"{t_second:.1f} ms | {t_drun:.1f} ms | {t_second / t_drun:.3f} | "
              f"{size / 1e6:.1f} MB vs docker {dsize / 1e6:.1f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
