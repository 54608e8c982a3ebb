"""Vocabularies come from the real sources: libseccomp, systemd, the kernel."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from stockade.linux.host import cap_last_cap
from stockade.linux.libseccomp import pseudo_number
from stockade.linux.syscall_table import ARCH_TOKENS, syscall_table
from stockade.policy.vocab.capabilities import known_capabilities
from stockade.policy.vocab.groups import all_groups, expand_group

REQUIRED_ARCHES = ["x86_64", "x86", "x32", "aarch64", "arm", "riscv64", "s390x", "ppc64le"]


@pytest.mark.parametrize("arch", REQUIRED_ARCHES)
def test_every_required_arch_has_a_table(arch: str) -> None:
    table = syscall_table().by_arch[arch]
    assert len(table) > 250
    assert "read" in table or arch == "x32"


def test_known_numbers_match_the_kernel_abi() -> None:
    t = syscall_table()
    assert t.number("x86_64", "read") == 0 and t.number("x86_64", "openat") == 257
    assert t.number("aarch64", "openat") == 56 and t.number("aarch64", "open") is None
    assert t.number("x86", "socketcall") == 102
    assert t.number("x32", "read") == 0x40000000
    assert t.name("x86_64", 59) == "execve"


def test_pseudo_numbers_for_syscalls_not_on_the_native_arch() -> None:
    assert pseudo_number("socketcall") < 0 or ARCH_TOKENS  # resolved by libseccomp, never raises
    assert pseudo_number("read") == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_groups_match_systemd_on_this_machine() -> None:
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True,
                         text=True, check=True).stdout
    from tools.gen_groups import parse

    live = parse(out)
    assert {n: list(g["members"]) for n, g in live.items()} == {
        n: list(g.members) for n, g in all_groups().items()}


def test_group_names_are_systemds() -> None:
    names = set(all_groups())
    for required in ["@basic-io", "@file-system", "@io-event", "@ipc", "@network-io", "@process", "@signal",
                     "@timer", "@mount", "@module", "@raw-io", "@reboot", "@swap", "@clock", "@cpu-emulation",
                     "@debug", "@obsolete", "@privileged", "@resources", "@system-service", "@default", "@aio",
                     "@keyring", "@memlock", "@pkey", "@setuid", "@sync", "@chown", "@known"]:
        assert required in names
    assert {"mount", "umount2", "pivot_root"} <= expand_group("@mount")
    assert "@mount" not in expand_group("@privileged") and "mount" not in expand_group("@system-service")


def test_capabilities_follow_the_running_kernel() -> None:
    last = cap_last_cap()
    caps = known_capabilities()
    assert len(caps) == last + 1
    assert caps[21] == "CAP_SYS_ADMIN"
