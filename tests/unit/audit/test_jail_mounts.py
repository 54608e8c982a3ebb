"""MNT-HOST-ROOT and the `stockade run` jail (issue 16): the host's software read-only is
not a finding; written to, or any /etc, /root, /home bind, it still is."""

from __future__ import annotations

from pathlib import Path

from stockade.audit.model import Status

from .fakeproc import DOCKER_MOUNTINFO
from .test_checks_fake_proc import status, view_of

JAIL = ("800 600 254:0 /usr /usr ro,nosuid,nodev,relatime - ext4 /dev/vda rw\n"
        "801 600 254:0 /etc/passwd /etc/passwd ro,nosuid,nodev - ext4 /dev/vda rw\n"
        "802 600 254:0 /etc/ssl /etc/ssl ro,nosuid,nodev - ext4 /dev/vda rw\n")


def test_read_only_usr_is_not_a_host_root_finding(tmp_path: Path) -> None:
    v = view_of(tmp_path, mountinfo=DOCKER_MOUNTINFO + JAIL)
    assert status(v, "MNT-HOST-ROOT") is Status.ABSENT


def test_writable_usr_still_is(tmp_path: Path) -> None:
    rw = JAIL.replace("/usr /usr ro,", "/usr /usr rw,")
    v = view_of(tmp_path, mountinfo=DOCKER_MOUNTINFO + rw)
    assert status(v, "MNT-HOST-ROOT") is Status.PRESENT


def test_read_only_etc_root_home_still_are(tmp_path: Path) -> None:
    for src in ("/etc", "/root", "/home", "/"):
        line = f"803 600 254:0 {src} /h ro,nosuid - ext4 /dev/vda rw\n"
        v = view_of(tmp_path, mountinfo=DOCKER_MOUNTINFO + JAIL + line)
        assert status(v, "MNT-HOST-ROOT") is Status.PRESENT, src
