"""Argument values that tell a filter's conditions apart: where a compiled filter and the
policy are compared (`seccomp.check`, `learn.compare`, the tests).

A filter can only be wrong where its conditions change their truth: at the boundary
values of each constant (`sample_args`) and inside every region two rules' conditions
cut out of each other (`cell_witnesses`); testing those points proves it on all others.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Sequence

from stockade.policy.model import ArgCondition, ArgOp
from stockade.seccomp.argsets import MAX, negate, normalise


def sample_args(consts: Iterable[tuple[int, int, int]], limit: int = 256) -> list[tuple[int, ...]]:
    """Argument vectors that tell every condition on these (index, value, mask) constants
    apart: each value, its neighbours, the extremes and every single-bit flip under the mask.
    All combinations when there are at most `limit`; otherwise every value of one argument
    at a time (others 0) plus `limit` deterministic random combinations."""
    per_index: dict[int, set[int]] = {}
    for index, value, mask in consts:
        vals = per_index.setdefault(index, {0})
        vals.update({value, (value + 1) & MAX, (value - 1) & MAX, MAX})
        for bit in range(64):
            if mask >> bit & 1:
                vals.add(value ^ (1 << bit))
    if not per_index:
        return [(0,) * 6]
    indexes = sorted(per_index)
    pools = [sorted(per_index[i]) for i in indexes]
    total = math.prod(len(pool) for pool in pools)
    combos: list[tuple[int, ...]]
    if total <= limit:
        combos = list(itertools.product(*pools))
    else:
        combos = [tuple(v if j == k else 0 for j in range(len(pools))) for k, pool in enumerate(pools)
                  for v in pool]
        rnd = random.Random(total)
        combos += [tuple(rnd.choice(pool) for pool in pools) for _ in range(limit)]
    return list(_vectors(indexes, combos))


def cell_witnesses(conjunctions: Sequence[Sequence[ArgCondition]], limit: int = 512) -> list[tuple[int, ...]]:
    """Argument vectors that give every condition of the rules every combination of true
    and false that can happen at once (other arguments 0): a point in each rule, in each
    overlap of rules, and in each part of a rule another rule's condition cuts.

    libseccomp 2.5.4 does not always let the stricter of two overlapping rules win, and
    merges some comparison trees wrongly (a `masked_eq` on a2 of a rule whose a0 test
    failed still decided the call); those regions need not hold a boundary value of
    `sample_args` (`gt 0x7E020000` and `masked_eq 0/0x7E020000` on one argument meet only
    above 32 bits). Conditions on different arguments are independent, so one value per
    combination per argument, crossed, reaches every combination of all of them; past
    `limit` points, a fixed pseudo-random `limit` of them plus one inside every rule and
    every pairwise overlap."""
    by_index: dict[int, dict[ArgCondition, None]] = {}
    for conj in conjunctions:
        for c in conj:
            by_index.setdefault(c.index, {})[c] = None
    if not by_index:
        return []
    indexes = sorted(by_index)
    pools = [_atoms(list(by_index[i])) for i in indexes]
    total = math.prod(len(pool) for pool in pools)
    if total <= limit:
        combos = list(itertools.product(*pools))
    else:
        rnd = random.Random(total)
        combos = [tuple(rnd.choice(pool) for pool in pools) for _ in range(limit)]
    out = _vectors(indexes, combos)
    if total > limit:
        regions = [*map(tuple, conjunctions), *((*a, *b) for a, b in itertools.combinations(conjunctions, 2))]
        for region in regions:
            for term in normalise(region)[:4]:
                args = [0] * 6
                for c in term:
                    args[c.index] = _witness(c)
                out[tuple(args)] = None
    return list(out)


def _vectors(indexes: Sequence[int], combos: Iterable[tuple[int, ...]]
             ) -> dict[tuple[int, ...], None]:
    """Six-argument vectors (others 0) from values for `indexes`, in order, without repeats."""
    out: dict[tuple[int, ...], None] = {}
    for combo in combos:
        args = [0] * 6
        for i, v in zip(indexes, combo, strict=True):
            args[i] = v
        out[tuple(args)] = None
    return out


def _atoms(conds: list[ArgCondition], budget: int = 4096) -> list[int]:
    """One value for each combination of truth values of `conds` (all on one argument)
    that some value gives; past `budget` alternatives, one value in and one out of each."""
    values: dict[int, None] = {}
    spent = 0
    if len(conds) <= 8:
        for truth in itertools.product((True, False), repeat=len(conds)):
            alternatives = [[c] if holds else negate(c) for c, holds in zip(conds, truth, strict=True)]
            for choice in itertools.product(*alternatives):
                spent += 1
                terms = normalise(choice)[:1]
                if terms or spent > budget:
                    break
            if spent > budget:
                break
            if terms:  # one value is enough for each combination
                values[_witness(terms[0][0]) if terms[0] else 0] = None
        else:
            return list(values)
    for c in conds:  # too many to combine: each condition true and false at least
        for alternative in ([c], negate(c)[:1]):
            for term in normalise(alternative)[:1]:
                values[_witness(term[0]) if term else 0] = None
    return list(values)

def _witness(c: ArgCondition, high: bool = False) -> int:
    """The smallest (or largest) value that satisfies one condition (a satisfiable one)."""
    match c.op:
        case ArgOp.EQ:
            return c.value
        case ArgOp.NE:
            return MAX if high or c.value == 0 else 0 if c.value != MAX else MAX - 1
        case ArgOp.LT:
            return c.value - 1 if high else 0
        case ArgOp.LE:
            return c.value if high else 0
        case ArgOp.GT:
            return MAX if high else c.value + 1
        case ArgOp.GE:
            return MAX if high else c.value
        case ArgOp.MASKED_EQ:
            return (c.value | (~c.mask & MAX)) if high else c.value
    raise AssertionError(c.op)
