"""Checking: a built program run in the cBPF interpreter, against the policy's meaning.

libseccomp 2.5.4 does not always build what it is told (see `rewrite`), so a compile
is accepted only once its program agrees with `policy.semantics.decide` wherever the two
could differ: at every boundary value and inside every overlap of a syscall's argument
conditions (`samples`), and on every path through its comparisons (`bpf.accumulator_clashes`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from stockade.linux.hostfacts import HostFacts
from stockade.linux.syscall_table import AUDIT_ARCH, syscall_table
from stockade.policy import model as m
from stockade.policy.semantics import applicable_rules, decide
from stockade.seccomp import bpf
from stockade.seccomp.actions import ret_action
from stockade.seccomp.arches import ARGS_32BIT, BIG_ENDIAN
from stockade.seccomp.argsets import MAX
from stockade.seccomp.rules import ArchPlan
from stockade.seccomp.samples import cell_witnesses, sample_args

ARGUMENT_WORDS = frozenset(range(16, 64, 4))  # offsets of args[0..5] in struct seccomp_data


def evaluate(program: bytes, arch: str, nr: int, args: tuple[int, ...] = ()) -> m.Action:
    """Run a compiled program on a synthetic syscall (for explain and the tests)."""
    big = arch in BIG_ENDIAN
    data = bpf.seccomp_data(nr, AUDIT_ARCH[arch], args, big_endian=big)
    return ret_action(bpf.run(_decoded(program), data, big_endian=big))


@functools.lru_cache(maxsize=8)
def _decoded(program: bytes) -> tuple[bpf.Insn, ...]:
    # callers run one program on thousands of syscalls: decode it once, not per call
    return tuple(bpf.decode(program))


def disagreements(policy: m.Policy, host: HostFacts, program: bytes, plans: Iterable[ArchPlan],
                  lossy: frozenset[tuple[str, str]] = frozenset()) -> frozenset[str]:
    """Syscalls with argument rules whose BPF decision differs from the policy's meaning
    at any boundary value of their conditions, or whose BPF compares one argument where
    another was loaded on some path (`bpf.accumulator_clashes`: wrong at values between
    the boundaries, which sampling misses). The (arch, syscall) pairs in `lossy` were
    knowingly built stricter (see `arches.MULTIPLEXED`) and are not judged."""
    wrong: set[str] = set()
    table = syscall_table()
    for plan in plans:
        with_args = sorted({r.syscall for r in plan.rules if r.args})
        for name in with_args:
            if (plan.arch, name) in lossy:
                continue
            nr = table.number(plan.arch, name)
            if nr is None:
                continue
            rules = applicable_rules(policy, name, plan.arch, host.kernel)
            consts = {(c.index, c.value, c.mask) for r in rules for c in r.args}
            big = plan.arch in BIG_ENDIAN
            data = bpf.seccomp_data(nr, AUDIT_ARCH[plan.arch], big_endian=big)
            if bpf.accumulator_clashes(_decoded(program), data, ARGUMENT_WORDS, big):
                wrong.add(name)
                continue
            width = 0xFFFFFFFF if plan.arch in ARGS_32BIT else MAX
            points = [*sample_args(consts), *cell_witnesses([r.args for r in rules])]
            for args in {tuple(a & width for a in point) for point in points}:
                want = decide(policy, name, plan.arch, args, host.kernel).action
                if evaluate(program, plan.arch, nr, args) != want:
                    wrong.add(name)
                    break
    return frozenset(wrong)
