"""A learned policy is never looser than the policy it was recorded under (`default`):
device nodes are not `/dev`, paths are compared by effect, refused syscalls keep their
answer. No kernel needed: recordings are synthetic, diffs run the BPF interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.cli import main
from stockade.learn.compare import writable_in
from stockade.learn.document import build, refused_by
from stockade.learn.fold import fold_writes
from stockade.learn.infer import learn
from stockade.learn.output import check_and_write
from stockade.learn.recording import Recording
from stockade.policy.loader import load_policy
from stockade.policy.model import Policy
from stockade.policy.semantics import decide


def test_standard_device_nodes_need_no_entry() -> None:
    written = [("/dev/null", False), ("/dev/zero", False), ("/dev/tty", False),
               ("/dev/pts/3", False), ("/dev/stdout", False), ("/dev/fd/1", False)]
    assert fold_writes(written, ["/tmp"]) == []  # was ["/dev"]: creating files in /dev


def test_other_device_writes_are_named_not_folded_to_dev() -> None:
    assert fold_writes([("/dev/kvm", False)], []) == ["/dev/kvm"]
    assert fold_writes([("/dev/shm/seg", True)], []) == ["/dev/shm"]  # a private tmpfs
    assert fold_writes([("/dev/new-file", True)], []) == []  # /dev is read-only: it failed


@pytest.fixture(scope="module")
def default() -> Policy:
    return load_policy("default")


@pytest.mark.parametrize(("path", "writable"), [
    ("/tmp", True),  # default's tmpfs: `writable: [/tmp]` is that same tmpfs
    ("/dev/null", True), ("/dev/pts/0", True),  # every runtime's /dev
    ("/dev", False),  # would let the workload create files in /dev
    ("/tmp/x", False),  # below a tmpfs, a writable entry binds the host's path
    ("/etc", False), ("/", False),
])
def test_writable_by_effect_under_default(default: Policy, path: str, writable: bool) -> None:
    assert writable_in(default, path) is writable


def _policy(tmp_path: Path, name: str, filesystem: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"stockade: 1\nname: {name}\nextends: [default]\nfilesystem: {filesystem}\n")
    return path


@pytest.mark.parametrize(("filesystem", "looser"), [
    ("{writable: [/tmp]}", False),
    ("{writable: [/dev/null]}", False),
    ("{writable: [/dev]}", True),
    ("{writable: [/tmp/x]}", True),
    ("{writable: [/var/lib/app]}", True),
])
def test_diff_check_compares_paths_by_effect(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], filesystem: str, looser: bool) -> None:
    b = _policy(tmp_path, "b", filesystem)
    assert main(["diff", "--check", "default", str(b)]) == (1 if looser else 0)
    out = capsys.readouterr().out
    assert ("B allows something A does not" in out) is looser


def _recording(*names: str) -> Recording:
    return Recording(syscalls=frozenset(("x86_64", n) for n in names),
                     values=frozenset(), paths=frozenset({("w", "/dev/null")}),
                     sockaddrs=frozenset(), started=True)


def test_syscalls_the_recording_policy_refuses_keep_its_answer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], default: Policy) -> None:
    learned = learn(_recording("read", "write", "exit_group", "unshare"), "x86_64")
    assert set(refused_by(default, learned)) == {"unshare"}
    doc = build(learned, name="t", description="d", base=None, base_ref=None,
                default_action="kill", resources={}, recorded_under=default)
    assert "unshare" not in doc["syscalls"]["allow"]
    assert doc["filesystem"]["writable"] == []
    out = tmp_path / "t.yaml"
    check_and_write(doc, str(out))
    policy = load_policy(str(out))
    assert str(decide(policy, "unshare", "x86_64").action) == "errno:EPERM"  # as under default
    assert decide(policy, "read", "x86_64").action.is_allow
    assert main(["diff", "--check", "default", str(out)]) == 0, capsys.readouterr().out
