"""The seccomp backend: one policy -> a libseccomp filter (BPF), Docker JSON, OCI JSON.

Every output is built from one per-arch plan (`plan_arch`), so the three cannot drift:
a list of (syscall, action, argument conditions) that libseccomp, Docker and runc all
read the same way. Conditions (`when`/`unless`) are decided here, at compile time, from
the policy's kept capabilities and the host facts passed in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import json
import math
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stockade.errors import StockadeError
from stockade.policy import model as m
from stockade.policy.semantics import applicable_rules, fallback, most_restrictive, restrictiveness
from stockade.policy.vocab.syscalls import (
    ARCH_TOKENS,
    AUDIT_ARCH,
    syscall_table,
)
from stockade.profiles import bpf
from stockade.profiles.argsets import (
    TERM_LIMIT,
    _too_complex,
    cell_witnesses,
    complement,
    negate_conjunction,
    normalise,
    sample_args,
)
from stockade.profiles.base import Artifact, Artifacts, Enforcement, HostFacts

# kernel return values for each action kind
_RET = {
    m.ActionKind.ALLOW: bpf.SECCOMP_RET_ALLOW,
    m.ActionKind.LOG: bpf.SECCOMP_RET_LOG,
    m.ActionKind.KILL_PROCESS: bpf.SECCOMP_RET_KILL_PROCESS,
    m.ActionKind.KILL_THREAD: bpf.SECCOMP_RET_KILL_THREAD,
    m.ActionKind.TRAP: bpf.SECCOMP_RET_TRAP,
    m.ActionKind.NOTIFY: bpf.SECCOMP_RET_USER_NOTIF,
}

_DOCKER_ACTION = {
    m.ActionKind.ALLOW: "SCMP_ACT_ALLOW",
    m.ActionKind.LOG: "SCMP_ACT_LOG",
    m.ActionKind.KILL_PROCESS: "SCMP_ACT_KILL_PROCESS",
    m.ActionKind.KILL_THREAD: "SCMP_ACT_KILL_THREAD",
    m.ActionKind.TRAP: "SCMP_ACT_TRAP",
    m.ActionKind.NOTIFY: "SCMP_ACT_NOTIFY",
    m.ActionKind.ERRNO: "SCMP_ACT_ERRNO",
}
_DOCKER_OP = {
    m.ArgOp.EQ: "SCMP_CMP_EQ", m.ArgOp.NE: "SCMP_CMP_NE", m.ArgOp.LT: "SCMP_CMP_LT",
    m.ArgOp.LE: "SCMP_CMP_LE", m.ArgOp.GT: "SCMP_CMP_GT", m.ArgOp.GE: "SCMP_CMP_GE",
    m.ArgOp.MASKED_EQ: "SCMP_CMP_MASKED_EQ",
}
_LIBSECCOMP_OP = {
    m.ArgOp.NE: 1, m.ArgOp.LT: 2, m.ArgOp.LE: 3, m.ArgOp.EQ: 4, m.ArgOp.GE: 5, m.ArgOp.GT: 6,
    m.ArgOp.MASKED_EQ: 7,
}


def action_ret(action: m.Action) -> int:
    """The 32-bit value the filter returns for an action."""
    if action.kind is m.ActionKind.ERRNO:
        return bpf.SECCOMP_RET_ERRNO | (action.errno & bpf.SECCOMP_RET_DATA)
    return _RET[action.kind]


def ret_action(ret: int) -> m.Action:
    """Inverse of action_ret (for reading BPF results)."""
    full = ret & bpf.SECCOMP_RET_ACTION_FULL
    if full == bpf.SECCOMP_RET_ERRNO:
        return m.Action(m.ActionKind.ERRNO, ret & bpf.SECCOMP_RET_DATA)
    for kind, value in _RET.items():
        if full == value:
            return m.Action(kind)
    if full == bpf.SECCOMP_RET_TRACE:
        return m.Action(m.ActionKind.ERRNO, 38)  # no tracer: the kernel fails with ENOSYS
    return m.Action(m.ActionKind.KILL_PROCESS)


@dataclass(frozen=True)
class PlannedRule:
    """One libseccomp rule: `action` for `syscall` when all `args` hold."""

    syscall: str
    action: m.Action
    args: tuple[m.ArgCondition, ...] = ()


@dataclass(frozen=True)
class ArchPlan:
    arch: str
    default: m.Action
    rules: tuple[PlannedRule, ...]


@dataclass(frozen=True)
class Escalation:
    """How far each syscall's rules had to be rewritten before libseccomp built them
    right (see `_compile_filter`); every output is planned with the same record."""

    narrow_pads: frozenset[str] = frozenset()  # padded with `ge 0` even over 64-bit args
    exact: frozenset[str] = frozenset()  # every rule cut down to where no stricter one matches
    no_ranges: frozenset[str] = frozenset()  # range comparisons written as masked blocks
    no_inverted: frozenset[str] = frozenset()  # no ne/lt/le before a rule's last argument

    def escalate(self, wrong: frozenset[str]) -> Escalation:
        """One more step for each syscall in `wrong`: other pads, then rules cut apart
        exactly, then no inverted comparisons early in a rule, then no range comparisons."""
        return Escalation(self.narrow_pads | wrong, self.exact | (wrong & self.narrow_pads),
                          self.no_ranges | (wrong & self.no_inverted),
                          self.no_inverted | (wrong & self.exact))


def plan_arch(policy: m.Policy, arch: str, host: HostFacts, escalation: Escalation = Escalation(),
              wide_pads: bool | None = None) -> ArchPlan:
    """What to tell libseccomp for one arch (syscalls not on that arch are left out).

    libseccomp gives each syscall either one argument-free action or argument rules that
    fall back to the filter's default, refuses rules equal to the default and identical
    rules with two actions. So a syscall's own fallback, when it differs from the default,
    is written as rules for the exact complement of its argument rules; a stricter rule
    that cannot be emitted (it equals the default) is cut out of the looser rules; and
    where rules overlap, libseccomp lets the stricter action win — which `compile_filter`
    verifies on boundary values, recompiling a syscall in `exact` mode (every rule cut
    down to where no stricter rule matches) if it ever did not (`escalation`).
    `wide_pads`: see `_pad` (default: by the arch's argument width).
    """
    sc = policy.syscalls
    default = sc.default
    table = syscall_table().by_arch[arch]
    planned: list[PlannedRule] = []
    for name in sorted(table):
        base = fallback(sc, name).action
        rules = applicable_rules(policy, name, arch, host.kernel)
        if arch in ARGS_32BIT:
            rules = _on_low_words(rules)
        unconditional = [r.action for r in rules if not r.args]
        if unconditional:
            # an argument-free rule matches every call; only stricter argument rules matter
            base = most_restrictive(unconditional)
            conditional = [r for r in rules if r.args and _stricter(r.action, base)]
        else:
            conditional = [r for r in rules if r.args]
        if not any(_stricter(base, r.action) for r in conditional):
            # no rule is looser than the fallback: one with the fallback's own action
            # changes nothing (a stricter match still wins), so it need not be written
            conditional = [r for r in conditional if r.action != base]
        if not conditional:
            if base != default:
                planned.append(PlannedRule(name, base))
            continue
        stricter: list[m.SyscallRule] = []
        for r in sorted(conditional, key=lambda r: restrictiveness(r.action), reverse=True):
            region = normalise(r.args)  # [] for a rule that can never match (`lt 0`)
            for s in stricter:
                if name in escalation.exact or s.action == default or s.args == r.args:
                    region = [t for term in region for neg in negate_conjunction(s.args)
                              for t in normalise((*term, *neg))]
            stricter.append(r)
            if r.action == default:
                continue
            for term in region:
                planned.append(PlannedRule(name, r.action, term or _ALWAYS))
        if base != default:
            for term in complement([r.args for r in conditional]):
                planned.append(PlannedRule(name, base, term or _ALWAYS))
    if policy.network.allow:
        planned = _restrict_sockets(planned, policy, default)
    if escalation.no_ranges:
        planned = [q for r in planned for q in (_as_blocks(r) if r.syscall in escalation.no_ranges else [r])]
    wide = arch not in ARGS_32BIT if wide_pads is None else wide_pads
    planned = _pad(planned, wide, escalation.narrow_pads)
    if escalation.no_inverted:  # after the pads: they decide which argument comes last
        planned = [q for r in planned for q in (
            _uninverted(r, ranges=r.syscall not in escalation.no_ranges) if r.syscall in escalation.no_inverted
            else [r])]
    if arch in ARGS_32BIT:  # blocks written above may lie wholly above 32 bits: never there
        planned = [r for r in planned if _low_words(r.args) is not None]
    per_syscall: dict[str, int] = {}
    for pr in planned:
        per_syscall[pr.syscall] = per_syscall.get(pr.syscall, 0) + 1
    if per_syscall and max(per_syscall.values()) > TERM_LIMIT:
        raise _too_complex(max(per_syscall.values()))
    return ArchPlan(arch, default, tuple(dict.fromkeys(planned)))


def _on_low_words(rules: list[m.SyscallRule]) -> list[m.SyscallRule]:
    """The rules as they read on an arch whose filter sees 32-bit arguments (ARGS_32BIT):
    a comparison with a wider value decided once (`ge 2**40` never holds, `ne 2**40`
    always does) instead of left to libseccomp, which compares the value's low word
    (`ge 2**40` became `ge 0`: always)."""
    out = []
    for r in rules:
        args = _low_words(r.args)
        if args is not None:
            out.append(dataclasses.replace(r, args=args))
    return out


def _low_words(conds: tuple[m.ArgCondition, ...]) -> tuple[m.ArgCondition, ...] | None:
    """`conds` on 32-bit arguments: the ones that always hold left out; None if one never does."""
    low = 0xFFFFFFFF
    out = []
    for c in conds:
        if c.op is m.ArgOp.MASKED_EQ:
            if c.value & ~low:
                return None
            c = m.ArgCondition(c.index, c.op, c.value, c.mask & low)
            if c.mask:
                out.append(c)
        elif c.value <= low:
            out.append(c)
        elif c.op not in (m.ArgOp.NE, m.ArgOp.LT, m.ArgOp.LE):  # every argument is below the value
            return None
    return tuple(out)


def _as_blocks(rule: PlannedRule) -> list[PlannedRule]:
    """The same rule with every lt/le/gt/ge written as aligned masked_eq blocks.

    libseccomp 2.5.4 mis-builds some mixes of 64-bit range comparisons on one argument
    (e.g. `lt 0x10000000` or `gt 2**40` lets 0x10000000 through); masked_eq is exact."""
    from stockade.profiles.argsets import MAX, _blocks

    choices: list[list[m.ArgCondition]] = []
    for c in rule.args:
        bounds = {m.ArgOp.LT: (0, c.value - 1), m.ArgOp.LE: (0, c.value),
                  m.ArgOp.GT: (c.value + 1, MAX), m.ArgOp.GE: (c.value, MAX)}.get(c.op)
        if bounds is None or bounds == (0, MAX):
            choices.append([c])
        else:
            choices.append([m.ArgCondition(c.index, m.ArgOp.MASKED_EQ, prefix, mask)
                            for mask, prefix in _blocks(*bounds)])
    import itertools

    size = math.prod(len(c) for c in choices)
    if size > TERM_LIMIT:
        raise _too_complex(size)
    return [PlannedRule(rule.syscall, rule.action, tuple(combo)) for combo in itertools.product(*choices)]


def _uninverted(rule: PlannedRule, ranges: bool = True) -> list[PlannedRule]:
    """The same rule with no `ne`, `lt` or `le` on any argument but its last one.

    libseccomp stores those as the inverse comparison with the branches swapped, and 2.5.4
    mis-builds one that has comparisons after it: when a later argument fails, it jumps to
    the next comparison on the first argument without loading that argument again, so it
    compares the later argument's value instead (`clone` with `a1 ne 1, a2 ne 0` next to
    `a1 eq 0, a2 eq 0` gave EPERM to a1=2, a2=0). Written as `gt` and aligned `masked_eq`
    blocks, which it builds right, the rule means the same (`ranges`: False writes the
    `gt` as blocks too, see `_as_blocks`)."""
    from stockade.profiles.argsets import _blocks

    last = max((c.index for c in rule.args), default=0)
    choices: list[list[m.ArgCondition]] = []
    for c in rule.args:
        below = {m.ArgOp.NE: c.value - 1, m.ArgOp.LT: c.value - 1, m.ArgOp.LE: c.value}.get(c.op)
        if below is None or c.index == last:
            choices.append([c])
            continue
        alternatives = [m.ArgCondition(c.index, m.ArgOp.EQ, prefix) if mask == MAX64
                        else m.ArgCondition(c.index, m.ArgOp.MASKED_EQ, prefix, mask)
                        for mask, prefix in (_blocks(0, below) if below >= 0 else [])]
        if c.op is m.ArgOp.NE and c.value < MAX64:
            alternatives += ([m.ArgCondition(c.index, m.ArgOp.GT, c.value)] if ranges else
                             [m.ArgCondition(c.index, m.ArgOp.MASKED_EQ, prefix, mask)
                              for mask, prefix in _blocks(c.value + 1, MAX64)])
        choices.append(alternatives)
    import itertools

    size = math.prod(len(c) for c in choices)
    if size > TERM_LIMIT:
        raise _too_complex(size)
    return [PlannedRule(rule.syscall, rule.action, tuple(combo)) for combo in itertools.product(*choices)]


def _pad(planned: list[PlannedRule], wide: bool, narrow: frozenset[str]) -> list[PlannedRule]:
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
            given = [_always(c.index, pad_wide) if c == _ALWAYS[0] else c for c in r.args]
            missing = used[r.syscall] - {c.index for c in r.args}
            r = PlannedRule(r.syscall, r.action, tuple(sorted(
                (*given, *(_always(i, pad_wide) for i in missing)), key=lambda c: c.index)))
        out.append(r)
    return out


def _always(index: int, wide: bool) -> m.ArgCondition:
    if wide:
        return m.ArgCondition(index, m.ArgOp.MASKED_EQ, 0, 0)  # (x & 0) == 0
    return m.ArgCondition(index, m.ArgOp.GE, 0)


def _restrict_sockets(planned: list[PlannedRule], policy: m.Policy, default: m.Action) -> list[PlannedRule]:
    """`network.allow` decides socket() within its region: those calls are allowed even
    where the syscall rules (a base preset's `deny: [socket]`) refuse them; outside it,
    what the rules allowed gets EAFNOSUPPORT and what they refused keeps their action
    (policy.semantics.decide, the reference). The pieces stay disjoint from each other."""
    from stockade.policy.network import EAFNOSUPPORT, allowed_region

    region = allowed_region(policy.network.allow)
    outside = complement(region)
    sockets = [r for r in planned if r.syscall == "socket"]
    out = [r for r in planned if r.syscall != "socket"]
    if default.is_allow:  # where no socket() rule matches, the default allows: cut that
        sockets += [PlannedRule("socket", default, term) for term in
                    complement([() if r.args == _ALWAYS else r.args for r in sockets])]

    def outside_of(r: PlannedRule) -> list[PlannedRule]:
        base = () if r.args == _ALWAYS else r.args
        action = EAFNOSUPPORT if r.action.is_allow else r.action
        if action == default:
            return []
        return [PlannedRule("socket", action, t or _ALWAYS)
                for term in outside for t in normalise((*base, *term))]

    # refusals first, then the grant, then the allows cut down: the order they had
    for r in sockets:
        if not r.action.is_allow:
            out += outside_of(r)
    if default != m.ALLOW:
        out += [PlannedRule("socket", m.ALLOW, term or _ALWAYS) for term in region]
    for r in sockets:
        if r.action.is_allow:
            out += outside_of(r)
    return out


# An argument check that always holds: keeps a rule "conditional" for libseccomp, so it
# does not override the syscall's other (disjoint) argument rules (`_pad` picks the form).
_ALWAYS = (m.ArgCondition(0, m.ArgOp.GE, 0),)


def _stricter(a: m.Action, b: m.Action) -> bool:
    return a != b and most_restrictive([a, b]) == a


# ---------------------------------------------------------------- libseccomp / BPF


# arches where libseccomp maps socket calls (and SysV IPC) onto a multiplexer syscall
MULTIPLEXED = frozenset({"x86", "s390", "s390x", "ppc", "ppc64", "ppc64le", "mips", "mipsel"})


def _libseccomp_filter(plans: Iterable[ArchPlan], default: m.Action,
                       lossy: set[tuple[str, str]] | None = None) -> object:
    import pyseccomp

    lossy = set() if lossy is None else lossy
    merged = None
    for plan in plans:
        flt = _arch_filter(default, plan.arch)
        flt.set_attr(pyseccomp.Attr.ACT_BADARCH, bpf.SECCOMP_RET_KILL_PROCESS)
        flt.set_attr(pyseccomp.Attr.CTL_NNP, 0)  # the runner sets no_new_privs itself
        flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)  # binary tree: O(log n) syscall lookup
        for rule in _ordered(plan.rules):
            args = [pyseccomp.Arg(c.index, _LIBSECCOMP_OP[c.op],
                                  c.mask if c.op is m.ArgOp.MASKED_EQ else c.value,
                                  c.value if c.op is m.ArgOp.MASKED_EQ else 0)
                    for c in rule.args]
            try:
                flt.add_rule(action_ret(rule.action), rule.syscall, *args)
            except OSError as exc:
                if exc.errno == errno.EEXIST and args and plan.arch in MULTIPLEXED:
                    # libseccomp also writes socket()/ipc rules onto the multiplexed
                    # socketcall()/ipc(), where argument checks cannot survive, so two
                    # different checks collide there; this arch keeps the stricter one.
                    lossy.add((plan.arch, rule.syscall))
                    continue
                raise _Refused(f"libseccomp refused the rule for {rule.syscall!r} on "
                               f"{plan.arch}: {exc.strerror}", rule.syscall) from None
        if merged is None:
            merged = flt
        else:
            merged.merge(flt)
    assert merged is not None
    return merged


def _arch_filter(default: m.Action, arch: str) -> Any:
    """An empty libseccomp filter for `arch` alone. The native arch goes before the other
    comes in: libseccomp refuses (EDOM) a filter holding two byte orders even for a moment."""
    import pyseccomp

    flt = pyseccomp.SyscallFilter(action_ret(default))
    native = pyseccomp.system_arch()
    token = ARCH_TOKENS[arch]
    if token != native:
        flt.remove_arch(native)
        flt.add_arch(token)
    return flt


class _Refused(StockadeError):
    """libseccomp refused a rule of `syscall` (e.g. EEXIST for two overlapping rules it
    reads as the same): that syscall is rebuilt with its rules cut apart."""

    def __init__(self, message: str, syscall: str) -> None:
        super().__init__(message)
        self.syscall = syscall


class _TimedOut(StockadeError):
    """libseccomp did not finish within the time limit."""


def _ordered(rules: Iterable[PlannedRule]) -> list[PlannedRule]:
    # Per syscall: argument rules first, the strictest first (it wins a collision).
    return sorted(rules, key=lambda r: (r.syscall, not r.args, tuple(-x for x in restrictiveness(r.action))))


def _export(flt: object) -> bytes:
    fd = os.memfd_create("stockade-bpf", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "rb") as reader, open(fd, "wb", closefd=False) as writer:
            flt.export_bpf(writer)  # type: ignore[attr-defined]
            writer.flush()
            reader.seek(0)
            return reader.read()
    finally:
        os.close(fd)


def unknown_ranges(arches: Iterable[str]) -> list[bpf.UnknownRange]:
    table = syscall_table()
    arches = list(arches)
    out: list[bpf.UnknownRange] = []
    seen_audit: set[int] = set()
    for arch in arches:
        audit = AUDIT_ARCH[arch]
        if audit in seen_audit:
            continue
        seen_audit.add(audit)
        if arch in ("x86_64", "x32"):
            has64, has32 = "x86_64" in arches, "x32" in arches
            max64 = table.max_number("x86_64") if has64 else 0x3FFFFFFF
            x32max = table.max_number("x32") - 0x40000000 if has32 else None
            out.append(bpf.UnknownRange(audit, max64, x32max, x32_present=True))
        else:
            out.append(bpf.UnknownRange(audit, table.max_number(arch)))
    return out


@dataclass(frozen=True)
class CompiledFilter:
    program: bytes  # struct sock_filter[], native byte order: ENOSYS prologue + libseccomp's
    arches: tuple[str, ...]
    lossy: frozenset[tuple[str, str]] = frozenset()  # (arch, syscall): see MULTIPLEXED
    escalation: Escalation = Escalation()  # what it took: the JSON outputs are planned alike

    @property
    def instructions(self) -> int:
        return len(self.program) // 8


_CACHE: dict[tuple[str, HostFacts], CompiledFilter] = {}


def compile_filter(policy: m.Policy, host: HostFacts) -> CompiledFilter:
    """Compile (memoised per process by policy digest and host facts)."""
    key = (policy.digest, host)
    if policy.digest and key in _CACHE:
        return _CACHE[key]
    result = _compile_filter(policy, host)
    if policy.digest:
        _CACHE[key] = result
    return result


# An arch token without __AUDIT_ARCH_LE (linux/audit.h) is a big-endian arch.
BIG_ENDIAN = frozenset(a for a, token in ARCH_TOKENS.items() if not token & 0x40000000)


def bpf_arches(policy: m.Policy, host: HostFacts) -> tuple[str, ...]:
    """The policy's arches a BPF program for this host can hold: one program has one byte
    order (libseccomp refuses to mix them, and a kernel never presents the other)."""
    big = host.arch in BIG_ENDIAN
    arches = tuple(a for a in policy.syscalls.arches if (a in BIG_ENDIAN) == big)
    if not arches:
        raise StockadeError(
            f"none of the policy's arches ({', '.join(policy.syscalls.arches)}) can run on a "
            f"{host.arch} host; add `native` to syscalls.arches or compile with --arch")
    return arches


def bpf_buildable(host: HostFacts) -> bool:
    """libseccomp here writes a program in this machine's byte order only (and the checks
    that read it back assume so): a host of the other byte order needs its own machine."""
    return (host.arch in BIG_ENDIAN) == (sys.byteorder == "big")


def _compile_filter(policy: m.Policy, host: HostFacts) -> CompiledFilter:
    if not bpf_buildable(host):
        order = "big" if host.arch in BIG_ENDIAN else "little"
        raise StockadeError(
            f"a BPF program for {host.arch} ({order}-endian) cannot be built on this {sys.byteorder}-endian "
            f"machine; compile the seccomp-docker or seccomp-oci target instead, or compile on {host.arch}")
    sc = policy.syscalls
    arches = bpf_arches(policy, host)
    escalation = Escalation()
    wrong: frozenset[str] = frozenset()
    refused: _Refused | None = None
    timed_out = False
    for _ in range(7):
        plans = [plan_arch(policy, arch, host, escalation) for arch in arches]
        try:
            main, lossy = _build_bounded(plans, sc.default)
        except _TimedOut:
            # `ge 0` pads (a step for rules mis-built with the other pads) can hang
            # libseccomp: once, cut those syscalls' rules apart with the other pads instead
            narrowed = escalation.narrow_pads - escalation.exact
            if timed_out or not narrowed:
                raise
            timed_out = True
            escalation = Escalation(escalation.narrow_pads - narrowed, escalation.exact | narrowed,
                                    escalation.no_ranges, escalation.no_inverted)
            continue
        except _Refused as exc:
            if exc.syscall in escalation.exact:
                raise StockadeError(exc.message) from None
            # disjoint rules cannot collide
            escalation = Escalation(escalation.narrow_pads, escalation.exact | {exc.syscall},
                                    escalation.no_ranges, escalation.no_inverted)
            refused = exc
            continue
        refused = None
        prologue: list[bpf.Insn] = []
        if sc.unknown != sc.default:
            prologue = bpf.enosys_prologue(unknown_ranges(arches), action_ret(sc.unknown))
        compiled = CompiledFilter(bpf.encode(prologue) + main, arches, frozenset(lossy), escalation)
        wrong = _disagreements(policy, host, compiled, plans)
        if not wrong:
            return compiled
        # per syscall: other pads, then cut overlaps exactly, then also no range compares
        escalation = escalation.escalate(wrong)
    if refused is not None:
        raise StockadeError(refused.message)
    raise StockadeError(f"internal error: the compiled filter disagrees with the policy for "
                        f"{', '.join(sorted(wrong))}; please report this policy")


def _build_bounded(plans: list[ArchPlan], default: m.Action) -> tuple[bytes, set[tuple[str, str]]]:
    """Build and export the libseccomp filter in a forked child with a time limit.

    libseccomp 2.5.4 can loop for ever on some sets of overlapping masked comparisons
    (seen with 9 rules on one syscall); a compile must end with an answer, not hang."""
    import json as _json
    import select
    import signal

    limit = float(os.environ.get("STOCKADE_LIBSECCOMP_TIMEOUT", "20"))
    parent = os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: build, export, report, exit without running any cleanup
        status = 0
        try:
            os.close(r)
            _tie_to_parent(parent, limit)
            lossy: set[tuple[str, str]] = set()
            program = _export(_libseccomp_filter(plans, default, lossy))
            payload = _json.dumps({"lossy": sorted(lossy), "bpf": program.hex()}).encode()
        except _Refused as exc:
            payload = _json.dumps({"error": str(exc), "refused": exc.syscall}).encode()
        except StockadeError as exc:
            payload = _json.dumps({"error": str(exc)}).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never unwound
            payload = _json.dumps({"error": f"internal error: {exc!r}"}).encode()
            status = 1
        with os.fdopen(w, "wb") as out:
            out.write(payload)
        os._exit(status)
    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    try:
        with os.fdopen(r, "rb", buffering=0) as inp:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([inp], [], [], left)[0]:
                    os.kill(pid, signal.SIGKILL)
                    names = sorted({x.syscall for p in plans for x in p.rules if x.args})
                    raise _TimedOut(
                        f"libseccomp did not finish building the filter within {limit:.0f} s (a libseccomp "
                        f"2.5 defect with overlapping masked comparisons); simplify the argument rules "
                        f"for: {', '.join(names)}")
                chunk = inp.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        # whatever stopped the wait (an answer, the limit, ^C): no builder outlives it
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    result = _json.loads(b"".join(chunks) or b"{}")
    if "refused" in result:
        raise _Refused(result["error"], result["refused"])
    if "error" in result or "bpf" not in result:
        raise StockadeError(result.get("error", "libseccomp filter build failed"))
    return bytes.fromhex(result["bpf"]), {(str(a), str(n)) for a, n in result["lossy"]}


PR_SET_PDEATHSIG = 1


def _tie_to_parent(parent: int, limit: float) -> None:
    """In the builder: end with the compile that forked it, and by itself at the limit.

    A compile killed with SIGKILL cannot kill its builder, which libseccomp may keep
    spinning for ever (reparented to init). The kernel kills the builder when the parent
    dies (PR_SET_PDEATHSIG; checked against getppid() in case the parent died before the
    prctl), and RLIMIT_CPU and alarm() stop a spinning or stuck builder even then."""
    import ctypes
    import resource
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != parent:
        os._exit(1)
    seconds = math.ceil(limit) + 1
    for sig in (signal.SIGXCPU, signal.SIGALRM):  # never an inherited Python handler: they
        signal.signal(sig, signal.SIG_DFL)        # cannot run while libseccomp's C code loops
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))  # soft SIGXCPU, hard SIGKILL
    signal.alarm(seconds)


def _disagreements(policy: m.Policy, host: HostFacts, compiled: CompiledFilter,
                   plans: list[ArchPlan]) -> frozenset[str]:
    """Syscalls with argument rules whose BPF decision differs from the policy's meaning
    at any boundary value of their conditions, or whose BPF compares one argument where
    another was loaded on some path (`bpf.accumulator_clashes`: wrong at values between
    the boundaries, which sampling misses)."""
    from stockade.policy.semantics import decide

    wrong: set[str] = set()
    table = syscall_table()
    for plan in plans:
        with_args = sorted({r.syscall for r in plan.rules if r.args})
        for name in with_args:
            if (plan.arch, name) in compiled.lossy:
                continue
            nr = table.number(plan.arch, name)
            if nr is None:
                continue
            rules = applicable_rules(policy, name, plan.arch, host.kernel)
            consts = {(c.index, c.value, c.mask) for r in rules for c in r.args}
            big = plan.arch in BIG_ENDIAN
            data = bpf.seccomp_data(nr, AUDIT_ARCH[plan.arch], big_endian=big)
            if bpf.accumulator_clashes(_decoded(compiled.program), data, _ARGUMENT_WORDS, big):
                wrong.add(name)
                continue
            width = 0xFFFFFFFF if plan.arch in ARGS_32BIT else MAX64
            points = [*sample_args(consts), *cell_witnesses([r.args for r in rules])]
            for args in {tuple(a & width for a in point) for point in points}:
                want = decide(policy, name, plan.arch, args, host.kernel).action
                if evaluate(compiled.program, plan.arch, nr, args) != want:
                    wrong.add(name)
                    break
    return frozenset(wrong)


MAX64 = 0xFFFFFFFFFFFFFFFF
_ARGUMENT_WORDS = frozenset(range(16, 64, 4))  # offsets of args[0..5] in struct seccomp_data
# Arches whose filters compare only the low 32 bits of each argument: the 32-bit arches,
# and the ILP32 ABIs on 64-bit kernels (x32, mips n32), where libseccomp — and so runc
# and Docker — treat every argument as 32 bits wide. On those, a policy's conditions
# are judged on the low word, which is all the filter can see.
ARGS_32BIT = frozenset({"x86", "arm", "mips", "mipsel", "ppc", "s390", "parisc",
                        "x32", "mips64n32", "mipsel64n32"})


def compile_bpf(policy: m.Policy, host: HostFacts | None = None) -> bytes:
    """The loadable program for `seccomp(SECCOMP_SET_MODE_FILTER)`."""
    return compile_filter(policy, host or HostFacts.detect()).program


def evaluate(program: bytes, arch: str, nr: int, args: tuple[int, ...] = ()) -> m.Action:
    """Run a compiled program on a synthetic syscall (for explain and the tests)."""
    big = arch in BIG_ENDIAN
    data = bpf.seccomp_data(nr, AUDIT_ARCH[arch], args, big_endian=big)
    return ret_action(bpf.run(_decoded(program), data, big_endian=big))


@functools.lru_cache(maxsize=8)
def _decoded(program: bytes) -> tuple[bpf.Insn, ...]:
    # callers run one program on thousands of syscalls: decode it once, not per call
    return tuple(bpf.decode(program))


# ---------------------------------------------------------------- Docker / OCI JSON


_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def _scmp_arch(arch: str) -> str:
    return "SCMP_ARCH_" + arch.upper()


def _json_args(args: tuple[m.ArgCondition, ...]) -> list[dict[str, object]]:
    out = []
    for c in args:
        if c.op is m.ArgOp.MASKED_EQ:
            out.append({"index": c.index, "value": c.mask, "valueTwo": c.value, "op": _DOCKER_OP[c.op]})
        else:
            out.append({"index": c.index, "value": c.value, "valueTwo": 0, "op": _DOCKER_OP[c.op]})
    return out


def _json_entry(names: list[str], action: m.Action, args: tuple[m.ArgCondition, ...]) -> dict[str, object]:
    entry: dict[str, object] = {"names": names, "action": _DOCKER_ACTION[action.kind]}
    if action.kind is m.ActionKind.ERRNO:
        entry["errnoRet"] = action.errno
    if args:
        entry["args"] = _json_args(args)
    return entry


def _grouped(plans: list[ArchPlan], native: str) -> tuple[list[dict[str, object]], list[str]]:
    """One rule list for all arches. Docker and runc judge arch conditions by the host's
    arch, so a rule follows the native arch's plan; elsewhere it is resolved fail-closed."""
    warnings: list[str] = []
    table = syscall_table().by_arch
    native_plan = next((p for p in plans if p.arch == native), None)
    chosen: set[PlannedRule] = set()
    for rule in sorted({r for p in plans for r in p.rules}, key=lambda r: (r.syscall, str(r.action), r.args)):
        exists = [p.arch for p in plans if rule.syscall in table[p.arch]]
        on = [p.arch for p in plans if rule in p.rules]
        if on == exists:  # the rule holds wherever the syscall exists: nothing is lost
            chosen.add(rule)
            continue
        if native_plan is not None and rule.syscall in table[native]:
            if rule in native_plan.rules:
                chosen.add(rule)
            warnings.append(f"{rule.syscall}: {rule.action} on {', '.join(on) or 'no arch'} only; "
                            f"OCI/Docker JSON follows {native} here")
            continue
        # no native word on it: a denial is kept everywhere, an allowance nowhere
        if not rule.action.is_allow:
            chosen.add(rule)
        warnings.append(f"{rule.syscall}: {rule.action} on {', '.join(on)} only; OCI/Docker JSON cannot "
                        "say that, so it is resolved the stricter way on every arch")
    # Group identical (action, args) across syscalls, in libseccomp's rule order (runc adds
    # them in this order): argument rules first, the strictest first, as `_ordered` does.
    buckets: dict[tuple[m.Action, tuple[m.ArgCondition, ...]], list[str]] = {}
    for rule in _ordered(chosen):
        buckets.setdefault((rule.action, rule.args), []).append(rule.syscall)
    ordered = sorted(buckets.items(), key=lambda kv: (
        not kv[0][1], tuple(-x for x in restrictiveness(kv[0][0])), str(kv[0][0]), kv[0][1]))
    return [_json_entry(sorted(set(names)), a, args) for (a, args), names in ordered], warnings


def _json_profile(policy: m.Policy, host: HostFacts,
                  escalation: Escalation | None = None) -> tuple[dict[str, object], list[str]]:
    sc = policy.syscalls
    # one rule list for every arch: padded for the host's own argument width (see _pad)
    if escalation is None:  # what building the BPF program needed, where this machine can
        escalation = compile_filter(policy, host).escalation if bpf_buildable(host) else Escalation()
    plans = [plan_arch(policy, arch, host, escalation, wide_pads=host.arch not in ARGS_32BIT)
             for arch in sc.arches]
    syscalls, warnings = _grouped(plans, host.arch)
    profile: dict[str, object] = {"defaultAction": _DOCKER_ACTION[sc.default.kind]}
    if sc.default.kind is m.ActionKind.ERRNO:
        profile["defaultErrnoRet"] = sc.default.errno
    arches = list(sc.arches)
    for arch in [a for a in arches if a in MULTIPLEXED]:
        clash = _runc_collision(syscalls, arch, sc.default)
        if clash:
            arches.remove(arch)
            warnings.append(f"{arch} left out of the Docker/OCI JSON: runc would add the argument rules "
                            f"for {clash} to the multiplexed socketcall()/ipc() too, where they collide "
                            f"and runc refuses the profile; {arch} processes are killed instead (stricter)")
    if not arches:
        raise StockadeError("no architecture left for the Docker/OCI JSON (see the warnings)")
    profile["architectures"] = [_scmp_arch(a) for a in arches]
    profile["syscalls"] = syscalls
    if sc.unknown.kind is not m.ActionKind.ERRNO or sc.unknown.errno != 38:
        warnings.append(f"unknown: {sc.unknown} cannot be expressed in Docker/OCI JSON; runc and crun "
                        "answer syscalls newer than the profile with ENOSYS themselves")
    return profile, warnings


def _runc_collision(entries: list[dict[str, object]], arch: str, default: m.Action) -> str | None:
    """The first syscall whose rules libseccomp refuses on `arch` the way runc adds them."""
    import pyseccomp

    flt = _arch_filter(default, arch)
    ops = {v: k for k, v in _DOCKER_OP.items()}
    table = syscall_table().by_arch[arch]
    for entry in entries:
        action = m.Action(next(k for k, v in _DOCKER_ACTION.items() if v == entry["action"]),
                          int(entry.get("errnoRet", 0)))  # type: ignore[call-overload]
        args = [pyseccomp.Arg(a["index"], _LIBSECCOMP_OP[ops[a["op"]]], a["value"], a["valueTwo"])
                for a in entry.get("args", [])]  # type: ignore[attr-defined]
        for name in entry["names"]:  # type: ignore[attr-defined]
            if name not in table:
                continue
            try:
                flt.add_rule(action_ret(action), name, *args)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    return str(name)
    return None


def docker_seccomp(policy: m.Policy, host: HostFacts) -> dict[str, object]:
    """`docker run --security-opt seccomp=FILE` / podman: the same JSON shape."""
    return _json_profile(policy, host)[0]


def oci_seccomp(policy: m.Policy, host: HostFacts) -> dict[str, object]:
    """The OCI runtime-spec `linux.seccomp` object (runc, crun)."""
    profile = _json_profile(policy, host)[0]
    profile["flags"] = []  # none: in particular no SPEC_ALLOW, speculation mitigations stay on
    return profile


def skipped_notes(policy: m.Policy) -> list[str]:
    """Syscalls the policy file itself names (not via a group or a preset) that do not
    exist on some of its arches: they are skipped on those arches only."""
    table = syscall_table()
    sc = policy.syscalls
    own = policy.sources[-1] if policy.sources else ""
    if own.startswith("<preset:"):
        return []  # presets list every arch's names on purpose (Docker's profile does)
    named: set[str] = {
        e.name for e in (*sc.allow.values(), *sc.deny.values()) if not e.via_group and e.origin.file == own
    }
    named |= {n for r in sc.rules if r.origin.file == own for n in r.syscalls}
    missing_by_arches: dict[tuple[str, ...], list[str]] = {}
    for name in sorted(named):
        missing = tuple(a for a in sc.arches if name not in table.by_arch[a])
        if missing:
            missing_by_arches.setdefault(missing, []).append(name)
    return [
        f"not a syscall on {', '.join(arches)}, skipped there: {', '.join(names)}"
        for arches, names in sorted(missing_by_arches.items())
    ]


def compile_seccomp(policy: m.Policy, host: HostFacts, only: str | None = None) -> Artifacts:
    """All three seccomp outputs, or the one named `only`, with the warnings that concern
    it. The BPF program is built whenever this machine can (building it checks the shared
    plan); a JSON output for a host of the other byte order goes without that check."""
    wants_bpf = only in (None, "seccomp.bpf")
    compiled = compile_filter(policy, host) if wants_bpf or bpf_buildable(host) else None
    docker, json_warnings = _json_profile(policy, host, compiled.escalation if compiled else None)
    oci = dict(docker)
    enforcements = tuple(
        Enforcement(rule=f"syscalls.{kind}[{name}]", backend="seccomp", how=f"BPF {kind}")
        for kind, entries in (("allow", policy.syscalls.allow), ("deny", policy.syscalls.deny))
        for name in entries
    ) + tuple(
        Enforcement(rule=f"syscalls.rules[{','.join(r.syscalls)}]", backend="seccomp", how="BPF argument check")
        for r in policy.syscalls.rules
    ) + tuple(
        Enforcement(rule=f"network.allow[{s.family}{':' + s.type if s.type else ''}]", backend="seccomp",
                    how="socket() family/type check (EAFNOSUPPORT)")
        for s in policy.network.allow
    )
    files: tuple[Artifact, ...] = (
        Artifact("seccomp.json", text=json.dumps(docker, indent=2) + "\n",
                 description="Docker/podman: --security-opt seccomp=seccomp.json"),
        Artifact("seccomp-oci.json", text=json.dumps(oci, indent=2) + "\n",
                 description="OCI config.json linux.seccomp (runc, crun)"),
    )
    warnings: list[str] = []
    if wants_bpf and compiled is not None:
        files = (Artifact("seccomp.bpf", data=compiled.program, description=(
            f"{compiled.instructions} BPF instructions for {', '.join(compiled.arches)}")), *files)
        warnings += _bpf_warnings(policy, host, compiled)
    if only is not None:
        files = tuple(a for a in files if a.filename == only)
    if any(a.filename.endswith(".json") for a in files):
        warnings += json_warnings
    return Artifacts(target="seccomp", files=files, enforcements=enforcements,
                     warnings=tuple(warnings) + tuple(skipped_notes(policy)))


def _bpf_warnings(policy: m.Policy, host: HostFacts, compiled: CompiledFilter) -> list[str]:
    left_out = [a for a in policy.syscalls.arches if a not in compiled.arches]
    out = []
    if left_out:
        order = "big" if host.arch in BIG_ENDIAN else "little"
        out.append(f"the BPF program leaves out {', '.join(left_out)}: one program holds one byte order and "
                   f"a kernel on {host.arch} runs only {order}-endian tasks (the Docker/OCI JSON lists every "
                   "arch; compile with --arch for the others)")
    out += [f"{arch}: argument rules for {name} collide in the multiplexed socketcall()/ipc(); "
            "the stricter one is kept there" for arch, name in sorted(compiled.lossy)]
    return out


def _single(policy: m.Policy, host: HostFacts, filename: str, target: str) -> Artifacts:
    full = compile_seccomp(policy, host, only=filename)
    return Artifacts(target=target, files=full.files, enforcements=full.enforcements, warnings=full.warnings)


def target_bpf(policy: m.Policy, host: HostFacts) -> Artifacts:
    return _single(policy, host, "seccomp.bpf", "seccomp-bpf")


def target_docker(policy: m.Policy, host: HostFacts) -> Artifacts:
    return _single(policy, host, "seccomp.json", "seccomp-docker")


def target_oci(policy: m.Policy, host: HostFacts) -> Artifacts:
    return _single(policy, host, "seccomp-oci.json", "seccomp-oci")
