from __future__ import annotations

import pytest

from stockade.audit import procfs


def test_mountinfo_fields_optional_and_escapes() -> None:
    line = r"36 35 98:0 /mnt1 /mnt\040with\040space rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue"
    (m,) = procfs.parse_mountinfo(line)
    assert m.mountpoint == "/mnt with space" and m.root == "/mnt1"
    assert (m.major, m.minor) == (98, 0)
    assert m.optional == ("master:1", "shared:7") and m.shared
    assert m.fstype == "ext3" and m.source == "/dev/root" and not m.read_only
    assert procfs.parse_mountinfo(line)[0].line().startswith("36 35 98:0")


def test_mountinfo_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        procfs.parse_mountinfo("not a mountinfo line")


def test_status_and_caps() -> None:
    st = procfs.parse_status("CapEff:\t000001ffffffffff\nUid:\t0\t0\t0\t0\nSeccomp:\t2\n")
    assert procfs.hex_field(st, "CapEff") == procfs.mask_of(40)
    assert procfs.int_list(st, "Uid") == (0, 0, 0, 0)


def test_full_mask_is_computed_from_cap_last_cap() -> None:
    assert procfs.mask_of(37) == 0x3FFFFFFFFF
    assert procfs.mask_of(40) == 0x1FFFFFFFFFF


def test_cgroup_v1_and_v2_lines() -> None:
    entries = procfs.parse_cgroup("12:pids:/docker/abc\n1:name=systemd:/x\n0::/docker/abc\n")
    assert entries[0].controllers == ("pids",)
    assert entries[1].controllers == ("name=systemd",)
    assert entries[2].hierarchy == 0 and entries[2].controllers == ()


def test_idmap_and_translation() -> None:
    r = procfs.parse_idmap("         0     100000      65536\n")
    assert procfs.map_to_inside(r, 100000) == 0
    assert procfs.map_to_inside(r, 100005) == 5
    assert procfs.map_to_inside(r, 0) is None


def test_ns_inode() -> None:
    assert procfs.ns_inode("pid:[4026531836]") == 0xEFFFFFFC
    with pytest.raises(ValueError):
        procfs.ns_inode("/not/a/link")


def test_environ_names_never_values() -> None:
    assert procfs.environ_names(b"A=1\0DB_PASSWORD=hunter2\0junk\0") == ("A", "DB_PASSWORD")
