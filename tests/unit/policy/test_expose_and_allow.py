"""filesystem.expose (a plain host path list) and network.allow as a grant (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.errors import StockadeError
from stockade.policy.loader import load_policy
from stockade.policy.network import EAFNOSUPPORT
from stockade.policy.semantics import decide

AF_INET, AF_INET6, AF_UNIX, SOCK_STREAM, SOCK_DGRAM = 2, 10, 1, 1, 2


def _write(tmp_path: Path, body: str, base: str = "strict") -> str:
    path = tmp_path / "p.yaml"
    path.write_text(f"stockade: 1\nname: p\nextends: [{base}]\n{body}")
    return str(path)


def test_expose_is_merged_and_leaves_digests_of_others_alone(tmp_path: Path) -> None:
    plain = load_policy(_write(tmp_path, "filesystem: {root: read-only}\n"))
    shown = load_policy(_write(tmp_path, "filesystem:\n  expose: [/opt/app, /srv/ro]\n"))
    assert [e.path for e in shown.filesystem.expose] == ["/opt/app", "/srv/ro"]
    assert plain.filesystem.expose == ()
    assert shown.digest != plain.digest
    assert plain.digest == load_policy(_write(tmp_path, "filesystem: {root: read-only}\n")).digest


def test_expose_refuses_a_glob_with_its_location(tmp_path: Path) -> None:
    with pytest.raises(StockadeError) as exc:
        load_policy(_write(tmp_path, "filesystem:\n  expose: [/opt/*]\n"))
    assert "filesystem.expose" in str(exc.value) and "p.yaml:5" in str(exc.value)


def test_allow_grants_what_strict_denies(tmp_path: Path) -> None:
    pol = load_policy(_write(tmp_path, 'network:\n  mode: loopback\n  allow: [unix, "inet:tcp"]\n'))
    granted = decide(pol, "socket", "x86_64", (AF_INET, SOCK_STREAM, 0, 0, 0, 0))
    assert granted.action.is_allow and granted.reason == "network"
    # not listed: strict's own deny still answers (EPERM), naming its entry
    udp = decide(pol, "socket", "x86_64", (AF_INET, SOCK_DGRAM, 0, 0, 0, 0))
    assert str(udp.action) == "errno:EPERM" and udp.reason == "deny"
    unix = decide(pol, "socket", "x86_64", (AF_UNIX, SOCK_STREAM, 0, 0, 0, 0))
    assert unix.action.is_allow and unix.reason == "rule"


def test_allow_under_default_keeps_eafnosupport(tmp_path: Path) -> None:
    pol = load_policy(_write(tmp_path, "network:\n  mode: loopback\n  allow: [unix]\n",
                             base="default"))
    six = decide(pol, "socket", "x86_64", (AF_INET6, SOCK_STREAM, 0, 0, 0, 0))
    assert six.action == EAFNOSUPPORT and six.reason == "network"


def test_compiled_filter_agrees(tmp_path: Path) -> None:
    from stockade.linux.hostfacts import HostFacts
    from stockade.linux.syscall_table import syscall_table
    from stockade.seccomp.check import evaluate
    from stockade.seccomp.filter import compile_filter

    pol = load_policy(_write(tmp_path, 'network:\n  mode: loopback\n  allow: [unix, "inet:tcp"]\n'))
    host = HostFacts(arch="x86_64", kernel=(6, 1), cap_last_cap=40, landlock_abi=7)
    program = compile_filter(pol, host).program
    nr = syscall_table().number("x86_64", "socket")
    for args in ((AF_INET, SOCK_STREAM), (AF_INET, SOCK_DGRAM), (AF_UNIX, SOCK_DGRAM),
                 (AF_INET6, SOCK_STREAM), (17, 3)):
        full = (*args, 0, 0, 0, 0)
        assert evaluate(program, "x86_64", nr, full) == decide(pol, "socket", "x86_64",
                                                               full).action, args
