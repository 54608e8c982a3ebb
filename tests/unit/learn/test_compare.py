"""`stockade diff`: the compiled filters decide; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stockade.cli import main
from stockade.learn.compare import compare, load_side, samples
from stockade.linux.hostfacts import HostFacts
from tests.conftest import MOBY_PROFILE

HOST = HostFacts(arch="x86_64", kernel=(6, 18), cap_last_cap=40)

BASE = """stockade: 1
name: {name}
syscalls:
  default: errno
  arches: [x86_64]
  allow: [read, write, exit_group{extra}]
  rules:
    - syscalls: [socket]
      action: allow
      args: [{{index: 0, op: eq, value: AF_INET}}]
{rules}
capabilities: {{drop: [ALL], add: [{caps}]}}
network: {{mode: {net}}}
"""


def _policy(tmp_path: Path, name: str, extra: str = "", rules: str = "", caps: str = "",
            net: str = "none") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(BASE.format(name=name, extra=extra, rules=rules, caps=caps, net=net))
    return str(path)


def test_samples_flip_mask_bits() -> None:
    vectors = samples({(0, 0, 0x7E020000)})
    assert (0x10000000, 0, 0, 0, 0, 0) in vectors and (0, 0, 0, 0, 0, 0) in vectors


def test_added_syscall_argument_and_caps(tmp_path: Path) -> None:
    a = _policy(tmp_path, "a")
    six = "    - syscalls: [socket]\n      action: allow\n      args: [{index: 0, op: eq, value: AF_INET6}]"
    b = _policy(tmp_path, "b", extra=", mkdir", rules=six, caps="CHOWN", net="loopback")
    report = compare(load_side(a, HOST), load_side(b, HOST), HOST)
    rows = {(c.syscall, c.args, c.change) for c in report.syscalls}
    assert ("mkdir", "", "added") in rows
    assert ("socket", "arg0=0xa", "added") in rows
    assert not any(c.syscall == "socket" and c.args == "arg0=0x2" for c in report.syscalls)
    assert report.capabilities == {"added": ["CAP_CHOWN"], "removed": []}
    assert report.looser
    back = compare(load_side(b, HOST), load_side(a, HOST), HOST)
    assert {c.change for c in back.syscalls} == {"removed"} and not back.looser


def test_policy_and_docker_json_mix(tmp_path: Path) -> None:
    report = compare(load_side(str(MOBY_PROFILE), HOST), load_side("default", HOST), HOST)
    assert report.syscalls == () and not report.looser
    assert report.capabilities is None


def test_cli_check_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _policy(tmp_path, "a")
    b = _policy(tmp_path, "b", extra=", mkdir")
    assert main(["diff", "--check", b, a]) == 0
    assert main(["diff", "--check", a, b]) == 1
    capsys.readouterr()
    assert main(["diff", "--json", a, b]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["b_looser_than_a"] is True
    assert {"arch": "x86_64", "syscall": "mkdir", "args": "", "a": "errno:EPERM", "b": "allow",
            "change": "added"} in data["syscalls"]


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _policy(tmp_path, "a")
    unknown = tmp_path / "x.json"
    unknown.write_text('{"hello": 1}')
    assert main(["diff", str(unknown), a]) == 2
    assert "unknown format" in capsys.readouterr().err
    arm = json.loads(MOBY_PROFILE.read_text())
    arm.pop("archMap", None)
    arm["architectures"] = ["SCMP_ARCH_AARCH64"]
    other = tmp_path / "arm.json"
    other.write_text(json.dumps(arm))
    assert main(["diff", str(other), a]) == 2
    assert "do not overlap" in capsys.readouterr().err
    assert main(["diff", str(tmp_path / "missing.yaml"), a]) == 2
