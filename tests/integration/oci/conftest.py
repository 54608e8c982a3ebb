"""Bundles from `runc spec`, and helpers to run them under runc and under stockade."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stockade.runner.procstat import stat_fields
from tests.conftest import require_root, require_tool
from tests.support import hooks

STOCKADE = [str(Path(sys.executable).with_name("stockade")), "oci"]
# The same CLI with the tests' hooks (STOCKADE_TEST_PAUSE, STOCKADE_TEST_CGROUP_V2), which
# production code does not read: tests/support/hooks.py.
STOCKADE_HOOKED = [*hooks.ARGV, "oci"]


@pytest.fixture(scope="session")
def runc_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_root()
    require_tool("runc")
    d = tmp_path_factory.mktemp("runcspec")
    subprocess.run(["runc", "spec", "--bundle", str(d)], check=True)
    cfg: dict[str, Any] = json.loads((d / "config.json").read_text())
    cfg["process"]["terminal"] = False
    return cfg


@pytest.fixture(scope="session")
def frontend_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The compiled front end (stockade/oci/frontend.c), falling back to this runtime."""
    from stockade.oci.frontend import build

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the OCI front end cannot be built here")
    out = tmp_path_factory.mktemp("frontend")
    # its fallback is the tests' CLI: the hooks hold on both paths
    fallback = hooks.write_script(out / "stockade")
    return build(str(out / "stockade-oci"), cli=fallback, test_hooks=True)


@pytest.fixture
def oci_root(tmp_path: Path) -> Iterator[Path]:
    """A private --root for each runtime; whatever a test leaves is force-deleted."""
    root = tmp_path / "state"
    yield root
    for runtime, sub in ((STOCKADE, "stockade"), (["runc"], "runc")):
        base = root / sub
        if base.exists():
            for cid in os.listdir(base):
                subprocess.run([*runtime, "--root", str(base), "delete", "--force", cid],
                               capture_output=True, check=False)


class Bundles:
    def __init__(self, base: Path, rootfs: Path, spec: dict[str, Any]) -> None:
        self.base = base
        self.rootfs = rootfs
        self.spec = spec

    def make(self, cfg: dict[str, Any] | None = None, name: str | None = None) -> Path:
        d = self.base / (name or uuid.uuid4().hex[:10])
        d.mkdir(parents=True)
        cfg = copy.deepcopy(self.spec) if cfg is None else cfg
        cfg["root"]["path"] = str(self.rootfs)
        (d / "config.json").write_text(json.dumps(cfg))
        return d

    def config(self) -> dict[str, Any]:
        return copy.deepcopy(self.spec)


@pytest.fixture(scope="session")
def shared_rootfs(busybox_rootfs: Path) -> Iterator[Path]:
    """The busybox rootfs where a user namespace's root (an unmapped host id) can reach
    it: pytest's base directory is 0700, which runc cannot traverse from a user ns."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="stockade-oci-", dir="/tmp"))
    base.chmod(0o755)
    dest = base / "rootfs"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    dest.chmod(0o755)
    yield dest
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def bundles(tmp_path: Path, shared_rootfs: Path, runc_spec: dict[str, Any]) -> Bundles:
    return Bundles(tmp_path / "bundles", shared_rootfs, runc_spec)


RUNTIMES = ("runc", "stockade")


@pytest.fixture
def twins(bundles: Bundles, oci_root: Path) -> Iterator[Callable[..., str]]:
    """make(cfg, *, start=True, runtimes=RUNTIMES, prefix) -> id: the same bundle created
    (and started) under each runtime with one id; all force-deleted afterwards, and
    nothing may be left of them."""
    made: list[str] = []

    def make(cfg: dict[str, Any], *, start: bool = True,
             runtimes: tuple[str, ...] = RUNTIMES, prefix: str = "tw") -> str:
        bundle = str(bundles.make(cfg))
        cid = f"{prefix}-{uuid.uuid4().hex[:8]}"
        made.append(cid)
        for rt in runtimes:
            r = oci(oci_root, "create", "--bundle", bundle, cid, runtime=rt)
            assert r.returncode == 0, (rt, r.stderr)
            if start:
                assert oci(oci_root, "start", cid, runtime=rt).returncode == 0, rt
        return cid

    yield make
    for cid in made:
        for rt in RUNTIMES:
            oci(oci_root, "delete", "--force", cid, runtime=rt)
        assert not leftovers(cid)


def oci(root: Path, *args: str, runtime: str = "stockade", check: bool = False,
        timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
    hooked = hooks.wanted(kw.get("env"))
    base = (STOCKADE_HOOKED if hooked else STOCKADE) if runtime == "stockade" else ["runc"]
    kw.setdefault("stdin", subprocess.DEVNULL)
    argv = [*base, "--root", str(root / runtime), *args]
    if "create" in args[:1] or "--detach" in args:
        # The container inherits stdout/stderr and outlives the runtime: a pipe would
        # never see EOF. Files instead.
        import tempfile

        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            res = subprocess.run(argv, text=True, check=False, timeout=timeout,
                                 stdout=out, stderr=err, **kw)
            out.seek(0)
            err.seek(0)
            done = subprocess.CompletedProcess(argv, res.returncode, out.read(), err.read())
        if check:
            done.check_returncode()
        return done
    kw.setdefault("capture_output", True)
    return subprocess.run(argv, text=True, check=check, timeout=timeout, **kw)


def leftovers(cid: str) -> list[str]:
    """cgroup directories and mounts that still name this container."""
    found = []
    for ctl in ("memory", "pids", "cpu", "devices"):
        base = Path("/sys/fs/cgroup") / ctl
        if base.exists():
            for dirpath, dirnames, _ in os.walk(base):
                if os.path.basename(dirpath) == cid:
                    found.append(dirpath)
                if dirpath.count("/") > 8:
                    dirnames.clear()
    with open("/proc/self/mountinfo") as fh:
        found += [line for line in fh if f"/{cid}/" in line]
    return found


def busybox() -> str:
    return shutil.which("busybox") or "/bin/busybox"


def stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP: a test pause point reached)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] == b"T"
