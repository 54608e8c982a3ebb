from __future__ import annotations

from typing import Any

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.profiles import docker, oci


def test_oci_fragment_web_api(web_api: Policy, host: HostFacts) -> None:
    frag, _ = oci.fragment(web_api, host)
    assert frag["process"]["noNewPrivileges"] is True
    assert frag["process"]["apparmorProfile"] == "web-api"
    assert "selinuxLabel" not in frag["process"]
    assert frag["process"]["capabilities"]["bounding"] == ["CAP_NET_BIND_SERVICE"]
    assert {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024} in frag["process"]["rlimits"]
    assert frag["root"] == {"readonly": True}
    lx = frag["linux"]
    assert "/etc/shadow" in lx["maskedPaths"]
    assert [n["type"] for n in lx["namespaces"]] == ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"]
    assert lx["resources"] == {"memory": {"limit": 256 * 2**20}, "pids": {"limit": 64},
                               "cpu": {"quota": 50000, "period": 100000}}
    assert "seccomp" in lx and lx["uidMappings"][0]["containerID"] == 0
    assert [m["destination"] for m in frag["mounts"]] == ["/tmp", "/var/cache/web"]
    assert frag["hostname"] == "web-api"


def test_oci_legacy(legacy: Policy, host: HostFacts) -> None:
    frag, _ = oci.fragment(legacy, host)
    assert frag["process"]["selinuxLabel"] == "system_u:system_r:legacy_daemon_t:s0"
    assert "network" not in [n["type"] for n in frag["linux"]["namespaces"]]  # host network
    assert "/etc" in frag["linux"]["readonlyPaths"]
    assert "/proc/sysrq-trigger" in frag["linux"]["maskedPaths"]
    assert "/proc/sysrq-trigger" not in frag["linux"]["readonlyPaths"]


def test_merge_into() -> None:
    base: dict[str, Any] = {"process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_KILL"]}},
            "mounts": [{"destination": "/proc"}, {"destination": "/tmp", "type": "bind"}]}
    out = oci.merge_into(base, {"process": {"capabilities": {"bounding": []}},
                                "mounts": [{"destination": "/tmp", "type": "tmpfs"}]})
    assert out["process"] == {"args": ["sh"], "capabilities": {"bounding": []}}
    assert out["mounts"] == [{"destination": "/proc"}, {"destination": "/tmp", "type": "tmpfs"}]
    assert base["process"]["capabilities"]["bounding"] == ["CAP_KILL"]  # not mutated


def test_docker_flags(web_api: Policy, host: HostFacts) -> None:
    f = docker.run_flags(web_api, host)
    line = " ".join(f)
    for part in ("--security-opt no-new-privileges", "--security-opt seccomp=seccomp.json",
                 "--security-opt apparmor=web-api", "--cap-drop ALL --cap-add CAP_NET_BIND_SERVICE",
                 "--read-only", "--tmpfs /tmp", "--network none", "--pids-limit 64", "--cpus 0.5",
                 "--ulimit nofile=1024:1024", "--hostname web-api"):
        assert part in line
    assert "apparmor=" not in " ".join(docker.run_flags(web_api, host, apparmor=False))


def test_docker_artifacts(legacy: Policy, host: HostFacts) -> None:
    art = docker.compile(legacy, host)
    names = [a.filename for a in art.files]
    assert names == ["seccomp.json", "legacy-daemon.apparmor", "docker-flags.txt"]
    flags = art.files[2].text or ""
    assert flags.startswith("docker run ") and "--network host" in flags
    assert "label=type:legacy_daemon_t" in flags and "--read-only" not in flags
