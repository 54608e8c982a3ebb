"""A private containerd using stockade through its runc shim (`ctr run --runc-binary`):
run, exec, kill, delete; and the Kubernetes node configuration of docs/OCI.md as
containerd reads it."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, require_tool
from tests.integration.engines.daemons import (
    CONTAINERD_IMAGE,
    Containerd,
    EngineUnavailable,
    containerd,
)


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ctrd-calls") / "calls.log"


@pytest.fixture(scope="module")
def ctrd(shared_rootfs: Path, stockade_wrapper: Path, calls: Path
         ) -> Iterator[tuple[Containerd, str]]:
    spy = calls.parent / "stockade-spy"
    spy.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {stockade_wrapper} "$@"\n')
    spy.chmod(0o755)
    try:
        with containerd(shared_rootfs) as c:
            yield c, str(spy)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


def _run(c: Containerd, spy: str, *args: str, detach: bool = False
         ) -> subprocess.CompletedProcess[str]:
    return c.ctr("run", "-d" if detach else "--rm", "--snapshotter", "native",
                 "--runc-binary", spy, CONTAINERD_IMAGE, *args)


def test_run(ctrd: tuple[Containerd, str], calls: Path) -> None:
    c, spy = ctrd
    cid = f"sk-{uuid.uuid4().hex[:8]}"
    r = _run(c, spy, cid, "sh", "-c", "echo hello; grep NoNewPrivs /proc/self/status; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout.splitlines()[0] == "hello"
    verbs = [line.split() for line in calls.read_text().splitlines() if cid in line.split()]
    assert {"create", "start", "delete"} <= {w for v in verbs for w in v}, verbs


def test_exec_kill_delete(ctrd: tuple[Containerd, str], calls: Path) -> None:
    c, spy = ctrd
    cid = f"sk-{uuid.uuid4().hex[:8]}"
    up = _run(c, spy, cid, "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done",
              detach=True)
    assert up.returncode == 0, up.stderr
    try:
        ex = c.ctr("task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo in-exec; exit 4")
        assert (ex.returncode, ex.stdout) == (4, "in-exec\n"), ex.stderr
        assert c.ctr("task", "kill", "-s", "SIGTERM", cid).returncode == 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ls = c.ctr("task", "ls").stdout
            if re.search(rf"^{cid}\s+\d+\s+STOPPED", ls, re.M):
                break
            time.sleep(0.1)
        assert re.search(rf"^{cid}\s+\d+\s+STOPPED", ls, re.M), ls
        gone = c.ctr("task", "delete", cid)
        assert gone.returncode == 0 and "exit code 7" in gone.stderr, gone.stderr
    finally:
        c.ctr("task", "delete", "-f", cid)
        assert c.ctr("container", "delete", cid).returncode == 0
    verbs = {w for line in calls.read_text().splitlines() if cid in line.split()
             for w in line.split()}
    assert {"create", "start", "exec", "kill", "delete"} <= verbs, verbs


def test_node_config_snippet_is_read_by_containerd(tmp_path: Path, stockade_wrapper: Path
                                                   ) -> None:
    """docs/OCI.md's runtime handler for a Kubernetes node, merged by containerd itself."""
    require_tool("containerd")
    doc = (REPO / "docs" / "OCI.md").read_text()
    snippet = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert snippet, "docs/OCI.md has no ```toml block"
    text = snippet.group(1).replace("/usr/local/bin/stockade-runtime", str(stockade_wrapper))
    conf = tmp_path / "config.toml"
    conf.write_text(f'version = 2\nroot = "{tmp_path}/root"\nstate = "{tmp_path}/state"\n'
                    + text)
    dump = subprocess.run(["containerd", "--config", str(conf), "config", "dump"],
                          capture_output=True, text=True, timeout=30)
    assert dump.returncode == 0, dump.stderr
    block = dump.stdout.split(
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.stockade]', 1)
    assert len(block) == 2, dump.stdout
    assert 'runtime_type = "io.containerd.runc.v2"' in block[1].split("\n\n")[0]
    assert f'BinaryName = "{stockade_wrapper}"' in block[1]
