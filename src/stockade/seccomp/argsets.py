"""Exact complements of argument conditions, in the shapes libseccomp accepts.

libseccomp has one fallback per filter (the default action) and an argument-free rule on
a syscall overrides its argument rules. So "clone: EPERM when a namespace flag is set,
otherwise allow" cannot be said directly when the default is not allow; it is said as the
errno rules plus an allow rule for the exact complement of their conditions. libseccomp
also allows one comparison per argument per rule, so conjunctions on one argument are
rewritten into single comparisons (intervals become aligned masked_eq blocks).
The values that test these sets live in `seccomp.samples`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from types import MappingProxyType

from stockade.errors import StockadeError
from stockade.policy.model import ArgCondition, ArgOp

MAX = 0xFFFFFFFFFFFFFFFF
TERM_LIMIT = 256  # libseccomp rules per syscall; past that, adding rules gets slow

Term = tuple[ArgCondition, ...]  # a conjunction, at most one condition per index


# a comparison's negation with the same value: one comparison again
_OPPOSITE = MappingProxyType({ArgOp.EQ: ArgOp.NE, ArgOp.NE: ArgOp.EQ, ArgOp.LT: ArgOp.GE,
                              ArgOp.GE: ArgOp.LT, ArgOp.LE: ArgOp.GT, ArgOp.GT: ArgOp.LE})


def negate(c: ArgCondition) -> list[ArgCondition]:
    """¬c as a disjunction of pairwise disjoint single conditions on the same argument."""
    i = c.index
    if c.op in _OPPOSITE:
        return [ArgCondition(i, _OPPOSITE[c.op], c.value)]
    if c.op is not ArgOp.MASKED_EQ:
        raise AssertionError(c.op)
    if c.value & ~c.mask & MAX:
        return [ArgCondition(i, ArgOp.GE, 0)]  # (x & m) == v can never hold: ¬ is "always"
    # (x & m) != v  <=>  the lowest differing bit of m is bit b: lower bits of m
    # agree with v, bit b does not (disjoint alternatives, one per bit of m)
    out = []
    below = 0
    for bit in range(64):
        b = 1 << bit
        if c.mask & b:
            out.append(ArgCondition(i, ArgOp.MASKED_EQ, (c.value & below) | ((c.value & b) ^ b), below | b))
            below |= b
    return out or [ArgCondition(i, ArgOp.LT, 0)]  # mask 0: (x & 0) == 0 always; ¬ never


def negate_conjunction(conj: Sequence[ArgCondition]) -> list[Term]:
    """¬(c1 ∧ c2 ∧ ...) as disjoint terms: ¬c1, c1 ∧ ¬c2, c1 ∧ c2 ∧ ¬c3, ..."""
    out: list[Term] = []
    for k, cond in enumerate(conj):
        for neg in negate(cond):
            out.append((*conj[:k], neg))
    return out


def complement(conjunctions: Sequence[Sequence[ArgCondition]]) -> list[Term]:
    """Terms whose union is exactly ¬(C1 ∨ C2 ∨ ...), each Ci a conjunction.

    Built one conjunction at a time, dropping contradictory terms as soon as they
    appear, so the result stays close to the size of the answer, not of the product."""
    if any(not c for c in conjunctions):
        return []  # an empty conjunction is "always": its complement is empty
    terms: list[Term] = [()]
    for conj in conjunctions:
        negations = negate_conjunction(conj)
        grown: list[Term] = []
        for term in terms:
            for neg in negations:
                grown += normalise((*term, *neg))
        terms = _dedupe(grown)
        if len(terms) > TERM_LIMIT:
            raise too_complex(len(terms))
    return terms


def too_complex(n: int) -> StockadeError:
    return StockadeError(
        f"argument rules need {n}+ libseccomp rules to express exactly; simplify them "
        "(for example name the syscall in `deny` and allow only the safe argument values)"
    )


def _dedupe(terms: Iterable[Term]) -> list[Term]:
    seen: dict[Term, None] = {}
    for t in terms:
        seen.setdefault(tuple(sorted(t)), None)
    return list(seen)


def normalise(conj: Sequence[ArgCondition]) -> list[Term]:
    """A conjunction -> equivalent terms with one condition per argument (maybe none: empty)."""
    by_index: dict[int, list[ArgCondition]] = {}
    for c in conj:
        by_index.setdefault(c.index, []).append(c)
    per_index: list[list[ArgCondition | None]] = []
    for index in sorted(by_index):
        alts = _single_index(index, by_index[index])
        if not alts:
            return []  # unsatisfiable
        per_index.append(alts)
    out = []
    for combo in itertools.product(*per_index):
        out.append(tuple(c for c in combo if c is not None))
    return out


def _single_index(index: int, conds: list[ArgCondition]) -> list[ArgCondition | None]:
    """Alternatives (ORed) for a conjunction of conditions on one argument; [] = impossible,
    [None] = always true."""
    if len(conds) == 1:
        c = conds[0]
        if c.op is ArgOp.GE and c.value == 0:
            return [None]
        if c.op is ArgOp.LT and c.value == 0:
            return []
        return [c]
    lo, hi = 0, MAX
    excluded: set[int] = set()
    mask = value = 0
    for c in conds:
        match c.op:
            case ArgOp.EQ:
                lo, hi = max(lo, c.value), min(hi, c.value)
            case ArgOp.NE:
                excluded.add(c.value)
            case ArgOp.LT:
                hi = min(hi, c.value - 1)
            case ArgOp.LE:
                hi = min(hi, c.value)
            case ArgOp.GT:
                lo = max(lo, c.value + 1)
            case ArgOp.GE:
                lo = max(lo, c.value)
            case ArgOp.MASKED_EQ:
                if c.value & ~c.mask & MAX:
                    return []
                overlap = mask & c.mask
                if (value & overlap) != (c.value & overlap):
                    return []
                mask |= c.mask
                value |= c.value
    if lo > hi:
        return []
    intervals = _split(lo, hi, sorted(v for v in excluded if lo <= v <= hi))
    out: list[ArgCondition | None] = []
    for a, b in intervals:
        out += _interval_with_mask(index, a, b, mask, value)
    return out


def _split(lo: int, hi: int, holes: list[int]) -> list[tuple[int, int]]:
    out = []
    start = lo
    for h in holes:
        if h > start:
            out.append((start, h - 1))
        start = h + 1
    if start <= hi:
        out.append((start, hi))
    return out


def _interval_with_mask(index: int, lo: int, hi: int, mask: int, value: int) -> list[ArgCondition | None]:
    if mask == 0:
        if lo == 0 and hi == MAX:
            return [None]
        if lo == hi:
            return [ArgCondition(index, ArgOp.EQ, lo)]
        if lo == 0:
            return [ArgCondition(index, ArgOp.LE, hi)]
        if hi == MAX:
            return [ArgCondition(index, ArgOp.GE, lo)]
    if lo == 0 and hi == MAX:
        return [ArgCondition(index, ArgOp.MASKED_EQ, value, mask)]
    out: list[ArgCondition | None] = []
    for block_mask, prefix in blocks(lo, hi):
        overlap = block_mask & mask
        if (prefix & overlap) != (value & overlap):
            continue
        out.append(ArgCondition(index, ArgOp.MASKED_EQ, prefix | value, block_mask | mask))
    return out


def blocks(lo: int, hi: int) -> list[tuple[int, int]]:
    """[lo, hi] as aligned power-of-two blocks: (mask, prefix) with x & mask == prefix."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 64
        while size > hi - lo + 1:
            size >>= 1
        out.append((MAX & ~(size - 1), lo))
        lo += size
    return out
