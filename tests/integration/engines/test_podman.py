"""podman --runtime <stockade>, with its default network (a CNI bridge: the network
namespace is made by podman and joined by path, with a net sysctl): run, exec, stop."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.engines.daemons import (
    IMAGE,
    PODMAN_ULIMITS,
    EngineUnavailable,
    Podman,
    _cni_network_present,
    podman,
)

PODMAN_IMAGE = "localhost/" + IMAGE


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("podman-calls") / "calls.log"


@pytest.fixture(scope="module")
def pm(shared_rootfs: Path, stockade_wrapper: Path, calls: Path) -> Iterator[tuple[Podman, str]]:
    spy = calls.parent / "stockade-spy"
    spy.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {stockade_wrapper} "$@"\n')
    spy.chmod(0o755)
    try:
        with podman(shared_rootfs) as p:
            yield p, str(spy)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


def test_default_network_is_removed_afterwards(shared_rootfs: Path) -> None:
    """The bridge and firewall chains podman's default network adds are taken away when
    they were not there before (the host is left as it was)."""
    before = _cni_network_present()
    try:
        with podman(shared_rootfs) as p:
            r = p("--runtime", "runc", "run", "--rm", *PODMAN_ULIMITS, PODMAN_IMAGE, "true")
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    assert r.returncode == 0, r.stderr
    assert _cni_network_present() == before


def test_run_default_network(pm: tuple[Podman, str], calls: Path) -> None:
    p, spy = pm
    ping_range = Path("/proc/sys/net/ipv4/ping_group_range").read_text()
    r = p("--runtime", spy, "run", "--rm", *PODMAN_ULIMITS, PODMAN_IMAGE, "sh", "-c",
          "echo hello; cat /proc/sys/net/ipv4/ping_group_range; ip -o -4 addr show eth0;"
          " exit 3")
    if r.returncode != 3 and not calls.exists():
        pytest.skip(f"podman cannot run a container here: {r.stderr.strip()}")
    assert r.returncode == 3, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "hello"
    assert lines[1].split() == ["0", "0"]  # podman's sysctl, in the container's netns
    assert "eth0" in lines[2] and "inet " in lines[2]  # the CNI bridge's address
    # ... and the host's own value is untouched
    assert Path("/proc/sys/net/ipv4/ping_group_range").read_text() == ping_range
    assert any(line.split()[-1:] and " create " in f" {line} " for line in
               calls.read_text().splitlines())


def test_run_exec_stop(pm: tuple[Podman, str], calls: Path) -> None:
    p, spy = pm
    name = f"sk-{uuid.uuid4().hex[:8]}"
    up = p("--runtime", spy, "run", "-d", "--name", name, *PODMAN_ULIMITS, PODMAN_IMAGE,
           "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done")
    assert up.returncode == 0, up.stderr
    try:
        ex = p("--runtime", spy, "exec", name, "sh", "-c", "echo in-exec; exit 4")
        assert (ex.returncode, ex.stdout) == (4, "in-exec\n"), ex.stderr
        stop = p("--runtime", spy, "stop", "-t", "10", name)
        assert stop.returncode == 0, stop.stderr
        state = json.loads(p("inspect", "--format", "{{json .State}}", name).stdout)
        assert (state["Status"], state["ExitCode"]) == ("exited", 7)
    finally:
        rm = p("--runtime", spy, "rm", "-f", name)
    assert rm.returncode == 0, rm.stderr
    verbs = {line.split()[0] for line in calls.read_text().splitlines()}
    assert {"create", "start", "exec", "kill", "delete"} <= verbs, verbs
