"""Checks evaluated on Views built from fake /proc trees (no probes: pure evidence rows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stockade.audit import registry
from stockade.audit.checks import ALL
from stockade.audit.model import Status
from stockade.audit.probe import Outcome
from stockade.audit.view import View, build_view

from .fakeproc import FakeProc, host_facts


def view_of(tmp_path: Path, **kw: Any) -> View:
    fake = FakeProc(tmp_path, **kw)
    fake.write()
    return build_view(fake.pid, host_facts(), proc_root=str(tmp_path / "proc"),
                      fs_prefix=str(tmp_path / "fs"), runtime="docker", container_id="abc")


def status(view: View, cid: str, outcomes: dict[str, Outcome] | None = None, error: str = "") -> Status:
    return registry.evaluate(view, ALL[cid], {f"{cid}:{k}": v for k, v in (outcomes or {}).items()}, error).status


def test_docker_default_view(tmp_path: Path) -> None:
    v = view_of(tmp_path)
    assert v.cgroup_values["memory/memory.limit_in_bytes"] == "9223372036854771712"
    assert status(v, "PRIV-ALLCAPS") is Status.ABSENT
    assert status(v, "CAP-NONDEFAULT") is Status.ABSENT
    assert status(v, "USERNS-ABSENT") is Status.PRESENT
    assert status(v, "NS-HOST-PID") is Status.ABSENT
    assert status(v, "NS-HOST-CGROUP") is Status.PRESENT
    assert status(v, "RES-NO-MEMORY-LIMIT") is Status.PRESENT
    assert status(v, "RES-NO-PIDS-LIMIT") is Status.PRESENT
    assert status(v, "DEV-CGROUP-ALLOW-ALL") is Status.ABSENT
    assert status(v, "ROOTFS-RW") is Status.PRESENT
    assert status(v, "MNT-RW-NOSUID") is Status.ABSENT  # /etc/hosts is the runtime's own file
    assert status(v, "MNT-SHARED-PROPAGATION") is Status.ABSENT
    assert status(v, "NNP-DISABLED") is Status.PRESENT


def test_privileged_uses_cap_last_cap_not_a_constant(tmp_path: Path) -> None:
    st = {"CapEff": "000001ffffffffff", "CapBnd": "000001ffffffffff", "CapPrm": "000001ffffffffff"}
    fake = FakeProc(tmp_path)
    fake.status.update(st)
    fake.write()
    v = build_view(fake.pid, host_facts(), proc_root=str(tmp_path / "proc"))
    assert status(v, "PRIV-ALLCAPS") is Status.PRESENT
    # the old hard-coded 0x3fffffffff is *not* privileged on a cap_last_cap=40 kernel
    v2 = build_view(fake.pid, host_facts(cap_last_cap=40), proc_root=str(tmp_path / "proc"))
    object.__setattr__(v2, "status", {**v2.status, "CapEff": "0000003fffffffff", "CapBnd": "0000003fffffffff"})
    assert status(v2, "PRIV-ALLCAPS") is Status.ABSENT


def test_host_namespaces_by_initial_inode(tmp_path: Path) -> None:
    v = view_of(tmp_path, ns={"pid": 0xEFFFFFFC, "net": 0xEFFFFFF9, "ipc": 0xEFFFFFFF, "uts": 0xEFFFFFFE,
                              "cgroup": 4026532000, "user": 0xEFFFFFFD, "mnt": 4026532299})
    assert status(v, "NS-HOST-PID") is Status.PRESENT  # no proof supplied: present, not exploitable
    assert status(v, "NS-HOST-PID", {"comm": Outcome(True, None, "systemd")}) is Status.EXPLOITABLE
    assert status(v, "NS-HOST-NET") is Status.PRESENT
    assert status(v, "NS-HOST-IPC") is Status.PRESENT
    assert status(v, "NS-HOST-UTS") is Status.PRESENT


def test_sensitive_mounts(tmp_path: Path) -> None:
    extra = ("700 600 254:0 / /host rw,relatime - ext4 /dev/vda rw\n"
             "701 600 254:0 /etc /host-etc ro,relatime - ext4 /dev/vda rw\n"
             "702 600 254:0 /srv/data /data rw,relatime - ext4 /dev/vda rw\n"
             "703 600 0:5 / /host/proc rw - proc proc rw\n"
             "704 600 254:0 /var/run/docker.sock /run/docker.sock ro - ext4 /dev/vda rw\n")
    from .fakeproc import DOCKER_MOUNTINFO
    v = view_of(tmp_path, mountinfo=DOCKER_MOUNTINFO + extra)
    assert status(v, "MNT-HOST-ROOT") is Status.PRESENT
    assert status(v, "MNT-HOST-ROOT", {"/host": Outcome(True)}) is Status.EXPLOITABLE
    assert status(v, "MNT-HOST-VARLOG") is Status.PRESENT
    assert status(v, "MNT-HOST-PROC") is Status.PRESENT
    assert status(v, "SOCK-RUNTIME") is Status.PRESENT  # read-only bind: still present
    found = registry.evaluate(v, ALL["MNT-RW-NOSUID"], {}, "")
    assert any("/data" in e for e in found.evidence) and not any("docker.sock" in e for e in found.evidence)


def test_devices_allow_all_and_v2_limits(tmp_path: Path) -> None:
    v = view_of(tmp_path, cgroup_files={
        "devices/docker/abc/devices.list": "a *:* rwm\n",
        "unified/docker/abc/memory.max": "268435456",
        "unified/docker/abc/pids.max": "128",
    })
    assert status(v, "DEV-CGROUP-ALLOW-ALL") is Status.PRESENT
    assert status(v, "RES-NO-MEMORY-LIMIT") is Status.ABSENT
    assert status(v, "RES-NO-PIDS-LIMIT") is Status.ABSENT


def test_secrets_env_reports_names_only(tmp_path: Path) -> None:
    v = view_of(tmp_path)
    f = registry.evaluate(v, ALL["SECRETS-ENV"], {}, "")
    assert f.status is Status.PRESENT
    assert "DB_PASSWORD" in f.evidence[0] and "hunter2" not in repr(f)


def test_probe_rows_without_results_are_errors_not_passes(tmp_path: Path) -> None:
    v = view_of(tmp_path)
    for cid in ("USERNS-CREATE", "DEV-BLOCK", "PROCSYS-CORE-PATTERN", "RUNC-LEAKED-FD",
                "MASKED-PATHS-MISSING", "KEYRING-SHARED", "DEV-MEM-KMSG", "BINFMT-MISC", "ROUTE-LOCALNET"):
        assert status(v, cid, error="could not enter the container") is Status.ERROR, cid


def test_vanished_process_is_a_clear_error(tmp_path: Path) -> None:
    import pytest

    from stockade.errors import StockadeError
    with pytest.raises(StockadeError, match="no process"):
        build_view(99999, host_facts(), proc_root=str(tmp_path))


def test_runc_rows_only_from_the_host(tmp_path: Path) -> None:
    from stockade.linux.runtimes import RuntimeInfo
    fake = FakeProc(tmp_path)
    fake.write()
    old = RuntimeInfo("runc", "1.0.0-rc6", "1.0.0~rc6+dfsg1-3", frozenset())
    host = host_facts(runtimes={"runc": old})
    v = build_view(fake.pid, host, proc_root=str(tmp_path / "proc"), runtime="docker")
    assert status(v, "RUNC-CVE-2019-5736") is Status.PRESENT
    patched = RuntimeInfo("runc", "1.1.5+ds1", "1.1.5+ds1-1+deb12u1", frozenset({"CVE-2024-21626"}))
    v = build_view(fake.pid, host_facts(runtimes={"runc": patched}), proc_root=str(tmp_path / "proc"))
    assert status(v, "RUNC-CVE-2019-5736") is Status.ABSENT
    assert status(v, "RUNC-CVE-2025") is Status.PRESENT  # candidate: below upstream fix, no backport
    backported = RuntimeInfo("runc", "1.1.5+ds1", "1.1.5+ds1-1+deb12u2",
                             frozenset({"CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"}))
    v = build_view(fake.pid, host_facts(runtimes={"runc": backported}), proc_root=str(tmp_path / "proc"))
    assert status(v, "RUNC-CVE-2025") is Status.ABSENT
    v = build_view(fake.pid, host_facts(from_inside=True), proc_root=str(tmp_path / "proc"))
    assert status(v, "RUNC-CVE-2025") is Status.NOT_APPLICABLE
