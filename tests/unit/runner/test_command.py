"""`stockade run` argument handling (no sandbox is started here)."""

from __future__ import annotations

import argparse

import pytest

from stockade.cli.run import _env, configure


def test_env_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTVAR", "from-host")
    monkeypatch.delenv("MISSING", raising=False)
    assert _env(["A=1", "B=x=y", "HOSTVAR", "MISSING"]) == {
        "A": "1", "B": "x=y", "HOSTVAR": "from-host"}


def test_parser_accepts_the_cli_contract() -> None:
    p = argparse.ArgumentParser()
    configure(p)
    a = p.parse_args(["--policy", "strict", "--rootfs", "/r", "--bind", "/a:/b:ro",
                      "--bind", "/c:/d", "--dry-run", "--json-report", "f.json", "--tty",
                      "--", "cmd", "-x"])
    assert a.policy == "strict" and a.rootfs == "/r" and a.bind == ["/a:/b:ro", "/c:/d"]
    assert a.dry_run and a.tty and a.json_report == "f.json"
    assert a.cmd in (["--", "cmd", "-x"], ["cmd", "-x"])
    assert "127" in (p.epilog or "") and "seccomp" in (p.epilog or "")


def test_no_command_is_a_preflight_error() -> None:
    from stockade.cli import main

    assert main(["run", "--dry-run"]) == 2
