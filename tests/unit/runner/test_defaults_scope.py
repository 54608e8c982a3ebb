"""Issue 13.9 without privileges: Landlock's scopes in the ruleset, the policy key that
grants the host's abstract sockets, `--rootfs /` as the host-root mode, and the
set-up errors that name the memory limit (the kernel side, and the pids limit, are in
tests/integration/runner/test_defaults_scope.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.errors import PolicyError
from stockade.executor import protocol
from stockade.policy.loader import load_policy
from stockade.policy.model import Policy
from stockade.profiles.landlock import Scope, landlock_rules
from stockade.runner import launcher
from stockade.runner.cgroups import Usage
from stockade.runner.plan import RunSpec, build_plan
from stockade.runner.prepare import policy_part

FAKE_BPF = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # one instruction: RET ALLOW


def policy(tmp_path: Path, network: str) -> Policy:
    path = tmp_path / "p.yaml"
    path.write_text(f"stockade: 1\nname: p\nextends: [default]\nnetwork: {network}\n")
    return load_policy(str(path))


@pytest.fixture(scope="module")
def part():  # type: ignore[no-untyped-def]
    return policy_part(load_policy("default"), seccomp_bpf=FAKE_BPF)


# --- scoping ------------------------------------------------------------------------


def test_host_network_scopes_abstract_sockets_and_signals(tmp_path: Path) -> None:
    rs = landlock_rules(policy(tmp_path, "{mode: host}"), 7)
    assert rs.scoped == Scope.ABSTRACT_UNIX_SOCKET | Scope.SIGNAL
    assert rs.to_json()["scoped"] == ["ABSTRACT_UNIX_SOCKET", "SIGNAL"]


def test_the_key_grants_the_hosts_abstract_sockets_only(tmp_path: Path) -> None:
    rs = landlock_rules(policy(tmp_path, "{mode: host, host_abstract_sockets: true}"), 6)
    assert rs.scoped == Scope.SIGNAL  # signals stay scoped whatever the key says


def test_before_abi_6_nothing_is_scoped_and_the_opening_is_said(tmp_path: Path) -> None:
    rs = landlock_rules(policy(tmp_path, "{mode: host}"), 5)
    assert rs.scoped == 0
    assert any("network.mode[host]" in d and "abstract" in d for d in rs.dropped)
    # A private network namespace has no host abstract sockets to warn about.
    assert not any("abstract" in d for d in landlock_rules(load_policy("default"), 5).dropped)


def test_the_runner_plan_carries_the_scopes(tmp_path: Path) -> None:
    pp = policy_part(policy(tmp_path, "{mode: host}"), seccomp_bpf=FAKE_BPF)
    if not pp.landlock.enabled or pp.landlock.abi < 6:
        pytest.skip(f"Landlock ABI {pp.landlock.abi} on this host has no scoping")
    assert pp.landlock.scoped == Scope.ABSTRACT_UNIX_SOCKET | Scope.SIGNAL


def test_the_key_without_host_network_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        policy(tmp_path, "{mode: none, host_abstract_sockets: true}")
    text = str(info.value)
    assert "p.yaml:" in text and "network.host_abstract_sockets" in text
    assert "network.mode host" in text


def test_the_key_changes_the_digest(tmp_path: Path) -> None:
    scoped = policy(tmp_path, "{mode: host}")
    granted = policy(tmp_path, "{mode: host, host_abstract_sockets: true}")
    assert granted.network.host_abstract_sockets and not scoped.network.host_abstract_sockets
    assert scoped.digest != granted.digest


# --- --rootfs / ---------------------------------------------------------------------


def test_rootfs_slash_is_the_host_root_mode(part, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "root-link"
    link.symlink_to("/")
    for rootfs in (None, "/", str(link)):
        plan = build_plan(part, RunSpec(argv=("true",), rootfs=rootfs), euid=0)
        assert plan.host_root, rootfs
        tmpfs = {op.dst for op in plan.mounts if op.kind == "tmpfs"}
        assert {"/run", "/tmp"} <= tmpfs, rootfs
    plan = build_plan(part, RunSpec(argv=("true",), rootfs=str(tmp_path)), euid=0)
    assert not plan.host_root and plan.rootfs == str(tmp_path)


# --- set-up errors ------------------------------------------------------------------


class _Cgroup:
    def __init__(self, oom_kills: int) -> None:
        self.oom_kills = oom_kills

    def usage(self) -> Usage:
        return Usage(oom_kills=self.oom_kills)


def test_a_set_up_killed_by_the_memory_limit_names_it() -> None:
    err = launcher._child_error(b"", _Cgroup(1), 3 << 20)  # type: ignore[arg-type]
    assert err.step == "cgroups" and err.exit_code == 111
    assert "memory limit (3 MiB) was reached during set-up" in err.message


def test_without_an_oom_kill_the_death_stays_unexplained() -> None:
    err = launcher._child_error(b"", _Cgroup(0), 3 << 20)  # type: ignore[arg-type]
    assert err.step == "internal"


def test_the_childs_own_line_wins_even_after_the_marker() -> None:
    line = protocol.EXECUTING + b"seccomp\tbad filter\n"
    err = launcher._child_error(line, _Cgroup(1), 1 << 20)  # type: ignore[arg-type]
    assert err.step == "seccomp" and err.message.endswith(": bad filter")


