"""The seccomp backend: every output from one plan, checked by running the BPF."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from stockade.linux.hostfacts import HostFacts
from stockade.linux.syscall_table import syscall_table
from stockade.policy import model as m
from stockade.policy.loader import load_policy
from stockade.policy.semantics import decide
from stockade.policy.vocab.constants import CONSTANTS
from stockade.profiles.seccomp import compile_seccomp
from stockade.seccomp.check import evaluate
from stockade.seccomp.filter import compile_filter
from stockade.seccomp.runc_build import compile_docker_profile, load_json
from tests.conftest import EXAMPLES, MOBY_PROFILE

HOST = HostFacts(arch="x86_64", kernel=(6, 18), cap_last_cap=40, landlock_abi=7)
ARG_SAMPLES = [
    (0, 0, 0, 0, 0, 0),
    (CONSTANTS["CLONE_NEWUSER"], 0, 0, 0, 0, 0),
    (CONSTANTS["AF_PACKET"], 3, 0, 0, 0, 0),
    (8, 0, 0, 0, 0, 0),
    (0xFFFFFFFF, 0, 0, 0, 0, 0),
    (0x11, CONSTANTS["CLONE_NEWNS"], 0, 0, 0, 0),
]


def agree_everywhere(policy: m.Policy, host: HostFacts = HOST, samples: int = 2) -> None:
    compiled = compile_filter(policy, host)
    table = syscall_table()
    rnd = random.Random(7)
    for arch in compiled.arches:
        for name, nr in table.by_arch[arch].items():
            if (arch, name) in compiled.lossy:
                continue  # documented: libseccomp's socketcall multiplexing (checked below)
            extra = [tuple(rnd.getrandbits(64) for _ in range(6)) for _ in range(samples)]
            for args in ARG_SAMPLES + extra:
                want = decide(policy, name, arch, args, host.kernel).action
                got = evaluate(compiled.program, arch, nr, args)
                assert got == want, f"{arch} {name} {args}: policy says {want}, BPF says {got}"
        top = table.max_number(arch)
        for nr in (top + 1, top + 100):
            assert evaluate(compiled.program, arch, nr) == policy.syscalls.unknown


@pytest.mark.parametrize("ref", [*EXAMPLES, "default", "strict", "unconfined"], ids=str)
def test_bpf_agrees_with_the_policy_for_every_syscall(ref: object) -> None:
    agree_everywhere(load_policy(str(ref)))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_compiles_to_every_seccomp_output(example: Path) -> None:
    arts = compile_seccomp(load_policy(str(example)), HOST)
    names = {a.filename for a in arts.files}
    assert names == {"seccomp.bpf", "seccomp.json", "seccomp-oci.json"}
    for art in arts.files:
        if art.filename.endswith(".json"):
            doc = json.loads(art.content())
            assert doc["defaultAction"].startswith("SCMP_ACT_")
            assert doc["syscalls"], "a real profile has rules"
        else:
            assert len(art.content()) % 8 == 0 and len(art.content()) > 8


def test_multiplexed_socketcall_collisions_are_reported() -> None:
    legacy = load_policy(str(next(e for e in EXAMPLES if e.name == "legacy-daemon.yaml")))
    compiled = compile_filter(legacy, HOST)
    assert compiled.lossy == {("x86", "socket")}
    warnings = compile_seccomp(legacy, HOST).warnings
    assert any(w.startswith("x86: argument rules for socket collide") for w in warnings)


def test_network_allow_restricts_socket(tmp_path: Path) -> None:
    web = load_policy(str(next(e for e in EXAMPLES if e.name == "web-api.yaml")))
    prog = compile_filter(web, HOST).program
    nr = syscall_table().number("x86_64", "socket") or 0
    eafnosupport = m.Action(m.ActionKind.ERRNO, 97)
    assert evaluate(prog, "x86_64", nr, (CONSTANTS["AF_INET"], 1)) == m.ALLOW  # inet:tcp
    assert evaluate(prog, "x86_64", nr, (CONSTANTS["AF_INET"], 1 | CONSTANTS["SOCK_CLOEXEC"])) == m.ALLOW
    assert evaluate(prog, "x86_64", nr, (CONSTANTS["AF_INET"], 2)) == eafnosupport  # udp not listed
    assert evaluate(prog, "x86_64", nr, (CONSTANTS["AF_UNIX"], 2)) == m.ALLOW  # unix: any type
    assert evaluate(prog, "x86_64", nr, (CONSTANTS["AF_NETLINK"], 3)) == eafnosupport
    assert evaluate(prog, "x86_64", nr, (CONSTANTS["AF_VSOCK"], 1)) == m.DENY_EPERM  # Docker's rule first


def test_output_is_deterministic() -> None:
    p1 = load_policy("default")
    a = compile_seccomp(p1, HOST)
    from stockade.seccomp import filter as seccomp_filter

    seccomp_filter._CACHE.clear()
    b = compile_seccomp(load_policy("default"), HOST)
    assert [f.content() for f in a.files] == [f.content() for f in b.files]


def test_multi_arch_unknown_syscalls_get_enosys_per_arch(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("stockade: 1\nname: m\nsyscalls:\n  arches: [x86_64, x86, x32, aarch64, riscv64, s390x]\n"
                    "  allow: [read, write]\n  default: kill\n")
    policy = load_policy(str(path))
    compiled = compile_filter(policy, HOST)
    table = syscall_table()
    # s390x is big-endian: a program for this (little-endian) host cannot hold it
    assert compiled.arches == ("x86_64", "x86", "x32", "aarch64", "riscv64")
    for arch in compiled.arches:
        assert evaluate(compiled.program, arch, table.number(arch, "read") or 0) == m.ALLOW
        assert evaluate(compiled.program, arch, table.max_number(arch) + 1) == m.DENY_ENOSYS
        assert evaluate(compiled.program, arch, table.number(arch, "getpid") or 0) == m.Action(
            m.ActionKind.KILL_PROCESS)
    # an arch the filter does not name is killed, whatever the number
    assert evaluate(compiled.program, "arm", 3) == m.Action(m.ActionKind.KILL_PROCESS)


def test_default_preset_equals_dockers_profile_for_the_default_caps() -> None:
    """import(moby) -> compile, against moby's JSON compiled the runc way: same decision for
    every x86_64 syscall and argument sample, by running both filters."""
    moby = load_json(str(MOBY_PROFILE))
    reference = compile_docker_profile(moby, native="x86_64", kernel=HOST.kernel, arches=["x86_64"])
    ours = compile_filter(load_policy("default"), HOST).program
    rnd = random.Random(3)
    table = syscall_table()
    for name, nr in table.by_arch["x86_64"].items():
        for args in ARG_SAMPLES + [tuple(rnd.getrandbits(64) for _ in range(6))]:
            assert evaluate(ours, "x86_64", nr, args) == evaluate(reference, "x86_64", nr, args), name
    for nr in range(table.max_number("x86_64") + 1, table.max_number("x86_64") + 30):
        assert evaluate(ours, "x86_64", nr) == evaluate(reference, "x86_64", nr) == m.DENY_ENOSYS
    assert len(ours) <= len(reference), "no more instructions than runc's way"


def test_imported_profile_keeps_conditions_as_when() -> None:
    from stockade.importers.docker_seccomp import import_file

    doc = import_file(str(MOBY_PROFILE)).document
    rules = doc["syscalls"]["rules"]
    assert {"syscalls": ["reboot"], "action": "allow", "when": {"caps": ["SYS_BOOT"]}} in rules
    clone = next(r for r in rules if r["syscalls"] == ["clone"] and r["args"][0]["index"] == 0)
    assert clone["unless"] == {"arch": ["s390", "s390x"], "caps": ["SYS_ADMIN"]}
    ptrace = next(r for r in rules if "ptrace" in r["syscalls"] and "when" in r and "min_kernel" in r["when"])
    assert ptrace["when"] == {"min_kernel": "4.8"}


def test_docker_json_is_what_runc_would_enforce_as_ours() -> None:
    """Our Docker JSON compiled the runc way decides like our own BPF."""
    for ref in [*map(str, EXAMPLES), "strict", "default"]:
        policy = load_policy(ref)
        if policy.syscalls.arches != ("x86_64",):
            continue
        ours = compile_filter(policy, HOST).program
        docker = compile_seccomp(policy, HOST).files[1]
        theirs = compile_docker_profile(json.loads(docker.content()), caps=policy.capabilities.kept,
                                        native="x86_64", kernel=HOST.kernel)
        for name, nr in syscall_table().by_arch["x86_64"].items():
            for args in ARG_SAMPLES:
                assert evaluate(ours, "x86_64", nr, args) == evaluate(theirs, "x86_64", nr, args), (ref, name)
