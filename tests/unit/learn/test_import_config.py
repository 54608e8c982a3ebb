"""`stockade import oci-config|docker-inspect`: what a container may do today, as a policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stockade.cli import main
from stockade.importers.container_config import import_config
from stockade.policy.loader import load_policy
from stockade.policy.semantics import decide
from tests.conftest import MOBY_PROFILE

OCI = {
    "ociVersion": "1.0.2",
    "process": {"user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": True,
                "capabilities": {"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                                 "ambient": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]},
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "box",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "rw"]},
               {"destination": "/etc/app", "type": "bind", "source": "/srv/cfg", "options": ["bind", "ro"]},
               {"destination": "/run", "type": "tmpfs", "source": "tmpfs"}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"},
                             {"type": "ipc", "path": "/proc/1/ns/ipc"}],
              "resources": {"memory": {"limit": 268435456}, "pids": {"limit": 64},
                            "cpu": {"quota": 50000, "period": 100000}},
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]},
}

INSPECT = [{
    "Name": "/web", "Config": {"User": "33:33", "Hostname": "web"},
    "HostConfig": {"CapDrop": ["NET_RAW", "MKNOD"], "CapAdd": ["SYS_PTRACE"],
                   "SecurityOpt": ["no-new-privileges:true"], "ReadonlyRootfs": True,
                   "Tmpfs": {"/tmp": "rw"}, "NetworkMode": "bridge", "Memory": 134217728,
                   "PidsLimit": 100, "NanoCpus": 1500000000, "MaskedPaths": ["/proc/kcore"],
                   "Ulimits": [{"Name": "nofile", "Soft": 4096, "Hard": 8192}]},
    "Mounts": [{"Type": "bind", "Source": "/srv/www", "Destination": "/var/www", "RW": False},
               {"Type": "volume", "Source": "/var/lib/docker/volumes/x", "Destination": "/cache", "RW": True}],
}]


def _write(tmp_path: Path, name: str, data: object) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return str(p)


def test_oci_config(tmp_path: Path) -> None:
    cfg = dict(OCI)
    cfg["linux"] = dict(OCI["linux"], seccomp=json.loads(MOBY_PROFILE.read_text()))  # type: ignore[arg-type]
    src = _write(tmp_path, "config.json", cfg)
    out = tmp_path / "p.yaml"
    assert main(["import", "oci-config", src, "-o", str(out)]) == 0
    p = load_policy(str(out))
    assert p.capabilities.kept == {"CAP_KILL", "CAP_NET_BIND_SERVICE"}
    assert p.capabilities.ambient == ("KILL",) or set(p.capabilities.ambient) <= {"KILL", "CAP_KILL"}
    assert p.filesystem.root == "read-only"
    assert [e.path for e in p.filesystem.writable] == ["/data"]
    assert "/etc/app" in [e.path for e in p.filesystem.read_only]
    assert p.namespaces == {"pid", "net", "mount"}  # ipc joined by path: left out
    assert p.resources.memory == 268435456 and p.resources.pids == 64 and p.resources.cpu == 0.5
    assert p.user.uid == 1000 and p.rlimits["nofile"] == 1024
    assert str(decide(p, "mount", "x86_64").action) == "errno:EPERM"


def test_oci_config_without_seccomp_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    imp = import_config("oci-config", _write(tmp_path, "c.json", OCI), name="c")
    assert imp.document["syscalls"]["default"] == "allow"
    assert any("no seccomp" in w for w in imp.warnings)
    assert any("joined" in w for w in imp.warnings)


def test_docker_inspect(tmp_path: Path) -> None:
    src = _write(tmp_path, "inspect.json", INSPECT)
    out = tmp_path / "web.yaml"
    assert main(["import", "docker-inspect", src, "-o", str(out)]) == 0
    p = load_policy(str(out))
    kept = {c.removeprefix("CAP_") for c in p.capabilities.kept}
    assert "NET_RAW" not in kept and "MKNOD" not in kept and "SYS_PTRACE" in kept and "CHOWN" in kept
    assert p.no_new_privileges and p.filesystem.root == "read-only"
    assert [e.path for e in p.filesystem.writable] == ["/cache"]
    assert p.network.mode == "loopback"
    assert "user" not in p.namespaces and p.user.map == "host"
    assert p.resources.memory == 134217728 and p.resources.cpu == 1.5 and p.resources.pids == 100
    assert decide(p, "read", "x86_64").action.is_allow  # Docker's default seccomp profile


def test_docker_inspect_privileged(tmp_path: Path) -> None:
    data = [dict(INSPECT[0], HostConfig={"Privileged": True, "NetworkMode": "host"})]
    imp = import_config("docker-inspect", _write(tmp_path, "i.json", data), name="priv")
    assert imp.document["syscalls"]["default"] == "allow"
    assert "SYS_ADMIN" in imp.document["capabilities"]["add"]
    assert imp.document["network"]["mode"] == "host"


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never.yaml"
    assert main(["import", "docker-inspect", _write(tmp_path, "x.json", {"foo": 1}), "-o", str(out)]) == 2
    assert main(["import", "docker-inspect", _write(tmp_path, "two.json", INSPECT * 2), "-o", str(out)]) == 2
    assert main(["import", "oci-config", _write(tmp_path, "y.json", [1, 2]), "-o", str(out)]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["import", "oci-config", str(bad), "-o", str(out)]) == 2
    assert not out.exists()
