"""The command line's entry (stockade.cli): one parser per verb, only that verb's module
imported, argparse's errors, the teardown skipped for `run`/`oci` only, the arrows
running downward; the plain-class Location; the fast entry script. No sandbox is
started here."""

from __future__ import annotations

import copy
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stockade import entry_script
from stockade.cli import COMMANDS, build_parser, main, parse, verb_parser
from stockade.errors import Location, PolicyError

SRC = Path(__file__).resolve().parents[2] / "src" / "stockade"


def _subparser(verb: str) -> object:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[verb]  # type: ignore[index]


@pytest.mark.parametrize("verb", list(COMMANDS))
def test_a_verb_parser_is_the_whole_parser_s_subcommand(verb: str) -> None:
    """`stockade VERB --help` is the same text whichever parser prints it."""
    assert verb_parser(verb).format_help() == _subparser(verb).format_help()  # type: ignore[attr-defined]


@pytest.mark.parametrize("argv", [
    ["run", "--policy", "strict", "--bind", "/a:/b:ro", "-e", "A=1", "--", "cmd", "-x"],
    ["-v", "run", "/bin/echo", "--policy", "x"],
    ["oci", "--root", "/r", "create", "-b", "/b", "c1"],
    ["oci", "delete", "--root", "/r", "-f", "c1"],
    ["audit", "--self", "--format", "json"],
    ["image", "--store", "/s", "rm", "-f", "a", "b"],
])
def test_parse_equals_the_whole_parser(argv: list[str]) -> None:
    assert vars(parse(argv)) == vars(build_parser().parse_args(argv))


def test_a_verb_imports_its_module_only() -> None:
    code = ("import sys; from stockade.cli import parse; a = parse(['run', '--', 'x']);"
            "assert a.command == 'run';"
            "print(sorted(m for m in sys.modules if m.startswith('stockade.cli.')"
            " or m.split('.')[0] in ('pydantic', 'rich', 'jinja2', 'yaml')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['stockade.cli.optable', 'stockade.cli.run']"


@pytest.mark.parametrize("argv", [["run", "--", "/bin/true"], ["oci", "--root", "R", "state", "ID"]])
def test_the_fast_path_does_not_import_argparse(argv: list[str]) -> None:
    """run/oci lines the option table's fast reader takes never import argparse (its
    imports and parser cost ~14 ms a start, bench/run_bench.py)."""
    code = ("import sys; from stockade.cli import parse;"
            f"a = parse({argv!r}); assert a.command == {argv[0]!r};"
            "print('argparse' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_argparse_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert main(["--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert main(["bogus"]) == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
    assert main(["run", "--dry-run"]) == 2  # no command: bad input (preflight)
    assert "no command given" in capsys.readouterr().err
    assert main(["run", "--help"]) == 0
    assert "--image" in capsys.readouterr().out
    assert main(["-vv", "run", "--dry-run", "--", "/bin/true"]) == 0
    assert "/bin/true" in capsys.readouterr().out


@pytest.mark.parametrize("argv,torn_down", [
    (["run", "--dry-run", "--", "/bin/true"], False),
    (["-v", "oci", "wrapper", "WRAPPER"], False),
    (["groups"], True),
])
def test_teardown_is_skipped_for_run_and_oci_only(argv: list[str], torn_down: bool,
                                                   tmp_path: Path) -> None:
    """run/oci end without the interpreter's teardown (atexit handlers do not run), and
    what they printed is still all there."""
    argv = [str(tmp_path / a) if a == "WRAPPER" else a for a in argv]
    code = ("import atexit, os, sys; atexit.register(lambda: os.write(1, b'TORN-DOWN\\n'));"
            f"sys.argv = ['stockade', *{argv!r}]; from stockade.cli import entry; entry()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert ("TORN-DOWN" in r.stdout) is torn_down
    if argv[0] == "run":
        assert re.search(r"^command +/bin/true$", r.stdout, re.M)
    if torn_down:
        assert r.stdout.index("TORN-DOWN") > 0  # after the command's own output


def test_arrows_run_downward() -> None:
    """No domain module imports the command line (stockade.cli sits on top)."""
    upward = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "cli" or path.name == "__main__.py" or path.name == "entry_script.py":
            continue
        text = path.read_text()
        if re.search(r"^\s*(from stockade\.cli\b|import stockade\.cli\b|from stockade import cli\b)",
                     text, re.M):
            upward.append(str(path.relative_to(SRC)))
    assert upward == []


def test_location_keeps_the_dataclass_api() -> None:
    a = Location("p.yaml", 3, 5, "syscalls.allow[2]")
    assert (a.file, a.line, a.column, a.key_path) == ("p.yaml", 3, 5, "syscalls.allow[2]")
    assert str(a) == "p.yaml:3:5" and str(Location("p.yaml")) == "p.yaml"
    assert repr(a) == "Location(file='p.yaml', line=3, column=5, key_path='syscalls.allow[2]')"
    assert a == Location("p.yaml", 3, 5, "syscalls.allow[2]") and a != Location("p.yaml", 3, 6)
    assert hash(a) == hash(Location(file="p.yaml", line=3, column=5, key_path="syscalls.allow[2]"))
    assert len({a, copy.copy(a), pickle.loads(pickle.dumps(a)), copy.deepcopy(a)}) == 1
    assert a != ("p.yaml", 3, 5, "syscalls.allow[2]")
    with pytest.raises(AttributeError):
        a.line = 4  # type: ignore[misc]  # read-only for mypy too
    with pytest.raises(AttributeError):
        del a.file
    err = PolicyError(a, "unknown syscall", found="'opn'", suggestion="did you mean open?")
    assert str(err) == "p.yaml:3:5: syscalls.allow[2]: unknown syscall; found 'opn' (did you mean open?)"


def test_entry_script(tmp_path: Path) -> None:
    script = tmp_path / "stockade"
    assert entry_script.main([str(script)]) == 0
    text = script.read_text()
    assert text.startswith(f"#!{sys.executable} -IS\n") and script.stat().st_mode & 0o111
    assert entry_script.is_installed(str(script))
    with pytest.raises(ValueError):
        entry_script.render("/a b/python", ["/src"])
    # -S: site-packages comes from the paths written into the script (PyYAML for `validate`)
    r = subprocess.run([str(script), "validate", "default"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(script), "run", "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
