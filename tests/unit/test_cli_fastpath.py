"""The fast reader of `stockade run` and `stockade oci` (cli/optable.py): whatever it
takes, it reads exactly as argparse does, from the same option table; whatever it
declines still works through argparse; argparse is not imported when it takes a line.
No sandbox is started here."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.cli import main, parse, verb_parser
from stockade.cli import oci as oci_verb
from stockade.cli import run as run_verb


def _argparse(verb: str, argv: list[str]) -> dict[str, object] | None:
    try:
        return vars(verb_parser(verb).parse_args(argv))
    except SystemExit:
        return None


RUN_TAKEN = [
    [],
    ["--", "/bin/true"],
    ["/bin/echo", "--policy", "x"],  # the first plain word starts CMD (REMAINDER)
    ["--policy", "strict", "--rootfs", "/r", "--bind", "/a:/b:ro", "--bind", "/c:/d",
     "--dry-run", "--json-report", "f.json", "--tty", "--", "cmd", "-x"],
    ["-e", "A=1", "--env", "B", "-t", "--no-init", "--hostname", "h", "--cwd", "/w", "ls"],
    ["--image", "busybox:latest", "--keep", "--store", "/s", "--entrypoint", "", "--", "sh"],
    ["--bundle", "/b", "--policy=strict", "--env=A=b=c", "--env=", "--", "--", "x"],
    ["--policy", "a", "--policy", "b", "-", "x"],
    ["--dry-run", "--", "-h", "--help"],
    ["--policy", "-", "--", "x"],
]
# runc-style lines as engines send them (global flags first; see tests/data/engines and
# tests/unit/oci/test_translate.py::test_engine_command_lines_parse)
OCI_TAKEN = [
    ["--root", "/run/containerd/runc/moby", "--log", "/run/c/log.json", "--log-format", "json",
     "create", "--bundle", "/run/c/b", "--pid-file", "/run/c/init.pid", "c1"],
    ["--root", "/run/runc", "--systemd-cgroup", "--log", "/l", "--log-format", "json",
     "create", "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s",
     "--no-new-keyring", "--preserve-fds", "0", "c1"],
    ["--root=/r", "run", "--detach", "--console-socket=/s", "--policy", "default", "-b", ".", "c1"],
    ["--root", "/r", "create", "--dry-run", "--no-pivot", "--preserve-fds=2", "c1"],
    ["start", "c1"], ["--root", "R", "state", "ID"], ["--debug", "state", "c1"],
    ["kill", "c1"], ["kill", "--all", "c1", "9"], ["--root", "/r", "kill", "-a", "c1", "SIGKILL"],
    ["delete", "c1"], ["delete", "--force", "c1"], ["--root", "/a", "delete", "--root", "/b",
                                                     "-f", "c1"],
    ["--log-format=text", "--log=", "delete", "-", ],
]
RUN_DECLINED = [  # argparse's call: help, abbreviations, grouped flags, missing or dash values
    ["--help"], ["-h", "--", "x"], ["--pol", "x", "--", "y"], ["-te", "A=1", "x"],
    ["--policy"], ["--policy", "-x", "y"], ["--bogus", "x"], ["--tty=yes", "x"],
    ["-eA=1", "x"], ["-e=A", "x"], ["-1"], ["--policy", "--", "x"],
]
OCI_DECLINED = [
    [], ["--help"], ["state"], ["state", "-h"], ["state", "a", "b"], ["kill", "c1", "9", "x"],
    ["--log-format", "xml", "state", "c1"], ["--ro", "/r", "state", "c1"],
    ["create", "--preserve-fds", "x", "c1"], ["create", "--preserve-fds", "-1", "c1"],
    ["kill", "c1", "-9"], ["delete", "c1", "-f"], ["create", "--log", "/l", "c1"],
    ["exec", "c1", "sh"], ["ps", "c1"], ["list"], ["features"], ["-", "state", "c1"],
    ["--root", "/r"], ["state", "--", "c1"], ["delete", "-fa", "c1"], ["--debug=1", "state", "c"],
]


@pytest.mark.parametrize("verb,argv", [("run", a) for a in RUN_TAKEN]
                         + [("oci", a) for a in OCI_TAKEN])
def test_fast_reading_equals_argparse(verb: str, argv: list[str]) -> None:
    module = run_verb if verb == "run" else oci_verb
    fast = module.parse_fast(argv)
    assert fast is not None, argv
    assert fast == _argparse(verb, argv)
    full = parse([verb, *argv])
    assert vars(full) == vars(verb_parser(verb).parse_args(argv)) | {"command": verb,
                                                                       "verbose": False}


@pytest.mark.parametrize("verb,argv", [("run", a) for a in RUN_DECLINED]
                         + [("oci", a) for a in OCI_DECLINED])
def test_declined_lines_go_to_argparse(verb: str, argv: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    module = run_verb if verb == "run" else oci_verb
    assert module.parse_fast(argv) is None
    expected = _argparse(verb, argv)
    capsys.readouterr()
    if expected is None:  # argparse's usage error or help, as before
        with pytest.raises(SystemExit):
            parse([verb, *argv])
    else:
        assert vars(parse([verb, *argv])) == expected | {"command": verb, "verbose": False}


RUN_WORDS = st.sampled_from([
    "--policy", "--rootfs", "--bundle", "--image", "--keep", "--store", "--bind", "--env",
    "-e", "--cwd", "--hostname", "--tty", "-t", "--no-init", "--dry-run", "--json-report",
    "--entrypoint", "--", "-", "-h", "--pol", "--env=A=1", "--policy=p", "--tty=1", "-x",
    "-1", "x", "A=1", "/bin/sh", "a:b:ro", "",
])
OCI_WORDS = st.sampled_from([
    "--root", "--root=/r", "--log", "--log-format", "json", "xml", "--debug",
    "--systemd-cgroup", "create", "run", "start", "state", "kill", "delete", "exec", "list",
    "--bundle", "-b", "--pid-file", "--console-socket", "--policy", "--dry-run", "--no-pivot",
    "--no-new-keyring", "--preserve-fds", "0", "3", "-1", "--detach", "-d", "--all", "-a",
    "--force", "-f", "-", "--", "-h", "c1", "KILL", "",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(RUN_WORDS, max_size=8))
def test_run_fast_reading_never_disagrees(argv: list[str]) -> None:
    fast = run_verb.parse_fast(argv)
    if fast is not None:
        assert fast == _argparse("run", argv), argv


@settings(max_examples=300, deadline=None)
@given(st.lists(OCI_WORDS, max_size=8))
def test_oci_fast_reading_never_disagrees(argv: list[str]) -> None:
    fast = oci_verb.parse_fast(argv)
    if fast is not None:
        assert fast == _argparse("oci", argv), argv


def _imports_argparse(argv: list[str]) -> bool:
    code = ("import sys; from stockade.cli import parse;"
            f"a = parse({argv!r}); assert a.command == {argv[argv[0] == '-v']!r};"
            "print('argparse' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {"True": True, "False": False}[out.stdout.strip()]


@pytest.mark.parametrize("argv", [["run", "--", "/bin/true"], ["oci", "--root", "R", "state", "ID"],
                                  ["-v", "oci", "kill", "--all", "c1", "9"]])
def test_fast_path_does_not_import_argparse(argv: list[str]) -> None:
    assert not _imports_argparse(argv)


def test_a_declined_line_imports_argparse() -> None:
    assert _imports_argparse(["run", "--pol", "p", "--", "/bin/true"])


def test_main_keeps_argparse_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["oci", "state"]) == 2
    assert "the following arguments are required: id" in capsys.readouterr().err
    assert main(["oci", "--log-format", "xml", "state", "c1"]) == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err
    assert main(["oci", "state", "-h"]) == 0
    assert "the container's id" in capsys.readouterr().out
    assert main(["run", "--pol", "strict", "--dry-run", "--", "/bin/true"]) == 0  # abbreviation
    assert "/bin/true" in capsys.readouterr().out
