"""Arches of both byte orders (issues 13.8, 14.3): `arches: all`, or any big-endian arch
next to the host's, gave `OSError: [Errno 33]` from seccomp_arch_add in every seccomp
target. The BPF program keeps the host byte order's arches and says which it left out;
the Docker/OCI JSON lists every arch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from stockade.cli import main
from stockade.linux.syscall_table import syscall_table
from stockade.seccomp.arches import BIG_ENDIAN
from stockade.seccomp.check import evaluate
from stockade.seccomp.filter import compile_filter
from tests.unit.seccomp.test_presets import HOST

POLICY = """\
stockade: 1
name: arches
syscalls:
  default: errno:EPERM
  arches: {arches}
  allow: [read, write, exit_group]
  rules:
    - syscalls: [socket]
      action: allow
      args: [{{index: 0, op: eq, value: 1}}]
"""
FILES = {"seccomp-bpf": "seccomp.bpf", "seccomp-docker": "seccomp.json", "seccomp-oci": "seccomp-oci.json"}


@pytest.mark.parametrize("arches", ["all", "[x86_64, s390x]", "[x86_64, ppc64]", "[x86, mips, mipsel]"])
@pytest.mark.parametrize("target", list(FILES))
def test_mixed_byte_orders_compile_to_every_target(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   arches: str, target: str) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY.format(arches=arches))
    out = tmp_path / "out"
    assert main(["compile", "-t", target, "--arch", "x86_64", "-o", str(out), str(policy)]) == 0
    data = (out / FILES[target]).read_bytes()
    err = capsys.readouterr().err
    named = arches.strip("[]").split(", ")
    big = ["s390x", "ppc64", "mips"] if arches == "all" else [a for a in named if a in BIG_ENDIAN]
    if target == "seccomp-bpf":
        assert "the BPF program leaves out" in err and all(a in err for a in big), err
        assert len(data) % 8 == 0 and data
    else:
        listed = json.loads(data)["architectures"]
        assert all(f"SCMP_ARCH_{a.upper()}" in listed for a in big), listed


def test_the_bpf_program_decides_its_arches_and_kills_the_rest(tmp_path: Path) -> None:
    from stockade.policy import model as m
    from stockade.policy.loader import load_policy

    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY.format(arches="[x86_64, s390x, x86]"))
    compiled = compile_filter(load_policy(str(policy)), HOST)
    assert compiled.arches == ("x86_64", "x86")
    table = syscall_table()
    for arch in compiled.arches:
        nr = table.number(arch, "socket") or 0
        assert evaluate(compiled.program, arch, nr, (1, 0, 0, 0, 0, 0)) == m.ALLOW
        assert evaluate(compiled.program, arch, nr, (2, 0, 0, 0, 0, 0)) == m.DENY_EPERM
    assert evaluate(compiled.program, "aarch64", 63) == m.Action(m.ActionKind.KILL_PROCESS)


def test_a_host_of_the_other_byte_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--arch s390x on a little-endian machine: the JSON targets compile, the BPF target is
    a one-line refusal (libseccomp writes this machine's byte order only)."""
    if sys.byteorder != "little":
        pytest.skip("written for a little-endian machine")
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY.format(arches="[x86_64, s390x]"))
    out = tmp_path / "out"
    assert main(["compile", "-t", "seccomp-oci", "--arch", "s390x", "-o", str(out), str(policy)]) == 0
    assert json.loads((out / "seccomp-oci.json").read_text())["architectures"] == [
        "SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"]
    capsys.readouterr()
    assert main(["compile", "-t", "seccomp-bpf", "--arch", "s390x", "-o", str(tmp_path / "bpf"), str(policy)]) == 2
    err = capsys.readouterr().err
    assert "cannot be built on this little-endian machine" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bpf").exists()
