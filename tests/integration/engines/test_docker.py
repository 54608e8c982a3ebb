"""dockerd with stockade registered (--add-runtime, and as --default-runtime): run, exec,
logs, stop, rm and --restart, with docker's default flags (docs/OCI.md, Engines)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.engines.daemons import IMAGE, Docker, EngineUnavailable, dockerd


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docker-calls") / "calls.log"


# docker's default network is a bridge: one made for the tests, on a test address
# (RFC 2544's benchmarking range), deleted at the end; dockerd does not touch iptables,
# forwarding or masquerading (daemons.dockerd), so nothing leaves this machine.
BRIDGE_GATEWAY = "198.18.250.1"


@pytest.fixture(scope="module")
def bridge() -> Iterator[str]:
    name = f"skbr{os.getpid() % 100000}"
    try:
        subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a bridge for docker's default network: {exc}")
    try:
        subprocess.run(["ip", "addr", "add", f"{BRIDGE_GATEWAY}/24", "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def docker(shared_rootfs: Path, stockade_wrapper: Path, calls: Path, bridge: str
           ) -> Iterator[Docker]:
    """dockerd whose default runtime is stockade (through a spy that logs each call),
    containers on its default (bridge) network."""
    spy = calls.parent / "stockade-spy"
    spy.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {stockade_wrapper} "$@"\n')
    spy.chmod(0o755)
    try:
        with dockerd(shared_rootfs, {"stockade": str(spy)}, default_runtime="stockade",
                     bridge=bridge) as d:
            yield d
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


def _name() -> str:
    return f"sk-{uuid.uuid4().hex[:8]}"


def _verbs(calls: Path, cid: str) -> list[str]:
    """The runtime verbs called for one container."""
    lines = calls.read_text().splitlines() if calls.exists() else []
    verbs = ("create", "start", "kill", "delete", "exec", "state", "ps")
    return [next((w for w in line.split() if w in verbs), "?") for line in lines
            if cid in line.split()]


def test_run_default_and_named_runtime(docker: Docker, calls: Path) -> None:
    for runtime in ((), ("--runtime", "stockade")):
        name = _name()
        r = docker("run", "--name", name, *runtime, IMAGE, "sh", "-c",
                   "echo hello; grep NoNewPrivs /proc/self/status; exit 3")
        assert r.returncode == 3, r.stderr
        assert r.stdout.startswith("hello\n")
        cid = docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
        assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", name).stdout.strip() \
            == "stockade"
        assert {"create", "start", "delete"} <= set(_verbs(calls, cid)), calls.read_text()
        assert docker("rm", name).returncode == 0


def test_same_view_as_runc(docker: Docker) -> None:
    """docker's own bundle (default flags) seen from inside under runc and stockade."""
    probe = ("grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; id; hostname | wc -c;"
             " grep -E 'open files|processes' /proc/self/limits;"
             " cat /proc/sys/net/ipv4/ping_group_range; ls /dev | sort | tr '\\n' ' '")
    out = {}
    for runtime in ("runc", "stockade"):
        r = docker("run", "--rm", "--runtime", runtime, IMAGE, "sh", "-c", probe)
        assert r.returncode == 0, (runtime, r.stderr)
        out[runtime] = r.stdout.splitlines()
    # /dev differs by design (docs/OCI.md): stockade's fixed nodes; the rest agrees
    assert out["stockade"][:-1] == out["runc"][:-1]
    assert set(out["stockade"][-1].split()) <= set(out["runc"][-1].split())


def test_default_bridge_network(docker: Docker) -> None:
    """docker's default network: a veth on the bridge, set up by docker's prestart hook
    (libnetwork-setkey) in the namespace the runtime made; the same under runc."""
    probe = ("ip -4 -o addr show eth0 | awk '{print $4}'; ip -4 route | sort;"
             f" ping -c1 -W2 {BRIDGE_GATEWAY} >/dev/null && echo gateway-reached")
    out = {}
    for runtime in ("runc", "stockade"):
        r = docker("run", "--rm", "--runtime", runtime, IMAGE, "sh", "-c", probe)
        assert r.returncode == 0, (runtime, r.stderr)
        out[runtime] = [line.strip() for line in r.stdout.splitlines()]
    assert out["stockade"] == out["runc"]
    assert out["stockade"][0].startswith("198.18.250.") and "gateway-reached" in out["stockade"]
    assert f"default via {BRIDGE_GATEWAY} dev eth0" in out["stockade"][1:]


def test_exec_logs_stop_rm(docker: Docker, calls: Path) -> None:
    name = _name()
    up = docker("run", "-d", "--name", name, IMAGE, "sh", "-c",
                "trap 'echo got-term; exit 7' TERM; echo started; "
                "while :; do sleep 0.1; done")
    assert up.returncode == 0, up.stderr
    cid = up.stdout.strip()
    try:
        ex = docker("exec", name, "sh", "-c", "echo in-exec; exit 4")
        assert (ex.returncode, ex.stdout) == (4, "in-exec\n"), ex.stderr
        ex = docker("exec", "-u", "65534", name, "id", "-u")
        assert ex.stdout.strip() == "65534", ex.stderr
        top = docker("top", name)
        assert top.returncode == 0 and "got-term" in top.stdout, top.stderr
        assert "started" in docker("logs", name).stdout
        stop = docker("stop", "-t", "10", name)
        assert stop.returncode == 0, stop.stderr
        state = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)
        assert (state["Status"], state["ExitCode"]) == ("exited", 7)
        assert "got-term" in docker("logs", name).stdout
        assert {"create", "start", "exec", "kill"} <= set(_verbs(calls, cid))
    finally:
        rm = docker("rm", "-f", name)
    assert rm.returncode == 0, rm.stderr
    assert docker("ps", "-aq", "--filter", f"name={name}").stdout == ""


def test_restart_policy(docker: Docker) -> None:
    name = _name()
    up = docker("run", "-d", "--name", name, "--restart", "on-failure:2", IMAGE, "sh", "-c",
                "echo run; exit 1")
    assert up.returncode == 0, up.stderr
    try:
        deadline = time.monotonic() + 30
        state: dict[str, object] = {}
        while time.monotonic() < deadline:
            state = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)
            count = int(docker("inspect", "-f", "{{.RestartCount}}", name).stdout)
            if count == 2 and state["Status"] == "exited":
                break
            time.sleep(0.2)
        assert count == 2 and state["Status"] == "exited", state
        assert docker("logs", name).stdout.count("run") == 3
    finally:
        docker("rm", "-f", name)
