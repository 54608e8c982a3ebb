"""The CLI contract for the policy and compiler commands: output, exit codes, nothing
half-written on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stockade.cli import main
from tests.conftest import EXAMPLES, MOBY_PROFILE

BAD = "stockade: 1\nname: bad\nsyscalls:\n  allow: [mkdirr]\n"


def test_validate_ok_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, EXAMPLES), "strict"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{bad}:4:11: syscalls.allow[0]: unknown syscall; found 'mkdirr'; expected a syscall name "
                   "libseccomp knows, or an @group (did you mean 'mkdir'?)"]


def test_validate_strict_warns_for_syscalls_missing_on_an_arch(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("stockade: 1\nname: p\nsyscalls:\n  arches: [x86_64, aarch64]\n  allow: [open, read]\n")
    assert main(["validate", str(p)]) == 0
    assert main(["validate", "--strict", str(p)]) == 1


def test_show_resolved_is_loadable_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--resolved", str(EXAMPLES[0])]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["stockade"] == 1 and "extends" not in doc and doc["syscalls"]["allow"]


def test_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["groups", "@mount"]) == 0
    assert "pivot_root" in capsys.readouterr().out
    assert main(["groups", "--json", "--expand", "privileged"]) == 0
    assert "init_module" in json.loads(capsys.readouterr().out)["@privileged"]["members"]
    assert main(["groups", "@mnt"]) == 2


def test_schema_describes_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    import jsonschema

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    for example in EXAMPLES:
        jsonschema.validate(yaml.safe_load(example.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"stockade": 1, "name": "x", "syscall": {}}, schema)


def test_compile_targets_and_stdout(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["compile", "default", "--target", "seccomp-oci", "-o", "-"]) == 0
    doc = json.loads(capsysbinary.readouterr().out)
    assert doc["defaultAction"] == "SCMP_ACT_ERRNO"
    assert main(["compile", str(EXAMPLES[0]), "-t", "seccomp-bpf", "-o", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "seccomp.bpf").stat().st_size % 8 == 0


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    out = tmp_path / "out"
    assert main(["compile", str(bad), "-t", "all", "-o", str(out)]) == 2
    assert not out.exists()
    assert main(["compile", "default", "-t", "seccomp-nope", "-o", str(out)]) == 2
    assert not out.exists()
    assert main(["compile", str(tmp_path / "missing.yaml"), "-t", "seccomp-bpf", "-o", str(out)]) == 2
    assert not out.exists()
    assert main(["compile"]) == 2  # usage


def test_explain_agrees_with_the_bpf(capsys: pytest.CaptureFixture[str]) -> None:
    web = str(next(e for e in EXAMPLES if e.name == "web-api.yaml"))
    assert main(["explain", web, "socket", "--args", "AF_PACKET", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["decision"] == "errno:EAFNOSUPPORT" and answer["bpf"]["agrees"]
    assert "web-api.yaml:8:" in answer["why"]
    assert main(["explain", "default", "clone", "--args", "CLONE_NEWUSER", "--caps", "SYS_ADMIN", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "allow"
    assert main(["explain", "default", "clone", "--args", "CLONE_NEWUSER", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "errno:EPERM"
    assert main(["explain", "default", "mkdirr"]) == 2
    assert "did you mean 'mkdir'" in capsys.readouterr().err


def test_import_docker_seccomp_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "moby.yaml"
    assert main(["import", "docker-seccomp", str(MOBY_PROFILE), "-o", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": ')
    assert main(["import", "docker-seccomp", str(bad), "-o", str(tmp_path / "no.yaml")]) == 2
    assert not (tmp_path / "no.yaml").exists()


def test_verbose_shows_traceback_only_with_v(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    main(["show", str(bad)])
    assert "Traceback" not in capsys.readouterr().err
    main(["-v", "show", str(bad)])
    assert "Traceback" in capsys.readouterr().err
