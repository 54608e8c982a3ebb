"""The frozen plan, computed without privileges: mounts, maps, caps, codes, dry-run text."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from stockade.errors import RunnerError
from stockade.policy.loader import load_policy
from stockade.policy.model import Resources
from stockade.runner._record import replace
from stockade.runner.codes import EXIT_CODES
from stockade.runner.plan import (
    AUTO_RANGE_BASE,
    MASKED_PATHS,
    READONLY_PATHS,
    Bind,
    IdMap,
    RunSpec,
    build_plan,
    describe,
)
from stockade.runner.prepare import policy_part

FAKE_BPF = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # one instruction: RET ALLOW


@pytest.fixture(scope="module")
def part():  # type: ignore[no-untyped-def]
    return policy_part(load_policy("default"), seccomp_bpf=FAKE_BPF)


def test_masked_and_readonly_paths_are_runcs(part) -> None:  # type: ignore[no-untyped-def]
    plan = build_plan(part, RunSpec(argv=("/bin/true",)), euid=0)
    masked = {op.dst for op in plan.mounts if op.kind == "mask"}
    readonly = {op.dst for op in plan.mounts if op.kind == "readonly"}
    assert len(MASKED_PATHS) == 10 and set(MASKED_PATHS) <= masked
    assert len(READONLY_PATHS) == 5 and set(READONLY_PATHS) <= readonly
    assert plan.mounts[0].kind == "root" and plan.mounts[0].readonly
    kinds = [op.kind for op in plan.mounts]
    assert kinds.index("proc") < kinds.index("mask")  # masks go over the fresh /proc


def test_root_maps_an_unused_range_never_identity(part) -> None:  # type: ignore[no-untyped-def]
    plan = build_plan(part, RunSpec(argv=("true",)), euid=0)
    assert plan.identity.uid_map == (IdMap(0, AUTO_RANGE_BASE, 65536),)
    assert plan.identity.setgroups == "allow"


def test_rootless_map_denies_setgroups(part) -> None:  # type: ignore[no-untyped-def]
    plan = build_plan(part, RunSpec(argv=("true",)), euid=1000)
    assert plan.identity.uid_map == (IdMap(0, 1000, 1),)
    assert plan.identity.setgroups == "deny"


def test_caps_sets(part) -> None:  # type: ignore[no-untyped-def]
    c = part.caps
    assert c.bounding == c.permitted == c.effective
    assert c.inheritable == 0 and c.ambient == ()
    assert not c.bounding >> 21 & 1  # CAP_SYS_ADMIN is not kept by default


def test_bind_parse() -> None:
    assert Bind.parse("/a:/b:ro") == Bind("/a", "/b", True)
    assert Bind.parse("/a:/b") == Bind("/a", "/b", False)
    for bad in ("/a", "/a:b", "/a:/b:rx", "/a:/b:ro:x"):
        with pytest.raises(RunnerError) as exc:
            Bind.parse(bad)
        assert exc.value.step == "preflight"


def test_net_host_drops_net_namespace(part) -> None:  # type: ignore[no-untyped-def]
    host = replace(part, network="host")
    plan = build_plan(host, RunSpec(argv=("true",)), euid=0)
    assert not any(op.kind == "sysfs" for op in plan.mounts)


def test_dry_run_text_names_everything(part) -> None:  # type: ignore[no-untyped-def]
    text = describe(build_plan(part, RunSpec(argv=("/bin/true",)), euid=0))
    for word in ("uid_map", "mount", "/proc/sys", "cap bnd", "cap amb", "seccomp",
                 "1 instructions", "cgroup", "pids=1024", "landlock", "nnp"):
        assert word in text, word


def test_exit_codes_are_distinct() -> None:
    # bad input (a policy that does not load, a preflight refusal) is 2, as for every
    # stockade command; each step that fails after that has a code of its own
    assert {s for s, c in EXIT_CODES.items() if c == 2} == {"policy", "preflight"}
    codes = [c for c in EXIT_CODES.values() if c != 2]
    assert len(codes) == len(set(codes))
    assert EXIT_CODES["exec"] == 127 and EXIT_CODES["exec-permission"] == 126


def test_policy_part_pickles_and_compares(part) -> None:  # type: ignore[no-untyped-def]
    again = pickle.loads(pickle.dumps(part))
    assert again == part and hash(again) == hash(part)
    with pytest.raises(AttributeError):
        part.name = "x"


def test_bad_cpu_rejected() -> None:
    pol = dataclasses.replace(load_policy("default"), resources=Resources(cpu=-1.0))
    with pytest.raises(RunnerError) as exc:
        policy_part(pol, seccomp_bpf=FAKE_BPF)
    assert exc.value.exit_code == EXIT_CODES["preflight"]


def test_lsm_required_but_absent_fails_in_preflight() -> None:
    from stockade.linux.host import active_lsms
    from stockade.policy.model import AppArmor, Lsm

    if "apparmor" in active_lsms():
        pytest.skip("AppArmor is active here")
    pol = dataclasses.replace(load_policy("default"),
                              lsm=Lsm(apparmor=AppArmor("enforce"), required=True))
    with pytest.raises(RunnerError) as exc:
        policy_part(pol, seccomp_bpf=FAKE_BPF)
    assert exc.value.step == "lsm"
    best = dataclasses.replace(pol, lsm=Lsm(apparmor=AppArmor("enforce"), required=False))
    p = policy_part(best, seccomp_bpf=FAKE_BPF)
    assert any("NOT applied" in n for n in p.notes)
