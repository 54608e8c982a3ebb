"""`stockade import docker-inspect` on the real `docker inspect` of a real container."""

from __future__ import annotations

from pathlib import Path

from stockade.cli import main
from stockade.policy.loader import load_policy
from tests.conftest import Dockerd


def test_import_docker_inspect_of_a_created_container(dockerd: Dockerd, tmp_path: Path) -> None:
    cid = dockerd.docker(
        "create", "--cap-drop", "NET_RAW", "--cap-add", "SYS_NICE", "--read-only",
        "--memory", "64m", "--pids-limit", "50", "--network", "none",
        "--security-opt", "no-new-privileges", "--tmpfs", "/scratch",
        "--mount", f"type=bind,src={tmp_path},dst=/data,readonly",
        dockerd.image, "true").stdout.strip()
    try:
        inspect = tmp_path / "inspect.json"
        inspect.write_text(dockerd.docker("inspect", cid).stdout)
        out = tmp_path / "today.yaml"
        assert main(["import", "docker-inspect", str(inspect), "-o", str(out)]) == 0
        p = load_policy(str(out))
        assert "CAP_NET_RAW" not in p.capabilities.kept and "CAP_SYS_NICE" in p.capabilities.kept
        assert "CAP_CHOWN" in p.capabilities.kept
        assert p.filesystem.root == "read-only" and p.no_new_privileges
        assert "/scratch" in [e.path for e in p.filesystem.tmpfs]
        assert "/data" in [e.path for e in p.filesystem.read_only]
        assert p.network.mode == "none"
        assert p.resources.memory == 64 << 20 and p.resources.pids == 50
        # Docker's default seccomp profile: the same filter as the `default` preset
        assert main(["diff", "--check", "default", str(out)]) == 1  # SYS_NICE was added
        assert main(["diff", "--check", str(out), "default"]) == 1  # NET_RAW is back, ...
    finally:
        dockerd.docker("rm", "-f", cid, check=False)
