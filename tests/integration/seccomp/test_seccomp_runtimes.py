"""The OCI output under real runc and the Docker output under a real dockerd."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from stockade.linux.hostfacts import HostFacts
from stockade.policy.loader import load_policy
from stockade.seccomp.docker_json import docker_seccomp, oci_seccomp
from tests.conftest import Dockerd, require_root, require_tool

PROBE = "mkdir /tmp/x 2>&1; echo mkdir=$?; uname -s; echo uname=$?"


def denying_policy(tmp_path: Path) -> str:
    path = tmp_path / "deny-mkdir.yaml"
    path.write_text(textwrap.dedent("""\
        stockade: 1
        name: deny-mkdir
        extends: [default]
        syscalls:
          rules:
            - {syscalls: [mkdir, mkdirat], action: "errno:EXDEV"}
        """))
    return str(path)


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_oci_seccomp_under_a_real_runtime(runtime: str, tmp_path: Path, busybox_rootfs: Path) -> None:
    require_root()
    binary = require_tool(runtime)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    subprocess.run([binary, "spec"], cwd=bundle, check=True, capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(busybox_rootfs), "readonly": False}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/sh", "-c", PROBE]
    config["linux"]["seccomp"] = oci_seccomp(load_policy(denying_policy(tmp_path)), HostFacts.detect())
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev/pts" or runtime == "runc"]
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})
    (bundle / "config.json").write_text(json.dumps(config))
    name = f"stockade-test-{uuid.uuid4().hex[:8]}"
    try:
        out = subprocess.run([binary, "run", "--bundle", str(bundle), name], capture_output=True, text=True,
                             timeout=60)
    finally:
        subprocess.run([binary, "delete", "--force", name], capture_output=True)
    if runtime == "crun" and "hybrid mode not supported" in out.stderr:
        pytest.skip("crun refuses this host's cgroup v1/v2 hybrid layout")
    assert out.returncode == 0, out.stderr
    assert "Invalid cross-device link" in out.stdout  # EXDEV: the policy's errno, from the kernel
    assert "mkdir=1" in out.stdout
    assert "Linux" in out.stdout and "uname=0" in out.stdout


def test_docker_seccomp_under_a_real_dockerd(tmp_path: Path, dockerd: Dockerd) -> None:
    profile = tmp_path / "seccomp.json"
    profile.write_text(json.dumps(docker_seccomp(load_policy(denying_policy(tmp_path)), HostFacts.detect())))
    out = dockerd.docker("run", "--rm", "--network", "none", "--security-opt", f"seccomp={profile}",
                         "--tmpfs", "/tmp", dockerd.image, "/bin/sh", "-c", PROBE + "; grep Seccomp: /proc/self/status",
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "Invalid cross-device link" in out.stdout and "uname=0" in out.stdout
    assert "Seccomp:\t2" in out.stdout


def test_docker_accepts_every_example(tmp_path: Path, dockerd: Dockerd) -> None:
    from tests.conftest import EXAMPLES

    for example in EXAMPLES:
        policy = load_policy(str(example))
        profile = tmp_path / f"{policy.name}.json"
        profile.write_text(json.dumps(docker_seccomp(policy, HostFacts.detect())))
        # no-new-privileges as the policy says: runc then loads the filter just before exec,
        # after its own setgroups/setuid (which batch-job's filter denies)
        out = dockerd.docker("run", "--rm", "--network", "none", "--security-opt", f"seccomp={profile}",
                             "--security-opt", "no-new-privileges", dockerd.image, "/bin/true", check=False)
        assert out.returncode == 0, (example.name, out.stderr)


def test_runtimes_are_real() -> None:
    """Guard: these tests must not pass by skipping everything on CI (which runs as root)."""
    import os

    if os.geteuid() == 0:
        assert shutil.which("runc"), ".ci/run installs runc"
