"""The plan kinds with a golden document in tests/data/plans/ (one `<kind>.json` each),
built from fixed inputs: a config.json written here, a fixed cgroup hierarchy and fixed
host facts. The only machine-dependent input, the scratch bundle's path, is written as
/bundle. `python tools/regen_plans.py` rewrites the files from this module."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stockade.executor import plan_json
from stockade.runner.cgroups import Hierarchy

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "plans"
BUNDLE = "/bundle"  # the scratch bundle's path, as written in the golden files
HOST = plan_json.HostFacts(cap_last_cap=40, euid=0, kernel="6.1.0-golden")
BUILD = "golden-build"

HYBRID = Hierarchy("hybrid", tuple((c, f"/sys/fs/cgroup/{c}", "/") for c in
                                   ("cpu", "cpuacct", "devices", "freezer", "memory", "pids")),
                   "/sys/fs/cgroup/unified", "/")
V2 = Hierarchy("v2", (), "/sys/fs/cgroup", "/")

# `runc spec`'s own output (tests/data/seeds/), terminal off: engines' minimal bundles
RUNC_SPEC: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "data" / "seeds" / "runc-spec-config.json").read_text())
RUNC_SPEC["process"]["terminal"] = False


def _minimal() -> dict[str, Any]:
    return copy.deepcopy(RUNC_SPEC)


def _docker_like() -> dict[str, Any]:
    """What dockerd writes for `docker run --read-only --tmpfs /run -v data:/data`:
    masks, read-only paths, device rules, a bind, sysctls, an oom score, annotations,
    no HOME (read from the rootfs's /etc/passwd when the plan runs)."""
    cfg = _minimal()
    proc = cfg["process"]
    proc["env"] = ["PATH=/usr/bin:/bin", "container=docker"]
    proc["args"] = ["/bin/sh", "-c", "echo $HOME"]
    proc["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 18}
    proc["oomScoreAdj"] = 500
    proc["rlimits"].append({"type": "RLIMIT_CORE", "hard": 18446744073709551615,
                            "soft": 18446744073709551615})
    proc["capabilities"] = {k: ["CAP_CHOWN", "CAP_KILL"]
                            for k in ("bounding", "effective", "permitted")}
    cfg["hostname"] = "c0ffee"
    cfg["mounts"] += [
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
         "options": ["rw", "nosuid", "nodev", "noexec", "size=1m"]},
        {"destination": "/data", "type": "bind", "source": "data",
         "options": ["rbind", "rprivate", "ro"]},
    ]
    lin = cfg["linux"]
    lin["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    ]
    lin["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "0"}
    lin["maskedPaths"] += ["/proc/interrupts", "/sys/devices/virtual/powercap"]
    lin["readonlyPaths"] += ["/proc/asound"]
    lin["cgroupsPath"] = "/docker/c0ffee"
    cfg["annotations"] = {"org.opencontainers.image.ref.name": "busybox", "x": "y\"z"}
    return cfg


def _lsm_labels() -> dict[str, Any]:
    """An engine's exec labels (docker: apparmorProfile docker-default): stored, the
    executor writes them (the kernel must hold the profile already)."""
    cfg = _minimal()
    cfg["process"]["apparmorProfile"] = "docker-default"
    cfg["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0:c1,c2"
    return cfg


def _limits() -> dict[str, Any]:
    cfg = _minimal()
    cfg["linux"]["resources"].update({
        "memory": {"limit": 67108864, "reservation": 33554432, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 64},
    })
    return cfg


def _limits_v2() -> dict[str, Any]:
    cfg = _limits()
    del cfg["linux"]["resources"]["memory"]["swappiness"]  # v2 warns: never stored
    cfg["linux"]["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rw"})
    return cfg


def _userns() -> dict[str, Any]:
    cfg = _minimal()
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return cfg


# kind: (config.json, hierarchy)
KINDS: dict[str, tuple[Callable[[], dict[str, Any]], Hierarchy]] = {
    "minimal": (_minimal, HYBRID),
    "docker_like": (_docker_like, HYBRID),
    "cgroup_v1_limits": (_limits, HYBRID),
    "cgroup_v2_limits": (_limits_v2, V2),
    "userns": (_userns, HYBRID),
    "lsm_labels": (_lsm_labels, HYBRID),
}


def make_bundle(scratch: Path, cfg: dict[str, Any]) -> bytes:
    """A bundle in scratch (rootfs with /etc/passwd, a `data` directory); config.json."""
    (scratch / "rootfs" / "etc").mkdir(parents=True, exist_ok=True)
    (scratch / "rootfs" / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (scratch / "data").mkdir(exist_ok=True)
    config = json.dumps(cfg).encode()
    (scratch / "config.json").write_bytes(config)
    return config


def document(kind: str, scratch: Path) -> dict[str, Any]:
    """The plan document of a kind, as fastplan.store builds it, from fixed inputs."""
    from stockade.oci import config as oci_config
    from stockade.oci.fastplan import deps_of, why_not
    from stockade.oci.translate import translate

    make_cfg, hierarchy = KINDS[kind]
    cfg = make_cfg()
    raw = make_bundle(scratch, cfg)
    oci_config.validate(cfg)
    cfg = oci_config.strip_nulls(cfg)
    c = translate(cfg, str(scratch), "golden", last_cap=HOST.cap_last_cap, euid=HOST.euid,
                  home=False)  # as `stockade oci` translates for a stored plan
    why = why_not(c, hierarchy)
    if why is not None and why != "not root":
        raise AssertionError(f"plan kind {kind} is never stored: {why}")
    return plan_json.document(c, hierarchy, raw, HOST, deps_of(cfg, c), BUILD)


def golden_text(kind: str, scratch: Path) -> bytes:
    """The golden file's bytes: the stored form, the scratch path written as /bundle."""
    real = str(scratch.resolve())
    return plan_json.dumps(document(kind, scratch)).replace(real.encode(), BUNDLE.encode())
