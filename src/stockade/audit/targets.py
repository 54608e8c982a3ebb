"""Turn --pid/--docker/--runc/--stockade/--all/--self into Targets (a PID to look at)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from stockade.audit.docker_api import DockerClient
from stockade.audit.model import Target
from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts
from stockade.linux.runtimes import RuntimeInfo
from stockade.runner import runs
from stockade.runner.procstat import first_child, parent_pid

RUNC_ROOT = "/run/runc"
STOCKADE_ROOT = "/run/stockade"


def from_pid(pid: int, stockade_root: str = STOCKADE_ROOT) -> Target:
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        raise StockadeError(f"no process {pid}")
    # A process of a `stockade run` sandbox is audited as that runtime's (its checks,
    # not the host runc's): its init, or an ancestor, is a recorded sandbox.
    inits = {s["pid"]: s for s in runs.live(os.path.join(stockade_root, "run"))}
    p: int | None = pid
    for _ in range(64):
        if p is None or p <= 1:
            break
        if p in inits:
            return Target("pid", pid, name=str(pid), runtime="stockade",
                          rootfs=str(inits[p].get("rootfs") or ""),
                          container_id=str(inits[p].get("id", "")))
        p = parent_pid(p)
    return Target("pid", pid, name=str(pid))


def _payload(init: int) -> int:
    """The process to audit in a `stockade run` sandbox: the payload (the init's first
    child) when there is an init, else the recorded process itself."""
    child = first_child(init)
    return child if child is not None else init


def _run_target(state: dict[str, Any]) -> Target:
    cid = str(state.get("id", ""))
    return Target("stockade", _payload(int(state["pid"])), name=cid, runtime="stockade",
                  rootfs=str(state.get("rootfs") or ""), container_id=cid)


def from_self() -> Target:
    return Target("self", os.getpid(), name="self")


def _docker_target(info: dict[str, Any]) -> Target:
    state = info.get("State") or {}
    pid = int(state.get("Pid") or 0)
    name = str(info.get("Name", "")).lstrip("/")
    if not state.get("Running") or pid <= 0:
        raise StockadeError(f"docker container {name or info.get('Id', '?')} is not running")
    config = info.get("Config") or {}
    graph = (info.get("GraphDriver") or {}).get("Data") or {}
    return Target("docker", pid, name=name, runtime="docker", image=str(config.get("Image", "")),
                  rootfs=str(graph.get("MergedDir") or graph.get("Dir") or ""),
                  container_id=str(info.get("Id", "")))


def from_docker(name: str, client: DockerClient | None = None) -> Target:
    return _docker_target((client or DockerClient()).inspect(name))


def _load_state(path: str) -> dict[str, Any]:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise StockadeError(f"no container state at {path}") from None
    except (OSError, ValueError) as exc:
        raise StockadeError(f"unreadable container state {path}: {exc}") from None
    if not isinstance(data, dict):
        raise StockadeError(f"unexpected container state in {path}")
    return data


def _pid_of(state: dict[str, Any], path: str) -> int:
    for key in ("init_process_pid", "pid", "Pid", "init_pid"):
        value = state.get(key)
        if isinstance(value, int) and value > 0:
            return value
    raise StockadeError(f"{path} names no running process")


def from_runc(cid: str, root: str = RUNC_ROOT) -> Target:
    path = os.path.join(root, cid, "state.json")
    state = _load_state(path)
    rootfs = str((state.get("config") or {}).get("rootfs", ""))
    return Target("runc", _pid_of(state, path), name=cid, runtime="runc", rootfs=rootfs,
                  container_id=str(state.get("id", cid)))


def from_stockade(cid: str, root: str = STOCKADE_ROOT) -> Target:
    run = runs.read(os.path.join(root, "run", cid))  # a `stockade run` sandbox
    if run is not None:
        return _run_target(run)
    path = os.path.join(root, cid, "state.json")
    if not os.path.exists(path):
        # containers of `stockade oci` keep their state in the runtime's own format
        from stockade.oci import state as oci_state

        oci_root = root if os.path.isdir(os.path.join(root, cid)) else oci_state.DEFAULT_ROOT
        try:
            data = oci_state.read(oci_root, cid)
        except oci_state.StateError as exc:
            raise StockadeError(f"no container state for {cid} (no running `stockade run` "
                                f"record in {os.path.join(root, 'run', cid)}, no {path}, nor "
                                f"the OCI runtime's {oci_root}: {exc}); `stockade audit "
                                "--all` lists what runs") from None
        return Target("stockade", _pid_of(data, os.path.join(oci_root, cid)), name=cid, runtime="stockade",
                      rootfs=str(data.get("rootfs") or ""), container_id=cid)
    state = _load_state(path)
    rootfs = state.get("rootfs") or (state.get("config") or {}).get("rootfs") or ""
    return Target("stockade", _pid_of(state, path), name=cid, runtime="stockade", rootfs=str(rootfs),
                  container_id=str(state.get("id", cid)))


def _list_states(root: str) -> list[str]:
    try:
        return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "state.json")))
    except OSError:
        return []


def discover_all(runc_root: str = RUNC_ROOT, stockade_root: str = STOCKADE_ROOT,
                 client: DockerClient | None = None) -> tuple[list[Target], list[str]]:
    """Every container found on the host, deduplicated by PID; plus notes on what failed."""
    found: dict[int, Target] = {}
    notes: list[str] = []
    client = client or DockerClient()
    if os.path.exists(client.path):
        try:
            for cid in client.running_ids():
                try:
                    t = from_docker(cid, client)
                    found.setdefault(t.pid, t)
                except StockadeError as exc:
                    notes.append(str(exc))
        except StockadeError as exc:
            notes.append(str(exc))
    for kind, root in (("runc", runc_root), ("stockade", stockade_root)):
        for cid in _list_states(root):
            try:
                t = from_runc(cid, root) if kind == "runc" else from_stockade(cid, root)
            except StockadeError as exc:
                notes.append(str(exc))
                continue
            if os.path.exists(f"/proc/{t.pid}"):
                found.setdefault(t.pid, t)
    for state in runs.live(os.path.join(stockade_root, "run")):  # stale ones left out
        t = _run_target(state)
        found.setdefault(t.pid, t)
    return list(found.values()), notes


def with_docker_version(host: HostFacts, found: Sequence[Target]) -> HostFacts:
    """The host facts with the Docker Engine's version added when a Docker target is
    audited (unchanged when the Engine does not answer)."""
    if not any(t.runtime == "docker" for t in found):
        return host
    try:
        version = DockerClient().version()
    except StockadeError:
        return host
    runtimes = {**host.runtimes, "docker": RuntimeInfo("docker", version)}
    return dataclasses.replace(host, runtimes=MappingProxyType(runtimes))
