"""`syscalls`: default/unknown actions, arches, allow/deny by name or @group, argument rules.

A later layer's allow of a syscall removes it from earlier deny (and the reverse); naming a
syscall explicitly (not through a @group) also drops earlier layers' argument rules for it,
otherwise a preset's argument rule (e.g. Docker's `personality`) could never be denied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from stockade.errors import Location, PolicyError
from stockade.linux.syscall_table import ARCH_TOKENS, native_arch, syscall_table
from stockade.policy import model as m
from stockade.policy.layers import Layer
from stockade.policy.names import architecture, capability, suggest
from stockade.policy.schema import ConditionSpec, RuleSpec, SyscallsSpec
from stockade.policy.source import KeyPath
from stockade.policy.vocab.constants import CONSTANTS
from stockade.policy.vocab.errnos import ERRNO_BY_NAME, errno_number
from stockade.policy.vocab.groups import all_groups, expand_group

# Every action word a policy may write; with errno:NAME and errno:N these are all the
# forms parse_action accepts (docs/POLICY.md documents each, tests/unit/test_docs.py checks).
ACTIONS: Mapping[str, m.Action] = MappingProxyType({
    "allow": m.ALLOW, "errno": m.DENY_EPERM, "enosys": m.DENY_ENOSYS,
    "kill": m.Action(m.ActionKind.KILL_PROCESS), "kill-process": m.Action(m.ActionKind.KILL_PROCESS),
    "kill-thread": m.Action(m.ActionKind.KILL_THREAD), "trap": m.Action(m.ActionKind.TRAP),
    "log": m.Action(m.ActionKind.LOG), "notify": m.Action(m.ActionKind.NOTIFY),
})
ACTION_FORMS: tuple[str, ...] = (*ACTIONS, "errno:NAME", "errno:N")


def parse_action(text: str, loc: Location) -> m.Action:
    t = text.strip().lower()
    if t in ACTIONS:
        return ACTIONS[t]
    if t.startswith("errno:"):
        arg = text.split(":", 1)[1].strip()
        if arg.isdigit():
            n = int(arg)
            if not 0 < n < 4096:
                raise PolicyError(loc, "errno number out of range", found=arg, expected="1..4095")
            return m.Action(m.ActionKind.ERRNO, n)
        n_opt = errno_number(arg)
        if n_opt is None:
            raise PolicyError(loc, "unknown errno name", found=repr(arg), expected="a name like EPERM",
                              suggestion=suggest(arg.upper(), ERRNO_BY_NAME))
        return m.Action(m.ActionKind.ERRNO, n_opt)
    raise PolicyError(loc, "unknown action", found=repr(text), expected=", ".join(ACTION_FORMS),
                      suggestion=suggest(t, [*ACTIONS, "errno:EPERM"]))


def parse_kernel(value: str | float, loc: Location) -> tuple[int, int]:
    text = str(value)
    try:
        return m.kernel_version(text)
    except ValueError:
        raise PolicyError(loc, "invalid kernel version", found=repr(text), expected='"MAJOR.MINOR", e.g. "5.8"') from None


def _syscall_names(entry: str, loc: Location) -> tuple[frozenset[str], str]:
    """Expand one allow/deny entry: a group or a syscall. Returns (names, group)."""
    table = syscall_table()
    if entry.startswith("@"):
        groups = all_groups()
        if entry not in groups:
            raise PolicyError(loc, "unknown syscall group", found=repr(entry),
                              expected="a systemd group (see `stockade groups`)",
                              suggestion=suggest(entry, groups))
        # systemd lists a few names newer than this libseccomp; they fall to `unknown`.
        return expand_group(entry) & table.all_names, entry
    if entry not in table.all_names:
        raise PolicyError(loc, "unknown syscall", found=repr(entry),
                          expected="a syscall name libseccomp knows, or an @group",
                          suggestion=suggest(entry, table.all_names))
    return frozenset({entry}), ""


def _int_or_const(value: int | str, loc: Location) -> int:
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
            if -0x8000000000000000 <= value < 0:  # a negative C int, as the kernel sees it
                return value & 0xFFFFFFFFFFFFFFFF
            raise PolicyError(loc, "argument value out of range", found=str(value),
                              expected="a 64-bit value")
        return value
    text = value.strip()
    total = 0
    for part in text.split("|"):
        part = part.strip()
        if part in CONSTANTS:
            total |= CONSTANTS[part]
            continue
        try:
            total |= int(part, 0)
        except ValueError:
            raise PolicyError(loc, "unknown constant", found=repr(part),
                              expected="an integer or a known name such as CLONE_NEWUSER, AF_INET",
                              suggestion=suggest(part, CONSTANTS)) from None
    return total


def _condition(spec: ConditionSpec | None, layer: Layer, path: KeyPath) -> m.Condition | None:
    if spec is None:
        return None
    arches = caps = None
    if spec.arch is not None:
        arches = frozenset(architecture(a, layer.loc(*path, "arch", i)) for i, a in enumerate(spec.arch))
    if spec.caps is not None:
        caps = frozenset(capability(c, layer.loc(*path, "caps", i)) for i, c in enumerate(spec.caps))
    kernel = parse_kernel(spec.min_kernel, layer.loc(*path, "min_kernel")) if spec.min_kernel is not None else None
    return m.Condition(arches=arches, caps=caps, min_kernel=kernel)


def _arg_conditions(spec: RuleSpec, layer: Layer, base: KeyPath) -> tuple[m.ArgCondition, ...]:
    args = []
    seen_index: set[int] = set()
    for i, a in enumerate(spec.args):
        loc = layer.loc(*base, "args", i)
        value = _int_or_const(a.value, layer.loc(*base, "args", i, "value"))
        mask = 0
        if a.op == "masked_eq":
            if a.mask is None:
                raise PolicyError(loc, "masked_eq needs a mask", found="no `mask`",
                                  expected="`mask: 0x...` or a named constant")
            mask = _int_or_const(a.mask, layer.loc(*base, "args", i, "mask"))
            if value & ~mask:  # (x & mask) == value can never hold: the rule would be dead
                raise PolicyError(layer.loc(*base, "args", i, "value"), "masked_eq can never match",
                                  found=f"value {value:#x} with bits outside mask {mask:#x}",
                                  expected="a value whose set bits are all in the mask",
                                  suggestion=f"mask: {mask | value:#x}, or value: {value & mask:#x}")
        elif a.mask is not None:
            raise PolicyError(layer.loc(*base, "args", i, "mask"), "`mask` only goes with op masked_eq",
                              found=f"op {a.op}", expected="op: masked_eq")
        if a.index in seen_index:
            # libseccomp (and the kernel's argument layout) allow one comparison per argument
            raise PolicyError(loc, "two conditions on the same argument in one rule",
                              found=f"index {a.index} twice", expected="one condition per index",
                              suggestion="split into two rules (rules for one syscall are ORed)")
        seen_index.add(a.index)
        args.append(m.ArgCondition(a.index, m.ArgOp(a.op), value, mask))
    return tuple(args)


def _rule(spec: RuleSpec, layer: Layer, index: int) -> m.SyscallRule:
    base: KeyPath = ("syscalls", "rules", index)
    names: list[str] = []
    for i, entry in enumerate(spec.syscalls):
        expanded, _ = _syscall_names(entry, layer.loc(*base, "syscalls", i))
        names += sorted(expanded - set(names))
    args = _arg_conditions(spec, layer, base)
    return m.SyscallRule(
        syscalls=tuple(names),
        action=parse_action(spec.action, layer.loc(*base, "action")),
        args=args,
        when=_condition(spec.when, layer, (*base, "when")),
        unless=_condition(spec.unless, layer, (*base, "unless")),
        origin=layer.loc(*base),
        comment=spec.comment or "",
    )


def _named(sc: SyscallsSpec, key: str, layer: Layer) -> dict[str, m.NamedEntry]:
    """One layer's allow or deny list, groups expanded; the first mention of a name wins."""
    out: dict[str, m.NamedEntry] = {}
    for i, entry in enumerate(getattr(sc, key)):
        loc = layer.loc("syscalls", key, i)
        names, group = _syscall_names(entry, loc)
        for name in sorted(names):
            out.setdefault(name, m.NamedEntry(name, loc, group))
    return out


def _without(rule: m.SyscallRule, names: set[str]) -> m.SyscallRule:
    if not names & set(rule.syscalls):
        return rule
    return dataclasses.replace(rule, syscalls=tuple(n for n in rule.syscalls if n not in names))


def _dedupe_rules(rules: list[m.SyscallRule]) -> tuple[m.SyscallRule, ...]:
    seen: set[tuple[object, ...]] = set()
    out = []
    for r in rules:
        key = (r.syscalls, r.action, r.args, r.when, r.unless)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return tuple(out)


class SyscallsMerger:
    def __init__(self, top: Layer) -> None:
        self._default = m.DENY_EPERM
        self._unknown = m.DENY_ENOSYS
        self._arches: str | list[str] = "native"
        self._arches_layer = top  # the last layer that named arches (for locations)
        self._allow: dict[str, m.NamedEntry] = {}
        self._deny: dict[str, m.NamedEntry] = {}
        self._rules: list[m.SyscallRule] = []

    def add(self, layer: Layer) -> None:
        sc = layer.spec.syscalls
        if sc is None:
            return
        if sc.default is not None:
            self._default = parse_action(sc.default, layer.loc("syscalls", "default"))
        if sc.unknown is not None:
            self._unknown = parse_action(sc.unknown, layer.loc("syscalls", "unknown"))
        if sc.arches is not None:
            self._arches, self._arches_layer = sc.arches, layer
        layer_allow = _named(sc, "allow", layer)
        layer_deny = _named(sc, "deny", layer)
        # a later layer's word on a syscall replaces what earlier layers said about it
        for name in set(layer_allow) | set(layer_deny):
            self._allow.pop(name, None)
            self._deny.pop(name, None)
        # ... and naming it explicitly (not through a @group) also replaces earlier
        # layers' argument rules for it, so a preset's rule can be overridden.
        explicit = {n for n, e in (*layer_allow.items(), *layer_deny.items()) if not e.via_group}
        self._rules = [r for r in (_without(r, explicit) for r in self._rules) if r.syscalls]
        for name, entry in layer_allow.items():
            if name not in layer_deny:  # within one file, deny beats allow
                self._allow[name] = entry
        self._deny.update(layer_deny)
        self._rules += [_rule(r, layer, i) for i, r in enumerate(sc.rules)]

    def result(self) -> m.SyscallPolicy:
        return m.SyscallPolicy(
            default=self._default,
            unknown=self._unknown,
            arches=self._resolved_arches(),
            allow=MappingProxyType(dict(sorted(self._allow.items()))),
            deny=MappingProxyType(dict(sorted(self._deny.items()))),
            rules=_dedupe_rules(self._rules),
        )

    def _resolved_arches(self) -> tuple[str, ...]:
        spec = self._arches
        if spec == "native":
            return (native_arch(),)
        if spec == "all":
            return tuple(ARCH_TOKENS)
        layer = self._arches_layer
        out: list[str] = []
        for i, name in enumerate(spec):
            arch = native_arch() if name == "native" else architecture(name, layer.loc("syscalls", "arches", i))
            if arch not in out:
                out.append(arch)
        if not out:
            raise PolicyError(layer.loc("syscalls", "arches"), "no architectures", found="[]",
                              expected="native, all, or a list of arch names")
        return tuple(out)
