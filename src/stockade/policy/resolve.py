"""Resolve a policy: follow `extends`, merge the layers, check every name, freeze.

Merge rules (POLICY.md): lists are unioned, scalars are overridden by the later file; a
later file's allow of a syscall removes it from earlier deny (and the reverse). stockade
also lets a later allow/deny supersede earlier files' `rules` for that syscall, otherwise a
preset's argument rule (e.g. Docker's `personality`) could never be denied by a user.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

from stockade.errors import Location, PolicyError
from stockade.policy import model as m
from stockade.policy.egress import check_private_keys, egress_rule, publish_rule, rate_bps
from stockade.policy.schema import (
    ConditionSpec,
    PolicySpec,
    RuleSpec,
    validate_document,
)
from stockade.policy.source import KeyPath, SourceDocument, parse_text, read_file
from stockade.policy.vocab.capabilities import CAP_NUMBER, DOCKER_DEFAULT_CAPS, canonical_cap
from stockade.policy.vocab.constants import CONSTANTS
from stockade.policy.vocab.errnos import ERRNO_BY_NAME, errno_number
from stockade.policy.vocab.groups import all_groups, expand_group
from stockade.policy.vocab.syscalls import ARCH_TOKENS, canonical_arch, native_arch, syscall_table

PRESETS = ("default", "strict", "unconfined")


@dataclass(frozen=True)
class Layer:
    doc: SourceDocument
    spec: PolicySpec

    def loc(self, *path: str | int) -> Location:
        return self.doc.location(tuple(path))


# ---------------------------------------------------------------- loading the chain


def preset_text(name: str) -> str:
    return resources.files("stockade.policy.presets").joinpath(f"{name}.yaml").read_text()


def _is_path(ref: str) -> bool:
    return "/" in ref or ref.endswith((".yaml", ".yml")) or os.path.exists(ref)


def _read(ref: str, base_dir: str | None) -> SourceDocument:
    if _is_path(ref):
        path = ref if base_dir is None or os.path.isabs(ref) else os.path.join(base_dir, ref)
        return read_file(os.path.normpath(path))
    if ref in PRESETS:
        return parse_text(preset_text(ref), f"<preset:{ref}>")
    close = difflib.get_close_matches(ref, PRESETS, n=1)
    raise PolicyError(Location(ref), "unknown preset or missing file", found=repr(ref),
                      expected="a preset (" + ", ".join(PRESETS) + ") or a path to a .yaml file",
                      suggestion=f"did you mean '{close[0]}'?" if close else None)


# A real chain is 1-3 files deep; each file is read with the loader's size and node limits,
# and this bounds how many such files one policy can pull in through a chain.
MAX_EXTENDS_DEPTH = 16


def _layers(ref: str, base_dir: str | None, stack: tuple[str, ...], seen: set[str],
            via: Location | None) -> list[Layer]:
    if len(stack) >= MAX_EXTENDS_DEPTH:
        raise PolicyError(via or Location(ref), "extends chain too deep",
                          found=f"more than {MAX_EXTENDS_DEPTH} files",
                          expected=f"at most {MAX_EXTENDS_DEPTH} (the limit for a policy)")
    try:
        doc = _read(ref, base_dir)
    except PolicyError as exc:
        if via is None:
            raise
        raise PolicyError(via, f"extends: cannot load {ref!r}: {exc.problem}", found=exc.found,
                          expected=exc.expected, suggestion=exc.suggestion) from None
    key = doc.file if doc.file.startswith("<") else os.path.realpath(doc.file)
    if key in stack:
        chain = " -> ".join([*stack, key])
        raise PolicyError(via or Location(doc.file), "cycle in extends", found=chain,
                          expected="a chain without loops")
    if key in seen:  # a diamond: the shared base is applied once, at its first place
        return []
    seen.add(key)
    spec = validate_document(doc)
    here = None if doc.file.startswith("<") else os.path.dirname(doc.file)
    out: list[Layer] = []
    for i, parent in enumerate(spec.extends):
        out += _layers(parent, here, (*stack, key), seen, doc.location(("extends", i)))
    out.append(Layer(doc, spec))
    return out


def load_layers(ref: str) -> list[Layer]:
    return _layers(ref, None, (), set(), None)


def load_policy(ref: str | os.PathLike[str]) -> m.Policy:
    """Load a policy file or preset name, follow `extends`, and return the frozen Policy."""
    return resolve(load_layers(os.fspath(ref)))


# ---------------------------------------------------------------- name checks


def _suggest(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


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
                              suggestion=_suggest(arg.upper(), ERRNO_BY_NAME))
        return m.Action(m.ActionKind.ERRNO, n_opt)
    raise PolicyError(loc, "unknown action", found=repr(text), expected=", ".join(ACTION_FORMS),
                      suggestion=_suggest(t, [*ACTIONS, "errno:EPERM"]))


def _syscall_names(entry: str, loc: Location) -> tuple[frozenset[str], str]:
    """Expand one allow/deny entry: a group or a syscall. Returns (names, group)."""
    table = syscall_table()
    if entry.startswith("@"):
        groups = all_groups()
        if entry not in groups:
            raise PolicyError(loc, "unknown syscall group", found=repr(entry),
                              expected="a systemd group (see `stockade groups`)",
                              suggestion=_suggest(entry, groups))
        # systemd lists a few names newer than this libseccomp; they fall to `unknown`.
        return expand_group(entry) & table.all_names, entry
    if entry not in table.all_names:
        raise PolicyError(loc, "unknown syscall", found=repr(entry),
                          expected="a syscall name libseccomp knows, or an @group",
                          suggestion=_suggest(entry, table.all_names))
    return frozenset({entry}), ""


def _cap(name: str, loc: Location) -> str:
    cap = canonical_cap(name)
    if cap is None:
        raise PolicyError(loc, "unknown capability", found=repr(name), expected="a name like NET_ADMIN or CAP_NET_ADMIN",
                          suggestion=_suggest("CAP_" + name.upper().removeprefix("CAP_"), CAP_NUMBER))
    return cap


def _arch(name: str, loc: Location) -> str:
    arch = canonical_arch(name)
    if arch is None:
        raise PolicyError(loc, "unknown architecture", found=repr(name),
                          expected="one of " + ", ".join(ARCH_TOKENS) + ", native, all",
                          suggestion=_suggest(name, ARCH_TOKENS))
    return arch


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
                              suggestion=_suggest(part, CONSTANTS)) from None
    return total


def parse_kernel(value: str | float, loc: Location) -> tuple[int, int]:
    text = str(value)
    try:
        major, minor = (text.split(".") + ["0"])[:2]
        return int(major), int(minor)
    except ValueError:
        raise PolicyError(loc, "invalid kernel version", found=repr(text), expected='"MAJOR.MINOR", e.g. "5.8"') from None


def _condition(spec: ConditionSpec | None, layer: Layer, path: KeyPath) -> m.Condition | None:
    if spec is None:
        return None
    arches = caps = None
    if spec.arch is not None:
        arches = frozenset(_arch(a, layer.loc(*path, "arch", i)) for i, a in enumerate(spec.arch))
    if spec.caps is not None:
        caps = frozenset(_cap(c, layer.loc(*path, "caps", i)) for i, c in enumerate(spec.caps))
    kernel = parse_kernel(spec.min_kernel, layer.loc(*path, "min_kernel")) if spec.min_kernel is not None else None
    return m.Condition(arches=arches, caps=caps, min_kernel=kernel)


def _rule(spec: RuleSpec, layer: Layer, index: int) -> m.SyscallRule:
    base: KeyPath = ("syscalls", "rules", index)
    names: list[str] = []
    for i, entry in enumerate(spec.syscalls):
        expanded, _ = _syscall_names(entry, layer.loc(*base, "syscalls", i))
        names += sorted(expanded - set(names))
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
    return m.SyscallRule(
        syscalls=tuple(names),
        action=parse_action(spec.action, layer.loc(*base, "action")),
        args=tuple(args),
        when=_condition(spec.when, layer, (*base, "when")),
        unless=_condition(spec.unless, layer, (*base, "unless")),
        origin=layer.loc(*base),
        comment=spec.comment or "",
    )


_SIZE_UNITS = {"": 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2, "g": 1000**3, "gi": 1024**3,
               "t": 1000**4, "ti": 1024**4, "b": 1}


SIZE_MAX = 2**63 - 1  # the kernel's page counters and every runtime's limits are int64


def parse_size(value: int | str, loc: Location, *, minimum: int = 0) -> int:
    """Bytes; `minimum` 1 where 0 means nothing usable (a memory limit of 0 bytes)."""
    if isinstance(value, int):
        size = value
    else:
        text = value.strip()
        num = text.rstrip("KMGTkmgtiIbB")
        unit = text[len(num):].lower()
        if unit.endswith("b") and unit != "b":
            unit = unit[:-1]
        try:
            size = int(float(num) * _SIZE_UNITS[unit])
        except (ValueError, KeyError, OverflowError):
            raise PolicyError(loc, "invalid size", found=repr(text),
                              expected="a number with Ki/Mi/Gi/Ti, e.g. 256Mi") from None
    if not minimum <= size <= SIZE_MAX:
        lowest = "more than 0 bytes" if minimum else "0 bytes or more"
        raise PolicyError(loc, "size out of range", found=repr(value),
                          expected=f"{lowest}, at most 8Ei, e.g. 256Mi",
                          suggestion="leave the key out for no limit" if minimum else None)
    return size


def _abs_path(p: str, loc: Location) -> str:
    if not p.startswith("/"):
        raise PolicyError(loc, "path must be absolute", found=repr(p), expected="a path starting with /",
                          suggestion=f"did you mean '/{p}'?")
    if "\0" in p or "\n" in p:
        raise PolicyError(loc, "path contains a control character", found=repr(p))
    parts = p.split("/")
    if ".." in parts or "." in parts[1:]:
        raise PolicyError(loc, "path must be normalised", found=repr(p), expected="no '.' or '..' components")
    return p.rstrip("/") or "/"


_FAMILIES = {"unix", "inet", "inet6", "netlink", "packet", "vsock", "can", "bluetooth", "alg", "xdp", "key",
             "tipc", "rds", "llc", "ax25", "x25", "appletalk", "ipx", "smc", "qipcrtr", "mctp", "kcm"}
_SOCK_TYPES = {"tcp", "udp", "raw", "stream", "dgram", "seqpacket"}


def _socket_rule(text: str, loc: Location) -> m.SocketRule:
    family, _, stype = text.partition(":")
    family = family.strip().lower()
    if family not in _FAMILIES:
        raise PolicyError(loc, "unknown socket family", found=repr(family),
                          expected="one of " + ", ".join(sorted(_FAMILIES)), suggestion=_suggest(family, _FAMILIES))
    if stype and stype not in _SOCK_TYPES:
        raise PolicyError(loc, "unknown socket type", found=repr(stype),
                          expected="one of " + ", ".join(sorted(_SOCK_TYPES)), suggestion=_suggest(stype, _SOCK_TYPES))
    return m.SocketRule(family, stype or None)


# ---------------------------------------------------------------- merging


def resolve(layers: list[Layer]) -> m.Policy:
    assert layers, "at least the policy itself"
    top = layers[-1]

    default_action = m.DENY_EPERM
    unknown_action = m.DENY_ENOSYS
    arches_spec: Any = "native"
    arches_layer = top
    allow: dict[str, m.NamedEntry] = {}
    deny: dict[str, m.NamedEntry] = {}
    rules: list[tuple[int, m.SyscallRule]] = []

    kept: set[str] | None = None
    drop_named: list[str] = []
    add_named: list[str] = []
    ambient: list[str] = []
    nnp = True
    fs_root = "read-only"
    fs_lists: dict[str, list[m.PathEntry]] = {k: [] for k in ("read_only", "writable", "exec", "deny", "tmpfs",
                                                               "expose")}
    net_mode = "none"
    net_allow: list[m.SocketRule] = []
    net_allow_origin: Location | None = None
    net_bind: list[int] = []
    net_host_abstract: tuple[bool, Location] | None = None
    net_egress: list[m.EgressRule] = []
    net_publish: list[m.Publish] = []
    net_rates: dict[str, int] = {}
    net_private_origin = top.loc()
    namespaces: list[str] | None = None
    user: dict[str, Any] = {}
    res: dict[str, Any] = {}
    res_origins: dict[str, str] = {}
    rlimits: dict[str, int] = {}
    aa: m.AppArmor | None = None
    se_type: str | None = None
    se_base = "container"
    se_set = False
    landlock = m.Landlock("best-effort")
    lsm_required = False
    hostname: str | None = None
    description = top.spec.description

    for li, layer in enumerate(layers):
        s = layer.spec
        if s.syscalls is not None:
            sc = s.syscalls
            if sc.default is not None:
                default_action = parse_action(sc.default, layer.loc("syscalls", "default"))
            if sc.unknown is not None:
                unknown_action = parse_action(sc.unknown, layer.loc("syscalls", "unknown"))
            if sc.arches is not None:
                arches_spec, arches_layer = sc.arches, layer
            layer_allow: dict[str, m.NamedEntry] = {}
            layer_deny: dict[str, m.NamedEntry] = {}
            for key, target in (("allow", layer_allow), ("deny", layer_deny)):
                for i, entry in enumerate(getattr(sc, key)):
                    loc = layer.loc("syscalls", key, i)
                    names, group = _syscall_names(entry, loc)
                    for name in sorted(names):
                        target.setdefault(name, m.NamedEntry(name, loc, group))
            touched = set(layer_allow) | set(layer_deny)
            # a later layer's word on a syscall replaces what earlier layers said about it
            for name in touched:
                allow.pop(name, None)
                deny.pop(name, None)
            # ... and naming it explicitly (not through a @group) also replaces earlier
            # layers' argument rules for it, so a preset's rule can be overridden.
            explicit = {n for n, e in (*layer_allow.items(), *layer_deny.items()) if not e.via_group}
            rules = [(lj, _without(r, explicit)) for lj, r in rules]
            rules = [(lj, r) for lj, r in rules if r.syscalls]
            for name, entry in layer_allow.items():
                if name not in layer_deny:  # within one file, deny beats allow
                    allow[name] = entry
            deny.update(layer_deny)
            rules += [(li, _rule(r, layer, i)) for i, r in enumerate(sc.rules)]
        if s.capabilities is not None:
            cs = s.capabilities
            upper_drop = [d.strip().upper() for d in cs.drop]
            drops_all = "ALL" in upper_drop
            if kept is None:
                kept = set() if drops_all else set(DOCKER_DEFAULT_CAPS)
            elif drops_all:
                kept = set()
            layer_add = [_cap(c, layer.loc("capabilities", "add", i)) for i, c in enumerate(cs.add)
                         if c.strip().upper() != "ALL"]
            if any(c.strip().upper() == "ALL" for c in cs.add):
                layer_add = list(CAP_NUMBER)
            layer_drop = [_cap(c, layer.loc("capabilities", "drop", i)) for i, c in enumerate(cs.drop)
                          if c.strip().upper() != "ALL"]
            kept |= set(layer_add)
            kept -= set(layer_drop)  # a named drop beats an add in the same file
            drop_named = [d for d in drop_named if d not in layer_add] + layer_drop
            add_named = [a for a in add_named if a not in layer_drop] + layer_add
            for i, c in enumerate(cs.ambient):
                ambient.append(_cap(c, layer.loc("capabilities", "ambient", i)))
        if s.no_new_privileges is not None:
            nnp = s.no_new_privileges
        if s.filesystem is not None:
            fs = s.filesystem
            if fs.root is not None:
                fs_root = fs.root
            for key, target_list in fs_lists.items():
                for i, p in enumerate(getattr(fs, key)):
                    loc = layer.loc("filesystem", key, i)
                    path = _abs_path(p, loc)
                    if all(e.path != path for e in target_list):
                        target_list.append(m.PathEntry(path, loc))
        if s.network is not None:
            n = s.network
            if n.mode is not None:
                net_mode = n.mode
            for i, a in enumerate(n.allow):
                rule = _socket_rule(a, layer.loc("network", "allow", i))
                if rule not in net_allow:
                    net_allow.append(rule)
                net_allow_origin = layer.loc("network", "allow")
            net_bind += [p for p in n.bind if p not in net_bind]
            if n.host_abstract_sockets is not None:
                net_host_abstract = (n.host_abstract_sockets,
                                     layer.loc("network", "host_abstract_sockets"))
            for i, e in enumerate(n.egress):
                out = egress_rule(e.to, e.ports, e.proto, layer.loc("network", "egress", i, "to"))
                if out not in net_egress:
                    net_egress.append(out)
            for i, text in enumerate(n.publish):
                pub = publish_rule(text, layer.loc("network", "publish", i))
                clash = [p for p in net_publish if (p.host_addr, p.host_port, p.proto)
                         == (pub.host_addr, pub.host_port, pub.proto) and p != pub]
                if clash:
                    raise PolicyError(layer.loc("network", "publish", i),
                                      "host port published twice", found=text,
                                      expected="one sandbox port per host address and port")
                if pub not in net_publish:
                    net_publish.append(pub)
            if n.bandwidth is not None:
                for key in ("egress", "ingress"):
                    value = getattr(n.bandwidth, key)
                    if value is not None:
                        net_rates[key] = rate_bps(value, layer.loc("network", "bandwidth", key))
            if n.egress or n.publish or n.bandwidth is not None:
                net_private_origin = layer.loc("network")
        if s.namespaces is not None:
            namespaces = (namespaces or []) + [x for x in s.namespaces if x not in (namespaces or [])]
        if s.user is not None:
            for key in ("uid", "gid", "map", "uid_map", "gid_map"):
                value = getattr(s.user, key)
                if value is not None:
                    user[key] = value
        if s.resources is not None:
            r = s.resources
            for key in ("memory", "swap"):
                value = getattr(r, key)
                if value is not None:
                    res[key] = parse_size(value, layer.loc("resources", key),
                                          minimum=1 if key == "memory" else 0)
                    res_origins[key] = layer.doc.file
            for key in ("pids", "cpu", "cpu_weight", "io_weight"):
                value = getattr(r, key)
                if value is not None:
                    res[key] = value
                    res_origins[key] = layer.doc.file
        if s.rlimits is not None:
            for key, value in s.rlimits.items():
                rlimits[key] = -1 if value == "unlimited" else int(value)
        if s.lsm is not None:
            lsm = s.lsm
            if lsm.apparmor is not None:
                aa = m.AppArmor(lsm.apparmor.mode)
            if lsm.selinux is not None:
                se_set = True
                if lsm.selinux.type is not None:
                    se_type = _selinux_type(lsm.selinux.type, layer.loc("lsm", "selinux", "type"))
                se_base = lsm.selinux.base
            if lsm.landlock is not None:
                landlock = m.Landlock(lsm.landlock.mode)
            if lsm.required is not None:
                lsm_required = lsm.required
        if s.hostname is not None:
            hostname = s.hostname

    arches = _resolve_arches(arches_spec, arches_layer)
    rules = _dedupe_rules(rules)
    final_kept = frozenset(kept or set())
    for i, cap in enumerate(ambient):
        if cap not in final_kept:
            raise PolicyError(top.loc("capabilities", "ambient", i) if top.spec.capabilities else top.loc(),
                              "ambient capability is not kept", found=cap,
                              expected="a capability also in `add`", suggestion=f"add {cap} to capabilities.add")
    uid_map = tuple(m.IdMapping(e.inside, e.outside, e.count) for e in user.get("uid_map") or ())
    gid_map = tuple(m.IdMapping(e.inside, e.outside, e.count) for e in user.get("gid_map") or ())
    user_map = user.get("map", "explicit" if uid_map else "auto")
    ns = frozenset(namespaces if namespaces is not None else m.ALL_NAMESPACES)
    if net_mode == "host":
        ns -= {"net"}
    if net_host_abstract is not None and net_host_abstract[0] and net_mode != "host":
        raise PolicyError(net_host_abstract[1], "host abstract sockets are only reachable "
                          "with the host's network", found=f"network.mode {net_mode}",
                          expected="network.mode host",
                          suggestion="drop network.host_abstract_sockets or use mode host")
    if user_map == "host":
        ns -= {"user"}
    policy = m.Policy(
        name=top.spec.name,
        description=description,
        syscalls=m.SyscallPolicy(
            default=default_action,
            unknown=unknown_action,
            arches=arches,
            allow=MappingProxyType(dict(sorted(allow.items()))),
            deny=MappingProxyType(dict(sorted(deny.items()))),
            rules=tuple(r for _, r in rules),
        ),
        capabilities=m.Capabilities(
            drop=tuple(["ALL"] if kept is not None else []) + tuple(sorted(set(drop_named))),
            add=tuple(sorted(final_kept, key=CAP_NUMBER.__getitem__)),
            ambient=tuple(dict.fromkeys(ambient)),
            kept=final_kept,
        ),
        no_new_privileges=nnp,
        filesystem=m.Filesystem(root=fs_root, **{k: tuple(v) for k, v in fs_lists.items()}),
        network=m.Network(mode=net_mode, allow=tuple(net_allow), bind=tuple(net_bind),
                          host_abstract_sockets=bool(net_host_abstract and net_host_abstract[0]),
                          allow_origin=net_allow_origin, egress=tuple(net_egress),
                          publish=tuple(net_publish),
                          bandwidth=m.Bandwidth(net_rates.get("egress"),
                                                net_rates.get("ingress"))),
        namespaces=ns,
        user=m.User(uid=user.get("uid", 0), gid=user.get("gid", 0), map=user_map, uid_map=uid_map, gid_map=gid_map),
        resources=m.Resources(**res, origins=MappingProxyType(res_origins)),
        rlimits=MappingProxyType(dict(sorted(rlimits.items()))),
        lsm=m.Lsm(
            apparmor=aa,
            selinux=m.SELinux(se_type or top.spec.name.replace("-", "_") + "_t", se_base) if se_set else None,
            landlock=landlock,
            required=lsm_required,
        ),
        hostname=hostname,
        sources=tuple(layer.doc.file for layer in layers),
    )
    check_private_keys(policy.network, net_private_origin)
    # Checks that need the whole merged policy (globs the path backends must express).
    from stockade.profiles.paths import validate_filesystem

    validate_filesystem(policy)
    if policy.lsm.selinux is not None:
        from stockade.profiles.selinux.module import validate_selinux

        validate_selinux(policy)
    from stockade.policy.render import policy_digest

    return _with_digest(policy, policy_digest(policy))


def _with_digest(policy: m.Policy, digest: str) -> m.Policy:
    from dataclasses import replace

    return replace(policy, digest=digest)


def _dedupe_rules(rules: list[tuple[int, m.SyscallRule]]) -> list[tuple[int, m.SyscallRule]]:
    seen: set[tuple[object, ...]] = set()
    out = []
    for li, r in rules:
        key = (r.syscalls, r.action, r.args, r.when, r.unless)
        if key not in seen:
            seen.add(key)
            out.append((li, r))
    return out


def _without(rule: m.SyscallRule, names: set[str]) -> m.SyscallRule:
    if not names & set(rule.syscalls):
        return rule
    from dataclasses import replace

    return replace(rule, syscalls=tuple(n for n in rule.syscalls if n not in names))


def _selinux_type(name: str, loc: Location) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,126}", name):
        raise PolicyError(loc, "invalid SELinux type name", found=repr(name),
                          expected="an identifier: letters, digits, underscores, starting with a letter",
                          suggestion=f"did you mean '{re.sub(r'[^A-Za-z0-9_]', '_', name)}'?")
    return name


def _resolve_arches(spec: Any, layer: Layer) -> tuple[str, ...]:
    if spec == "native":
        return (native_arch(),)
    if spec == "all":
        return tuple(ARCH_TOKENS)
    out: list[str] = []
    for i, name in enumerate(spec):
        arch = native_arch() if name == "native" else _arch(name, layer.loc("syscalls", "arches", i))
        if arch not in out:
            out.append(arch)
    if not out:
        raise PolicyError(layer.loc("syscalls", "arches"), "no architectures", found="[]",
                          expected="native, all, or a list of arch names")
    return tuple(out)


__all__ = ["load_policy", "load_layers", "resolve", "parse_action", "ACTIONS", "ACTION_FORMS", "PRESETS"]
