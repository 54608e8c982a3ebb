"""Bad input on the command line: one line, exit 2, nothing half-written, no traceback.

Each test feeds the input that used to end in a traceback (or a wrong exit status) and
checks the one-line refusal and that nothing was left behind. Nothing here needs root:
every refusal comes before a sandbox, a container or an audit is started.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import yaml

from stockade.audit.model import AuditResult
from stockade.cli import COMMANDS, build_parser, main

SYSCALLS_ONLY = """\
stockade: 1
name: syscalls-only
syscalls:
  default: errno
  allow: [read, write, exit_group]
"""
# systemd and oci carry filesystem.deny, but not a glob in it
GLOB_DENY = """\
stockade: 1
name: globby
filesystem:
  deny: [/etc/shadow, "/srv/*/secret"]
"""


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(SYSCALLS_ONLY)
    return path


# ------------------------------------------------------------------ compile -o


def test_compile_output_onto_a_file_is_refused_and_the_file_untouched(
        policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "passwd"  # the /etc/passwd case, on a scratch file
    victim.write_text("root:x:0:0::/root:/bin/sh\n")
    before = sorted(os.listdir(tmp_path))
    assert main(["compile", str(policy), "-t", "seccomp-bpf", "-o", str(victim)]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert str(victim) in line and "not a directory" in line
    assert victim.read_text() == "root:x:0:0::/root:/bin/sh\n"
    assert sorted(os.listdir(tmp_path)) == before  # no temporary file, no directory


def test_compile_output_below_a_file_is_refused(
        policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "file"
    victim.write_text("x")
    assert main(["compile", str(policy), "-t", "all", "-o", str(victim / "sub")]) == 2
    err = capsys.readouterr().err  # the compile warnings of some targets, then the refusal
    assert "Traceback" not in err and "not a directory" in err.splitlines()[-1]
    assert victim.read_text() == "x" and sorted(os.listdir(tmp_path)) == ["file", "p.yaml"]


def test_compile_output_that_cannot_be_created(
        policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(policy), "-t", "seccomp-bpf", "-o", "/proc/nope/x"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "/proc/nope" in line and "No such file or directory" in line
    assert not os.path.exists("/proc/nope")


@pytest.mark.parametrize(("target", "blocked"), [
    ("docker", "docker-flags.txt"),  # the second file of one target: seccomp.json landed first
    ("all", "systemd/syscalls-only.service.d/50-stockade.conf"),  # the last target: ten landed first
])
def test_compile_writes_every_file_or_none(
        policy: Path, tmp_path: Path, target: str, blocked: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    (out / blocked).mkdir(parents=True)  # a directory where an output file goes
    assert main(["compile", str(policy), "-t", target, "-o", str(out)]) == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line == f"stockade: -o {out}: cannot write {out / blocked}: Is a directory"
    assert [p for p in out.rglob("*") if not p.is_dir()] == []  # no output, no tmp file


# ------------------------------------------------------------------ compile --strict


def test_strict_passes_a_syscalls_only_policy_for_seccomp_bpf(
        policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["compile", str(policy), "-t", "seccomp-bpf", "--strict", "-o", str(out)]) == 0
    assert (out / "seccomp.bpf").stat().st_size > 0
    assert "warning" not in capsys.readouterr().err


def test_strict_passes_apparmor_without_an_lsm_section(
        policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["compile", str(policy), "-t", "apparmor", "--strict", "-o", str(out)]) == 0
    assert "no lsm.apparmor section" in capsys.readouterr().out  # a note, on stdout


def test_strict_fails_on_a_rule_the_target_carries_the_kind_of(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "g.yaml"
    src.write_text(GLOB_DENY)
    out = tmp_path / "out"
    assert main(["compile", str(src), "-t", "systemd", "--strict", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "not enforced by any chosen target: filesystem.deny[/srv/*/secret]" in err
    assert "filesystem.deny[/etc/shadow]" not in err  # systemd enforces that one
    assert "nothing written" in err and not out.exists()


def test_strict_still_fails_on_backend_warnings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    web_api = Path(__file__).parents[2] / "examples" / "web-api.yaml"
    assert main(["compile", str(web_api), "-t", "docker", "--strict", "-o", str(out)]) == 1
    assert "user namespaces are a daemon setting" in capsys.readouterr().err
    assert not out.exists()


def test_warnings_name_their_target_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    web_api = Path(__file__).parents[2] / "examples" / "web-api.yaml"
    assert main(["compile", str(web_api), "-t", "docker", "-o", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "warning: docker: user namespaces" in err
    assert "docker: docker:" not in err


# ------------------------------------------------------------------ resources


@pytest.mark.parametrize(("key", "value", "found"), [
    ("memory", "-5Mi", "'-5Mi'"), ("memory", "0", "0"), ("memory", '"0.1"', "'0.1'"),
    ("memory", "1e400", "'1e400'"), ("swap", "-1", "-1"), ("cpu", "0", "0"), ("cpu", "-1", "-1"),
    ("cpu", "0.001", "0.001"), ("pids", "0", "0"), ("pids", "-3", "-3"),
])
def test_resources_out_of_range_are_refused_at_validation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, found: str) -> None:
    src = tmp_path / "r.yaml"
    src.write_text(f"stockade: 1\nname: r\nresources:\n  {key}: {value}\n")
    assert main(["validate", str(src)]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert line.startswith(f"{src}:4:3: resources.{key}: "), line  # validate: file:line first
    assert f"found {found}" in line and "expected" in line
    # the value never reaches a target (it used to become `docker run --memory -5242880`)
    assert main(["compile", str(src), "-t", "docker", "-o", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_meaningful_resources_still_pass(tmp_path: Path) -> None:
    src = tmp_path / "r.yaml"
    src.write_text("stockade: 1\nname: r\nresources: {memory: 1Mi, swap: 0, cpu: 0.01, pids: 1}\n")
    assert main(["validate", str(src)]) == 0


# ------------------------------------------------------------------ audit


@pytest.mark.parametrize("argv", [["--stockade", ""], ["--runc", ""], ["--docker", ""],
                                  ["--runc", "../../etc"], ["--stockade", "."]])
def test_audit_container_reference_that_names_nothing(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", *argv]) == 2
    assert "is not a container name or id" in _one_line_error(capsys.readouterr().err)


def test_audit_all_fix_to_one_yaml_file_is_refused_before_auditing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.yaml"
    assert main(["audit", "--all", "--fix", str(out), "--runc-root", str(tmp_path / "r"),
                 "--stockade-root", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "one policy is written per container" in err and "directory" in err
    assert not out.exists()


def _audited(name: str, caps: tuple[str, ...]) -> AuditResult:
    from stockade.audit.checks import ALL
    from stockade.audit.model import Finding, Status, Target

    c = ALL["CAP-SYS_ADMIN"]
    found = Finding(c.id, c.title, c.severity, Status.EXPLOITABLE, ("CapEff",), c.remediation,
                    c.references, "proof", (("capabilities.drop", ["SYS_ADMIN"]),))
    return AuditResult(Target("docker", 42, name=name, runtime="docker"), (found,), 0.01, (), caps)


def test_audit_all_fix_writes_one_valid_policy_per_container(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stockade.audit.fix import write_policies

    # the same name twice (`Web` and `web` sanitise alike): two files, two names
    results = [_audited("web", ("CHOWN", "SYS_ADMIN")), _audited("Web", ("NET_RAW",)),
               _audited("db", ())]
    out = tmp_path / "fixes"
    write_policies(str(out), results, many=True)
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["audit-fix-db.yaml", "audit-fix-web-2.yaml",
                                       "audit-fix-web.yaml"]
    for f in files:
        docs = list(yaml.safe_load_all(f.read_text()))
        assert len(docs) == 1 and docs[0]["name"] == f.stem  # one document, named as the file
        assert main(["validate", str(f)]) == 0, capsys.readouterr().err
    assert "SYS_ADMIN" not in (out / "audit-fix-web.yaml").read_text()


def test_audit_fix_for_one_container_is_a_valid_policy_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stockade.audit.fix import write_policies

    out = tmp_path / "fix.yaml"
    write_policies(str(out), [_audited("web", ("CHOWN",))], many=False)
    assert main(["validate", str(out)]) == 0, capsys.readouterr().err
    assert not list(tmp_path.glob(".stockade-*"))


def test_audit_jobs_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--all", "--jobs", "0"]) == 2
    assert "positive" in capsys.readouterr().err


# ------------------------------------------------------------------ run


@pytest.mark.parametrize("argv", [
    [],  # no command
    ["--rootfs", "{tmp}/missing", "--", "/bin/true"],
    ["--bind", "nocolon", "--", "/bin/true"],
    ["--bind", "/a:relative", "--", "/bin/true"],
    ["--bind", "{tmp}/missing:/mnt", "--", "/bin/true"],
    ["--keep", "--", "/bin/true"],
])
def test_run_bad_input_exits_2_with_one_line(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["run", *argv]) == 2  # was 110, though the README promises 2 for bad input
    line = _one_line_error(capsys.readouterr().err)
    assert line.startswith("stockade: step 'preflight' failed: ")  # was "stockade: stockade run: step"


# ------------------------------------------------------------------ --version, help


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"stockade {version('stockade')}"


def _parsers(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _parsers(sub, f"{path} {name}")
    return out


def test_every_option_has_help_and_shows_its_choices() -> None:
    parser = build_parser()
    walked = _parsers(parser, "stockade")
    assert {p.split()[1] for p, _ in walked if p.count(" ") == 1} >= set(COMMANDS) - {"demo"}
    missing, hidden = [], []
    for path, p in walked:
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = "/".join(action.option_strings) or action.dest
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {name}")
            elif action.choices and action.metavar is not None and "%(choices)" not in action.help \
                    and not all(str(c) in action.help for c in action.choices):
                hidden.append(f"{path} {name}")  # a metavar hides argparse's {a,b} list
        text = p.format_help()
        for action in p._actions:
            if action.choices and not isinstance(action, argparse._SubParsersAction):
                assert all(str(c) in text for c in action.choices), (path, action.dest)
    assert missing == [], f"options without help: {missing}"
    assert hidden == [], f"options whose choices --help does not show: {hidden}"


def test_every_command_help_renders(capsys: pytest.CaptureFixture[str]) -> None:
    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        assert "usage: stockade" in capsys.readouterr().out


def test_help_of_compile_documents_strict_and_audit_documents_fix(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "out of its scope" in out and "seccomp-bpf" in out
    assert main(["audit", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "one audit-fix-NAME.yaml policy per container" in out

