"""The set-id guard's filter and plan change, without privileges (runner.setid_guard);
the real-kernel attack runs are tests/integration/runner/test_idmapped_no_setid.py."""

from __future__ import annotations

import os

import pytest

from stockade.errors import RunnerError
from stockade.policy.loader import load_policy
from stockade.runner import setid_guard
from stockade.runner._record import replace
from stockade.runner.plan import RunSpec, build_plan, tree_key
from stockade.runner.prepare import policy_part
from stockade.runner.setid_guard import CAP_SETFCAP, MODE_ARGUMENT, compile_guard, guarded
from stockade.seccomp.check import evaluate

FAKE_BPF = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # one instruction: RET ALLOW
X32_BIT = 0x40000000
HIGH = 0xFFFFFFFF_00000000  # the kernel reads the mode as 16 bits: high bits hide nothing
# x86_64 / i386 numbers (the compat ABIs a policy may allow must be guarded too)
X86_64 = {"chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "open": 2,
          "creat": 85, "openat": 257, "mknod": 133, "mknodat": 259, "mkdir": 83,
          "mkdirat": 258}
I386 = {"chmod": 15, "fchmod": 94, "fchmodat": 306, "fchmodat2": 452, "open": 5,
        "creat": 8, "openat": 295, "mknod": 14, "mknodat": 297, "mkdir": 39, "mkdirat": 296}


@pytest.fixture(scope="module")
def program() -> bytes:
    if os.uname().machine != "x86_64":
        pytest.skip("the syscall numbers below are x86_64's")
    return compile_guard("x86_64")


def _args(name: str, mode: int) -> tuple[int, ...]:
    args = [0] * 6
    args[MODE_ARGUMENT[name]] = mode
    return tuple(args)


@pytest.mark.parametrize("arch,table,bit", [("x86_64", X86_64, 0), ("x86", I386, 0),
                                            ("x32", X86_64, X32_BIT)])
def test_setid_modes_are_refused_in_every_abi(program: bytes, arch: str,
                                              table: dict[str, int], bit: int) -> None:
    for name, nr in table.items():
        for mode in (0o4755, 0o2755, 0o6777, 0o104755, HIGH | 0o4755):
            assert str(evaluate(program, arch, nr | bit, _args(name, mode))) == "errno:EPERM", \
                (arch, name, oct(mode))
        for mode in (0o644, 0o755, 0o1777, 0o777, 0o100644, HIGH | 0o755):
            assert str(evaluate(program, arch, nr | bit, _args(name, mode))) == "allow", \
                (arch, name, oct(mode))


def test_openat2_io_uring_userns_and_nothing_else(program: bytes) -> None:
    assert str(evaluate(program, "x86_64", 437, ())) == "enosys"  # openat2
    assert str(evaluate(program, "x86_64", 425, ())) == "errno:EPERM"  # io_uring_setup
    assert str(evaluate(program, "x86_64", 435, ())) == "enosys"  # clone3
    for nr in (56, 272):  # clone, unshare: a new user namespace would hold CAP_SETFCAP
        assert str(evaluate(program, "x86_64", nr, (0x10000000 | 0x20000,))) == "errno:EPERM"
        assert str(evaluate(program, "x86_64", nr, (0x20000 | 0x4000000,))) == "allow"
    for nr in (0, 1, 3, 59, 92, 188):  # read, write, close, execve, chown, setxattr
        assert str(evaluate(program, "x86_64", nr, (0, 0o4755, 0o4755, 0o4755))) == "allow"


def _plan(premade: tuple[tuple[str, int], ...]):  # type: ignore[no-untyped-def]
    part = replace(policy_part(load_policy("default"), seccomp_bpf=FAKE_BPF),
                   fs_writable=("/srv/data",))
    return replace(build_plan(part, RunSpec(argv=("/bin/true",)), euid=0), premade=premade)


def _writable_index() -> int:
    return next(i for i, op in enumerate(_plan(()).mounts) if op.kind == "writable")


def test_only_writable_idmapped_trees_need_the_guard(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(setid_guard, "guard_filter", lambda: FAKE_BPF)
    for premade in ((), (("/", 7),)):  # none, or an image's root (the store's upper layer)
        plan = _plan(premade)
        assert guarded(plan) == (plan, ())
    plan = _plan((("/", 7), (tree_key(_writable_index()), 8)))
    new, notes = guarded(plan)
    assert new.setid_guard == FAKE_BPF and len(notes) == 1
    assert notes[0].startswith("filesystem.writable is idmapped: CAP_SETFCAP dropped")
    old, caps = plan.policy.caps, new.policy.caps
    assert old.bounding >> CAP_SETFCAP & 1  # the default preset keeps it, as Docker does
    for mask in ("bounding", "permitted", "effective", "inheritable"):
        assert getattr(caps, mask) == getattr(old, mask) & ~(1 << CAP_SETFCAP)
    assert CAP_SETFCAP not in caps.ambient


def test_no_guard_means_no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: a filter that cannot be built stops the run (exit code of seccomp)."""
    def broken(machine: str) -> bytes:
        raise OSError(95, "libseccomp is missing")

    monkeypatch.setenv("STOCKADE_CACHE_DIR", "/nonexistent/cache")
    monkeypatch.setattr(setid_guard, "compile_guard", broken)
    with pytest.raises(RunnerError, match="set-id guard"):
        guarded(_plan(((tree_key(_writable_index()), 8),)))
