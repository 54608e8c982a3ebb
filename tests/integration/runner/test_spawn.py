"""How the init starts the payload: posix_spawn (the fast way) when the compiled policy
allows it, else a fork of the init that does its own last steps. Both must give the
payload the same confinement; the choice is made from the compiled filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.api import plan, run
from stockade.errors import RunnerError
from stockade.runner.plan import describe, spawns
from stockade.runner.spawn_check import spawn_blockers
from tests.conftest import require_root

pytestmark = pytest.mark.root
ENV = {"PATH": "/usr/bin:/bin"}
STATUS = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; echo pid=$$"


def _policy(tmp_path: Path, deny: str) -> str:
    p = tmp_path / "no-clone.yaml"
    p.write_text(f"stockade: 1\nname: no-clone\nextends: [default]\nsyscalls:\n  deny: [{deny}]\n")
    return str(p)


def _inside(res_out: str) -> dict[str, str]:
    return dict(line.split(":", 1) if ":" in line else line.split("=", 1)
                for line in res_out.strip().splitlines())


def _run(policy: str, capfd: pytest.CaptureFixture[str]) -> dict[str, str]:
    res = run(["/bin/sh", "-c", STATUS], policy=policy, env=ENV)
    assert res.exit_code == 0
    return {k: v.strip() for k, v in _inside(capfd.readouterr().out).items()}


def test_default_policy_spawns_and_confines_like_the_fork_path(tmp_path: Path,
                                                               capfd: pytest.CaptureFixture[str]
                                                               ) -> None:
    require_root()
    fast = plan(["/bin/true"], policy="default", env=ENV)
    assert fast.policy.spawn and spawns(fast)
    assert "posix_spawn" in describe(fast)
    # rt_sigtimedwait denied: the init could not wait for signals under the filter, so
    # the payload is forked. (Not wait4: the payload's shell needs it to wait for grep.)
    slow_policy = _policy(tmp_path, "rt_sigtimedwait")
    slow = plan(["/bin/true"], policy=slow_policy, env=ENV)
    assert not slow.policy.spawn and not spawns(slow)
    assert "fork of the init" in describe(slow)
    a = _run("default", capfd)
    b = _run(slow_policy, capfd)
    assert a["pid"] == b["pid"] == "2"  # an init in both
    for key in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp"):
        assert a[key] == b[key], key
    assert a["NoNewPrivs"] == "1" and a["Seccomp"] == "2"


def test_spawned_payload_keeps_the_filter_and_a_missing_command_is_127(
        capfd: pytest.CaptureFixture[str]) -> None:
    require_root()
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    res = run(["/bin/sh", "-c", "unshare -U true 2>/dev/null; echo rc=$?"],
                       policy="default", env=ENV)
    assert res.exit_code == 0
    assert capfd.readouterr().out.strip() == "rc=1"  # unshare(CLONE_NEWUSER): EPERM
    with pytest.raises(RunnerError) as exc:
        run(["no-such-command-xyz"], policy="default", env=ENV)
    assert exc.value.step == "exec" and exc.value.exit_code == 127


def test_blockers_name_what_the_init_could_not_survive() -> None:
    from stockade.linux.hostfacts import HostFacts
    from stockade.policy.loader import load_policy
    from stockade.seccomp.filter import compile_bpf

    host = HostFacts.detect()
    bpf = compile_bpf(load_policy("default"), host)
    assert spawn_blockers(True, False, [], bpf, host.arch) == []
    assert "no_new_privileges is false" in spawn_blockers(False, False, [], bpf, host.arch)
    assert "an LSM exec label is set" in spawn_blockers(True, True, [], bpf, host.arch)
    assert spawn_blockers(True, False, ["as", "nofile"], bpf, host.arch) == ["rlimits as"]
    bad = bytes([0x05, 0, 0, 0, 100, 0, 0, 0])  # jumps out of the program
    assert spawn_blockers(True, False, [], bad, host.arch)[0].startswith(
        "the filter cannot be evaluated")
