"""Fake /proc and cgroupfs trees for parser and check tests (no privileges needed)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from stockade.linux.hostfacts import HostFacts

DOCKER_STATUS = {
    "Name": "sleep", "Pid": "4242", "Uid": "0\t0\t0\t0", "Gid": "0\t0\t0\t0", "Groups": "",
    "CapInh": "0000000000000000", "CapPrm": "00000000a80425fb", "CapEff": "00000000a80425fb",
    "CapBnd": "00000000a80425fb", "CapAmb": "0000000000000000", "NoNewPrivs": "0",
    "Seccomp": "2", "Seccomp_filters": "1",
}
DOCKER_MOUNTINFO = """\
600 500 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
601 600 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
602 600 0:56 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
603 600 0:57 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
604 603 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,memory
605 600 254:0 /var/lib/docker/containers/abc/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw
606 601 0:55 /sys /proc/sys ro,relatime - proc proc rw
607 601 0:58 / /proc/kcore rw,nosuid - tmpfs tmpfs rw,size=0k
"""
HOST_MOUNTINFO = """\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:15 - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:16 - cgroup cgroup rw,pids
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime shared:17 - cgroup cgroup rw,devices
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:18 - cgroup2 cgroup2 rw
"""
DOCKER_CGROUP = "12:pids:/docker/abc\n6:memory:/docker/abc\n5:devices:/docker/abc\n0::/docker/abc\n"
NS = {"pid": 4026532300, "net": 4026532303, "ipc": 4026532301, "uts": 4026532302,
      "cgroup": 0xEFFFFFFB, "user": 0xEFFFFFFD, "mnt": 4026532299}
HOST_NS = {"pid": 0xEFFFFFFC, "net": 0xEFFFFFF9, "ipc": 0xEFFFFFFF, "uts": 0xEFFFFFFE,
           "cgroup": 0xEFFFFFFB, "user": 0xEFFFFFFD, "mnt": 0xEFFFFFF8}


def host_facts(**kw: object) -> HostFacts:
    base: dict[str, object] = dict(kernel_release="6.18.44", kernel_version="Linux version 6.18.44",
                                   lsms=(), apparmor_enabled=False, selinux_mode="disabled",
                                   cgroup_mode="hybrid", cap_last_cap=40)
    base.update(kw)
    return HostFacts(**base)  # type: ignore[arg-type]


@dataclass
class FakeProc:
    """Writes /proc/<pid> and /proc/self under `root`, cgroup files under `root/fs`."""

    root: Path
    pid: int = 4242
    status: dict[str, str] = field(default_factory=lambda: dict(DOCKER_STATUS))
    mountinfo: str = DOCKER_MOUNTINFO
    cgroup: str = DOCKER_CGROUP
    uid_map: str = "         0          0 4294967295\n"
    ns: dict[str, int] = field(default_factory=lambda: dict(NS))
    environ: bytes = b"PATH=/bin\0HOME=/root\0DB_PASSWORD=hunter2\0"
    cgroup_files: dict[str, str] = field(default_factory=lambda: {
        "memory/docker/abc/memory.limit_in_bytes": "9223372036854771712",
        "pids/docker/abc/pids.max": "max",
        "devices/docker/abc/devices.list": "c *:* m\nb *:* m\nc 1:3 rwm\n",
    })

    def write(self) -> None:
        self._proc(str(self.pid), self.status, self.mountinfo, self.ns)
        self._proc("self", {"Pid": "1", "CapEff": "000001ffffffffff"}, HOST_MOUNTINFO, HOST_NS)
        for rel, text in self.cgroup_files.items():
            p = self.root / "fs" / "sys" / "fs" / "cgroup" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)

    def _proc(self, name: str, status: dict[str, str], mountinfo: str, ns: dict[str, int]) -> None:
        d = self.root / "proc" / name
        (d / "ns").mkdir(parents=True, exist_ok=True)
        (d / "attr").mkdir(exist_ok=True)
        (d / "stat").write_text(f"{status.get('Pid', '1')} (sleep) S 1 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 0\n")
        (d / "status").write_text("".join(f"{k}:\t{v}\n" for k, v in status.items()))
        (d / "mountinfo").write_text(mountinfo)
        (d / "cgroup").write_text(self.cgroup)
        (d / "uid_map").write_text(self.uid_map)
        (d / "gid_map").write_text(self.uid_map)
        (d / "environ").write_bytes(self.environ)
        (d / "attr" / "current").write_text("unconfined\n")
        for k, v in ns.items():
            link = d / "ns" / k
            if link.is_symlink():
                link.unlink()
            os.symlink(f"{k}:[{v}]", link)
        if not (d / "root").is_symlink():
            os.symlink("/", d / "root")
