"""On this machine's real kernel, a child under the generated ruleset cannot write outside
`writable` (and, with ABI >= 4, cannot bind a TCP port outside `network.bind`)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest
from _landlock_apply import apply_ruleset
from _policies import built, with_fs

from stockade.errors import Location
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import PathEntry
from stockade.profiles.landlock import landlock_rules


def _in_child(fn: object) -> int:
    """Run fn() in a forked child; its return value (a small int) is the exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 99
        try:
            code = fn()  # type: ignore[operator]
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_child_cannot_write_outside_writable(tmp_path: Path) -> None:
    abi = HostFacts.detect().landlock_abi
    if abi == 0:
        pytest.skip("Landlock is not available on this kernel")
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    policy = with_fs(built("web-api"), writable=(PathEntry(str(inside), Location("t")),), deny=())
    rs = landlock_rules(policy, abi)
    free_port = socket.socket()
    free_port.bind(("127.0.0.1", 0))
    other_port = free_port.getsockname()[1]
    free_port.close()

    def child() -> int:
        apply_ruleset(rs)
        (inside / "ok").write_text("written")  # allowed
        try:
            (outside / "no").write_text("leak")
            return 1
        except PermissionError:
            pass
        try:
            Path("/etc/hostname").read_text()  # read-only root stays readable
        except PermissionError:
            return 2
        if rs.net_rules:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", other_port))
                return 3
            except OSError as exc:
                if exc.errno != errno.EACCES:
                    return 4
        return 0

    assert _in_child(child) == 0
    assert (inside / "ok").read_text() == "written"
    assert not (outside / "no").exists()


def test_without_ruleset_the_write_succeeds(tmp_path: Path) -> None:
    """The control: the same write succeeds when no ruleset is applied."""
    def child() -> int:
        (tmp_path / "free").write_text("x")
        return 0

    assert _in_child(child) == 0 and (tmp_path / "free").exists()
