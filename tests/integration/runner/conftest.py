"""Fixtures for the runner's real-kernel tests: policies, leak snapshots, a cache dir."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.policy.loader import load_policy
from stockade.policy.model import Policy, Resources
from tests.conftest import require_root


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKADE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    return load_policy("default")


def with_resources(policy: Policy, **kw: object) -> Policy:
    return dataclasses.replace(policy, resources=Resources(**kw),  # type: ignore[arg-type]
                               name=policy.name, digest=policy.digest + "-" + repr(sorted(kw.items())))


def no_resources(policy: Policy) -> Policy:
    return dataclasses.replace(policy, resources=Resources(), digest=policy.digest + "-nores")


def stockade_cgroups() -> set[str]:
    """This process's run directories (ids start with our pid) under any `stockade`
    parent, in every hierarchy (other sessions on this machine run stockade too)."""
    found: set[str] = set()
    mine = f"{os.getpid()}-"
    for base, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(base) == "stockade":
            found |= {os.path.join(base, d) for d in dirs if d.startswith(mine)}
            dirs[:] = []
    return found


def mounts() -> list[str]:
    """Host mounts where a runner leak could appear (other sessions' docker mounts come and
    go concurrently on this machine, so only these places are compared)."""
    ours = ("/tmp", "/proc", "/dev", "/sys/fs/cgroup", "/mnt", "/run")
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    return sorted(p for p in points if p in ours or p.startswith("/sys/fs/cgroup/"))


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def no_zombies() -> bool:
    try:
        return os.waitpid(-1, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


@pytest.fixture
def leak_check() -> Iterator[None]:
    before_cg, before_mnt, before_fds = stockade_cgroups(), mounts(), open_fds()
    yield
    assert stockade_cgroups() <= before_cg, "cgroup left behind"
    assert mounts() == before_mnt, "mount left behind"
    assert open_fds() <= before_fds | {max(before_fds, default=0) + 1}, "fd left open"
    assert no_zombies(), "zombie child left"


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    d.chmod(0o777)
    return d


def alarm(seconds: int) -> None:
    signal.alarm(seconds)


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A root-owned 0755 data directory the jail can bind (a host service's data dir)."""
    require_root()
    os.chmod(tmp_path, 0o755)  # the jail binds it; pytest's base dir is 0700 for others
    data = tmp_path / "srv-data"
    data.mkdir(mode=0o755)
    os.chown(data, 0, 0)
    return data
