"""The `stockade run` fast path: the same arguments as argparse, without argparse; the
plain-class Location; the fast entry script. No sandbox is started here."""

from __future__ import annotations

import argparse
import copy
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade import cli, entry_script
from stockade.errors import Location, PolicyError
from stockade.runner.command import configure, parse_fast


def _argparse(argv: list[str]) -> dict[str, object] | None:
    p = argparse.ArgumentParser(prog="stockade run", add_help=True)
    configure(p)
    try:
        return vars(p.parse_args(argv))
    except SystemExit:
        return None


AGREE = [
    [],
    ["--", "/bin/true"],
    ["/bin/echo", "--policy", "x"],  # the first positional starts CMD (REMAINDER)
    ["--policy", "strict", "--rootfs", "/r", "--bind", "/a:/b:ro", "--bind", "/c:/d",
     "--dry-run", "--json-report", "f.json", "--tty", "--", "cmd", "-x"],
    ["-e", "A=1", "--env", "B", "-t", "--no-init", "--hostname", "h", "--cwd", "/w", "ls"],
    ["--image", "busybox:latest", "--keep", "--store", "/s", "--", "sh", "-c", "echo hi"],
    ["--policy=strict", "--env=A=b=c", "--env=", "--", "--", "x"],
    ["--policy", "a", "--policy", "b", "-", "x"],
    ["--dry-run", "--", "-h", "--help"],
]
DECLINE = [  # argparse's call: help, abbreviations, grouped flags, missing or dash values
    ["--help"], ["-h", "--", "x"], ["--pol", "x", "--", "y"], ["-te", "A=1", "x"],
    ["--policy"], ["--policy", "-x", "y"], ["--bogus", "x"], ["--tty=yes", "x"],
    ["-eA=1", "x"], ["-1"],
]


@pytest.mark.parametrize("argv", AGREE)
def test_fast_parse_equals_argparse(argv: list[str]) -> None:
    fast = parse_fast(argv)
    assert fast is not None
    assert vars(fast) == _argparse(argv)


@pytest.mark.parametrize("argv", DECLINE)
def test_fast_parse_declines_what_argparse_must_decide(argv: list[str]) -> None:
    assert parse_fast(argv) is None


TOKENS = st.sampled_from([
    "--policy", "--rootfs", "--bundle", "--image", "--keep", "--store", "--bind", "--env",
    "-e", "--cwd", "--hostname", "--tty", "-t", "--no-init", "--dry-run", "--json-report",
    "--", "-", "-h", "--pol", "--env=A=1", "--policy=p", "--tty=1", "-x", "-1", "x", "A=1",
    "/bin/sh", "a:b:ro", "",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(TOKENS, max_size=8))
def test_fast_parse_never_disagrees(argv: list[str]) -> None:
    """Whatever the fast parser accepts, argparse accepts with the same result."""
    fast = parse_fast(argv)
    if fast is not None:
        assert vars(fast) == _argparse(argv), argv


def test_main_uses_the_fast_path_and_keeps_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli._fast_args(["-v", "run", "--dry-run", "--", "/bin/true"])
    assert args is not None and args.command == "run" and args.verbose and args.dry_run
    assert cli._fast_args(["run", "--help"]) is None
    assert cli._fast_args(["validate", "x"]) is None
    assert cli.main(["run", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert cli.main(["run", "--dry-run"]) == 2  # no command: bad input (preflight)
    assert cli.main(["run", "--help"]) == 0
    assert "--image" in capsys.readouterr().out


def test_run_path_imports_neither_argparse_nor_dataclasses() -> None:
    code = ("import sys; from stockade import cli, errors; from stockade.runner import command;"
            "assert cli._fast_args(['run', '--', 'x']) is not None;"
            "bad = {'argparse', 'dataclasses', 'inspect', 'typing', 'json'} & set(sys.modules);"
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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
    # -S: site-packages comes on demand (PyYAML for `validate`), not for `run`'s parsing
    r = subprocess.run([str(script), "validate", "default"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(script), "run", "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


def test_gc_is_back_on_before_the_launch() -> None:
    """entry() pauses the cyclic GC for `run`'s imports; the launch must not inherit that
    (the supervisor and the forked tiny init live as long as the payload)."""
    import gc

    from stockade.runner.command import gc_back_on

    assert cli.GC_PAUSED <= cli.FAST
    gc.disable()
    try:
        gc_back_on()
        assert gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
