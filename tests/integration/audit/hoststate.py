"""A snapshot of host state the audit must never change: /proc/sys knobs, the mount table,
the cgroup trees."""

from __future__ import annotations

import os
from typing import Any

KNOBS = ("kernel/core_pattern", "kernel/modprobe", "kernel/hostname", "kernel/domainname",
         "kernel/sysrq", "kernel/panic", "kernel/kptr_restrict", "kernel/dmesg_restrict",
         "vm/panic_on_oom", "vm/overcommit_memory", "net/ipv4/conf/all/route_localnet",
         "net/ipv4/ip_forward", "fs/suid_dumpable", "user/max_user_namespaces")


def _knobs() -> dict[str, str]:
    out = {}
    for k in KNOBS:
        try:
            with open(f"/proc/sys/{k}") as fh:
                out[k] = fh.read()
        except OSError as exc:
            out[k] = f"<{exc.errno}>"
    try:
        out["binfmt_misc"] = ",".join(sorted(os.listdir("/proc/sys/fs/binfmt_misc")))
    except OSError:
        out["binfmt_misc"] = "<none>"
    for p in ("/sys/kernel/uevent_helper",):
        try:
            with open(p) as fh:
                out[p] = fh.read()
        except OSError:
            out[p] = "<none>"
    return out


# dockerd's own state (its exec-root gets a netns bind mount when the first --net=host
# container starts) is the daemon's business, not the audit's
NOISE = ("/tmp/stockade-dockerd-",)


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        # mount ids and peer groups are renumbered by unrelated activity; compare the rest
        return sorted(" ".join(line.split()[3:6]) + " " + line.split(" - ", 1)[1].strip()
                      for line in fh if not line.split()[4].startswith(NOISE))


def _cgroups() -> list[str]:
    out = []
    for top in ("/sys/fs/cgroup",):
        for dirpath, dirnames, _ in os.walk(top):
            depth = dirpath[len(top):].count("/")
            if depth >= 3:
                dirnames[:] = []
            out.append(dirpath)
    return sorted(out)


def _hierarchies() -> list[str]:
    # a named v1 hierarchy that outlived the CG1 probe would show up here
    with open("/proc/self/cgroup") as fh:
        return sorted(line.split(":")[1] for line in fh)


def snapshot() -> dict[str, Any]:
    return {"knobs": _knobs(), "mounts": _mounts(), "cgroups": _cgroups(),
            "hierarchies": _hierarchies()}
