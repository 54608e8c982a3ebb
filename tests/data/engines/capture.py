#!/usr/bin/env python3
"""Capture the config.json that docker, podman and containerd (ctr run) write, per case.

Run as root from the repository:  .venv/bin/python tests/data/engines/capture.py [ENGINE...]
Each engine is started privately (tests/integration/engines/daemons.py) with a "runtime"
that is a tiny shell script: on `create` it copies the bundle's config.json, then it execs
runc with the same arguments. The captured files are made machine-independent
(placeholders, see README.md) and written to tests/data/engines/<engine>/<case>.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.integration.engines import daemons  # noqa: E402

HERE = Path(__file__).resolve().parent
DEVICE = "/dev/fuse"  # a device every test host has and no runtime's /dev has by default
# The common flags of `docker run` and `podman run`: case name -> flags (VOL: the volume).
RUN_CASES: dict[str, tuple[str, ...]] = {
    "default": (),
    "memory": ("-m", "64m"),
    "cpus": ("--cpus", "0.5"),
    "pids-limit": ("--pids-limit", "50"),
    "cap-add": ("--cap-add", "NET_ADMIN"),
    "device": ("--device", DEVICE),
    "volume": ("-v", "VOL:/data"),
    "read-only": ("--read-only",),
    "tmpfs": ("--tmpfs", "/scratch:size=1m"),
    "sysctl": ("--sysctl", "net.ipv4.ip_forward=1"),
    "ulimit": ("--ulimit", "nofile=512:1024"),
    "security-opt": ("--security-opt", "no-new-privileges"),
}
CTR_CASES: dict[str, tuple[str, ...]] = {
    "default": (),
    "memory": ("--memory-limit", str(64 << 20)),
    "cpus": ("--cpus", "0.5"),
    "cap-add": ("--cap-add", "CAP_NET_ADMIN"),
    "device": ("--device", DEVICE),
    "volume": ("--mount", "type=bind,src=VOL,dst=/data,options=rbind:rw"),
    "read-only": ("--read-only",),
    "tmpfs": ("--mount", "type=tmpfs,src=tmpfs,dst=/scratch,options=size=1m"),
    "seccomp": ("--seccomp",),
}

SPY = """#!PYTHON
# copies config.json on `create` (and which bind sources are directories, as they are
# gone once the engine removes the container), then runs runc with the same arguments
import json, os, sys
args = sys.argv[1:]
if "create" in args:
    bundle = "."
    for i, a in enumerate(args):
        if a in ("--bundle", "-b"):
            bundle = args[i + 1]
        elif a.startswith("--bundle="):
            bundle = a.split("=", 1)[1]
    with open(os.path.join(bundle, "config.json")) as fh:
        cfg = json.load(fh)
    dirs = [m["source"] for m in cfg.get("mounts", []) if os.path.isdir(m.get("source", ""))]
    with open(os.path.join("OUT", args[-1] + ".json"), "w") as fh:
        json.dump({"config": cfg, "dirs": dirs}, fh)
os.execvp("runc", ["runc", *args])
"""


def sanitize(cfg: dict[str, Any], dirs: list[str], cid: str, engine_base: Path,
             volume: Path) -> dict[str, Any]:
    """Machine-specific values -> placeholders that tests/integration/engines fills in."""
    cfg["root"]["path"] = "@ROOTFS@"
    if "cgroupsPath" in cfg.get("linux", {}):
        cfg["linux"]["cgroupsPath"] = "@CGROUP@"
    for ns in cfg.get("linux", {}).get("namespaces", []):
        if ns.get("path"):
            ns["path"] = f"@NS:{ns['type']}@"
    names: set[str] = set()
    for m in cfg.get("mounts", []):
        src = m.get("source", "")
        if src == str(volume):
            m["source"] = "@SCRATCH@/dir/volume"
        elif src.startswith(str(engine_base) + "/"):
            kind = "dir" if src in dirs else "file"
            name = os.path.basename(src).lstrip(".") or "x"
            while name in names:
                name += "_"
            names.add(name)
            m["source"] = f"@SCRATCH@/{kind}/{name}"
    text = json.dumps(cfg, indent=2, sort_keys=True)
    text = text.replace(cid, "@ID@").replace(cid[:12], "@SHORTID@")
    if str(engine_base) in text:
        raise SystemExit(f"an engine path is left in the capture: {text}")
    out: dict[str, Any] = json.loads(text)
    return out


def capture(engine: str, cases: dict[str, tuple[str, ...]],
            run: Callable[[str, tuple[str, ...]], subprocess.CompletedProcess[str]],
            out_dir: Path, engine_base: Path, volume: Path) -> None:
    dest = HERE / engine
    dest.mkdir(exist_ok=True)
    for case, flags in cases.items():
        for f in out_dir.iterdir():
            f.unlink()
        flags = tuple(str(volume) if f == "VOL" else f.replace("VOL", str(volume))
                      for f in flags)
        res = run(case, flags)
        got = sorted(out_dir.iterdir())
        if len(got) != 1:
            raise SystemExit(f"{engine}/{case}: {len(got)} configs captured: {res.stderr}")
        seen = json.loads(got[0].read_text())
        clean = sanitize(seen["config"], seen["dirs"], got[0].stem, engine_base, volume)
        (dest / f"{case}.json").write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n")
        print(f"{engine}/{case}: exit {res.returncode}", res.stderr.strip()[:200])


def main() -> int:
    from tests.conftest import make_busybox_rootfs

    wanted = sys.argv[1:] or ["docker", "podman", "containerd"]
    tmp = Path(tempfile.mkdtemp(prefix="sk-capture-", dir="/tmp"))
    try:
        rootfs = make_busybox_rootfs(tmp / "rootfs")
        out_dir = tmp / "out"
        out_dir.mkdir()
        volume = tmp / "volume"
        volume.mkdir()
        spy = tmp / "spy"
        spy.write_text(SPY.replace("OUT", str(out_dir)).replace("PYTHON", sys.executable))
        spy.chmod(0o755)
        if "docker" in wanted:
            with daemons.dockerd(rootfs, {"capture": str(spy)}) as docker:
                capture("docker", RUN_CASES, lambda case, flags: docker(
                    "run", "--rm", "--runtime", "capture", *flags, daemons.IMAGE, "true"),
                    out_dir, docker.base, volume)
        if "podman" in wanted:
            with daemons.podman(rootfs) as pm:
                def podman_run(case: str, flags: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
                    limits = daemons.PODMAN_ULIMITS[2:] if case == "ulimit" else daemons.PODMAN_ULIMITS
                    return pm("--runtime", str(spy), "run", "--rm", *limits, *flags,
                              "localhost/" + daemons.IMAGE, "true")
                capture("podman", RUN_CASES, podman_run, out_dir, pm.base, volume)
        if "containerd" in wanted:
            with daemons.containerd(rootfs) as ctrd:
                capture("containerd", CTR_CASES, lambda case, flags: ctrd.ctr(
                    "run", "--rm", "--snapshotter", "native", "--runc-binary", str(spy),
                    *flags, daemons.CONTAINERD_IMAGE, f"capture-{case}", "true"),
                    out_dir, ctrd.base, volume)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
