"""Planned rules rewritten into shapes libseccomp 2.5.4 builds right.

Each rewrite keeps a rule's meaning and changes only its form; `filter.compile_filter`
applies one more of them to a syscall each time the built program was found wrong
for it (`plan.Escalation`), so policies libseccomp gets right stay as written.
"""

from __future__ import annotations

import itertools
import math

from stockade.policy import model as m
from stockade.seccomp.argsets import MAX, TERM_LIMIT, blocks, too_complex
from stockade.seccomp.rules import ALWAYS, PlannedRule


def as_blocks(rule: PlannedRule) -> list[PlannedRule]:
    """The same rule with every lt/le/gt/ge written as aligned masked_eq blocks.

    libseccomp 2.5.4 mis-builds some mixes of 64-bit range comparisons on one argument
    (e.g. `lt 0x10000000` or `gt 2**40` lets 0x10000000 through); masked_eq is exact."""
    choices: list[list[m.ArgCondition]] = []
    for c in rule.args:
        bounds = {m.ArgOp.LT: (0, c.value - 1), m.ArgOp.LE: (0, c.value),
                  m.ArgOp.GT: (c.value + 1, MAX), m.ArgOp.GE: (c.value, MAX)}.get(c.op)
        if bounds is None or bounds == (0, MAX):
            choices.append([c])
        else:
            choices.append([m.ArgCondition(c.index, m.ArgOp.MASKED_EQ, prefix, mask)
                            for mask, prefix in blocks(*bounds)])
    size = math.prod(len(c) for c in choices)
    if size > TERM_LIMIT:
        raise too_complex(size)
    return [PlannedRule(rule.syscall, rule.action, tuple(combo)) for combo in itertools.product(*choices)]


def uninverted(rule: PlannedRule, ranges: bool = True) -> list[PlannedRule]:
    """The same rule with no `ne`, `lt` or `le` on any argument but its last one.

    libseccomp stores those as the inverse comparison with the branches swapped, and 2.5.4
    mis-builds one that has comparisons after it: when a later argument fails, it jumps to
    the next comparison on the first argument without loading that argument again, so it
    compares the later argument's value instead (`clone` with `a1 ne 1, a2 ne 0` next to
    `a1 eq 0, a2 eq 0` gave EPERM to a1=2, a2=0). Written as `gt` and aligned `masked_eq`
    blocks, which it builds right, the rule means the same (`ranges`: False writes the
    `gt` as blocks too, see `as_blocks`)."""
    last = max((c.index for c in rule.args), default=0)
    choices: list[list[m.ArgCondition]] = []
    for c in rule.args:
        below = {m.ArgOp.NE: c.value - 1, m.ArgOp.LT: c.value - 1, m.ArgOp.LE: c.value}.get(c.op)
        if below is None or c.index == last:
            choices.append([c])
            continue
        alternatives = [m.ArgCondition(c.index, m.ArgOp.EQ, prefix) if mask == MAX
                        else m.ArgCondition(c.index, m.ArgOp.MASKED_EQ, prefix, mask)
                        for mask, prefix in (blocks(0, below) if below >= 0 else [])]
        if c.op is m.ArgOp.NE and c.value < MAX:
            alternatives += ([m.ArgCondition(c.index, m.ArgOp.GT, c.value)] if ranges else
                             [m.ArgCondition(c.index, m.ArgOp.MASKED_EQ, prefix, mask)
                              for mask, prefix in blocks(c.value + 1, MAX)])
        choices.append(alternatives)
    size = math.prod(len(c) for c in choices)
    if size > TERM_LIMIT:
        raise too_complex(size)
    return [PlannedRule(rule.syscall, rule.action, tuple(combo)) for combo in itertools.product(*choices)]


def pad(planned: list[PlannedRule], wide: bool, narrow: frozenset[str]) -> list[PlannedRule]:
    """Give every argument rule of a syscall the same argument indexes, with a check that
    always holds where it has none: libseccomp mis-builds its decision tree when one
    syscall's rules start their comparison chains at different arguments (seen with 2.5.4).

    Which always-true check matters too (libseccomp 2.5.4 again): over 64-bit arguments
    (`wide`) `ge 0` chains can make it loop for ever (two rules of one action with the pad
    on different arguments), so those get `masked_eq` with mask 0; over 32-bit arguments
    that one is mis-built when a looser rule precedes a stricter one, so those keep `ge 0`,
    and so do the syscalls in `narrow`, whose rules it mis-built over 64-bit ones too.
    """
    used: dict[str, set[int]] = {}
    for r in planned:
        if r.args:
            used.setdefault(r.syscall, set()).update(c.index for c in r.args)
    out = []
    for r in planned:
        if r.args:
            pad_wide = wide and r.syscall not in narrow
            given = [_always(c.index, pad_wide) if c == ALWAYS[0] else c for c in r.args]
            missing = used[r.syscall] - {c.index for c in r.args}
            r = PlannedRule(r.syscall, r.action, tuple(sorted(
                (*given, *(_always(i, pad_wide) for i in missing)), key=lambda c: c.index)))
        out.append(r)
    return out


def _always(index: int, wide: bool) -> m.ArgCondition:
    if wide:
        return m.ArgCondition(index, m.ArgOp.MASKED_EQ, 0, 0)  # (x & 0) == 0
    return m.ArgCondition(index, m.ArgOp.GE, 0)
