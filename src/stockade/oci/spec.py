"""`stockade oci spec`: a hardened config.json from a policy (the counterpart of `runc spec`).

The skeleton is runc's default spec (the same mounts, `sh` as the program); the policy's
OCI fragment (stockade.profiles.oci) is merged over it: capabilities, seccomp, masked
and read-only paths, namespaces, id maps, rlimits, resources, no_new_privs.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from typing import Any

from stockade.errors import StockadeError

_MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
]


def base(rootless: bool) -> dict[str, Any]:
    mounts = copy.deepcopy(_MOUNTS)
    if rootless:
        # A new user namespace sharing the host's network cannot mount sysfs: bind it.
        mounts[-1] = {"destination": "/sys", "type": "bind", "source": "/sys",
                      "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "stockade",
        "mounts": mounts,
        "linux": {},
    }


def generate(policy_ref: str, rootless: bool) -> dict[str, Any]:
    from stockade.linux.hostfacts import HostFacts
    from stockade.policy.loader import load_policy
    from stockade.profiles.oci import fragment, merge_into

    policy = load_policy(policy_ref)
    frag, _warnings = fragment(policy, HostFacts.detect())
    cfg = merge_into(base(rootless), frag)
    linux = cfg["linux"]
    ns = [n["type"] for n in linux.get("namespaces", [])]
    if "uts" not in ns:
        cfg.pop("hostname", None)
    if "ipc" not in ns:
        cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] != "mqueue"]
    if rootless:
        uid, gid = policy.user.uid, policy.user.gid
        if "user" not in ns:
            linux["namespaces"].append({"type": "user"})
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"] \
            if "network" not in ns else linux["namespaces"]
        # One id each way (no helper): the policy's user is the invoker outside.
        linux["uidMappings"] = [{"containerID": uid, "hostID": os.getuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": gid, "hostID": os.getgid(), "size": 1}]
        linux.pop("resources", None)  # no cgroup delegation for an unprivileged runtime
        if "network" in ns:
            cfg["mounts"][-1] = _MOUNTS[-1]
    return cfg


def _from_image(cfg: dict[str, Any], policy_ref: str, image_ref: str, bundle: str,
                store_root: str | None) -> None:
    """A bundle from an image: its merged layers as `rootfs/`, the process from its
    config (Entrypoint/Cmd/Env/WorkingDir/User), the policy winning where they differ."""
    from pathlib import Path

    from stockade.image.process import resolve_process
    from stockade.image.rootfs import materialize_rootfs
    from stockade.image.store import Store
    from stockade.policy.loader import load_policy

    policy = load_policy(policy_ref)
    store = Store(Path(store_root) if store_root else None)
    rootfs = Path(bundle) / "rootfs"
    image = store.resolve(image_ref)
    import functools

    proc = resolve_process(image.config, [], policy.user, rootfs=functools.partial(store.read_file, image),
                           image_privileges=store.privileged_files(image),
                           no_new_privileges=policy.no_new_privileges)
    materialize_rootfs(store, image_ref, rootfs)
    cfg["root"] = {"path": "rootfs", "readonly": cfg.get("root", {}).get("readonly", True)}
    process = cfg.setdefault("process", {})
    process["args"] = list(proc.argv)
    process["env"] = list(proc.env)
    process["cwd"] = proc.cwd
    process.setdefault("user", {}).update({"uid": proc.uid, "gid": proc.gid})
    for refusal in proc.refusals:
        print(f"stockade oci spec: refused: {refusal}", file=sys.stderr)


def write_spec(policy_ref: str, rootless: bool, bundle: str, output: str | None,
               image: str | None = None, store_root: str | None = None) -> None:
    cfg = generate(policy_ref, rootless)
    if image:
        _from_image(cfg, policy_ref, image, bundle, store_root)
    text = json.dumps(cfg, indent=2) + "\n"
    if output == "-":
        sys.stdout.write(text)
        return
    path = output or os.path.join(bundle, "config.json")
    if output is None and os.path.exists(path):
        raise StockadeError(f"{path} exists; remove it or use -o")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def features() -> dict[str, Any]:
    from stockade.linux.consts import OCI_SECCOMP_FLAGS
    from stockade.oci.translate import HOOK_KINDS, NS_TYPES

    return {
        "ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0",
        "hooks": list(HOOK_KINDS),
        "mountOptions": ["ro", "rw", "nosuid", "nodev", "noexec", "bind", "rbind",
                         "shared", "rshared", "private", "rprivate", "slave", "rslave",
                         "unbindable", "runbindable"],
        "linux": {
            "namespaces": sorted(NS_TYPES),
            "capabilities": None,
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO",
                                                     "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                                     "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                                                     "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"],
                        "supportedFlags": sorted(OCI_SECCOMP_FLAGS)},
            "apparmor": {"enabled": True}, "selinux": {"enabled": True},
        },
    }
