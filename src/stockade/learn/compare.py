"""Compare two policies or seccomp profiles by meaning: the compiled filters decide.

Each side is compiled to the BPF program its enforcer would load (stockade's compiler
for a policy; libseccomp the way moby and runc do it for Docker/OCI JSON), then both
programs run, through the BPF interpreter, on every syscall of every arch both cover.
Syscalls with argument conditions on either side are also run with argument values
around every constant either side compares with (each bit of a mask flipped, the
neighbours of a bound), so `socket(AF_INET6)` allowed on one side only is found even
though both sides allow `socket` for some arguments.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts
from stockade.linux.syscall_table import syscall_table
from stockade.policy import model as m
from stockade.seccomp.arches import BIG_ENDIAN
from stockade.seccomp.check import evaluate
from stockade.seccomp.samples import sample_args

MAX_SAMPLES = 256
U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Side:
    label: str
    kind: str  # policy | seccomp-json
    program: bytes  # what the enforcer loads: run through seccomp.check.evaluate
    arches: tuple[str, ...]
    consts: dict[str, set[tuple[int, int, int]]]  # syscall -> {(index, value, mask)}
    policy: m.Policy | None = None


@dataclass(frozen=True)
class Change:
    arch: str
    syscall: str
    args: str  # "" = for every argument value; else the values where it differs
    a: str
    b: str
    change: str  # added | removed | changed


@dataclass(frozen=True)
class Report:
    a: str
    b: str
    arches: tuple[str, ...]
    syscalls: tuple[Change, ...]
    capabilities: dict[str, list[str]] | None
    settings: tuple[tuple[str, str, str, bool], ...] = ()  # (key, a, b, looser)
    notes: tuple[str, ...] = field(default=())

    @property
    def looser(self) -> bool:
        caps_added = bool(self.capabilities and self.capabilities["added"])
        return (any(c.change == "added" for c in self.syscalls) or caps_added
                or any(s[3] for s in self.settings))

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "arches": list(self.arches),
            "syscalls": [vars(c) for c in self.syscalls],
            "capabilities": self.capabilities,
            "settings": [{"key": k, "a": a, "b": b, "looser": lo} for k, a, b, lo in self.settings],
            "notes": list(self.notes), "b_looser_than_a": self.looser,
        }


# ------------------------------------------------------------------ loading


def load_side(ref: str, host: HostFacts) -> Side:
    """A policy file, a preset name, or a Docker/OCI seccomp JSON (or whole config.json)."""
    data = _json_or_none(ref)
    if data is not None:
        return _json_side(ref, data, host)
    from stockade.policy.loader import load_policy
    from stockade.seccomp.arches import bpf_arches
    from stockade.seccomp.filter import compile_filter

    if not os.path.exists(ref) and "/" in ref:
        raise StockadeError(f"{ref}: no such file", exit_code=2)
    policy = load_policy(ref)
    arches = bpf_arches(policy, host)
    program = compile_filter(policy, host).program
    consts: dict[str, set[tuple[int, int, int]]] = {}
    for r in policy.syscalls.rules:
        for name in r.syscalls:
            consts.setdefault(name, set()).update((c.index, c.value, c.mask) for c in r.args)
    return Side(ref, "policy", program, arches, consts, policy)


def _json_or_none(ref: str) -> Any:
    if not os.path.isfile(ref):
        return None
    with open(ref, "rb") as fh:
        head = fh.read(1 << 20)
    if head.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(head)
    except ValueError as exc:
        raise StockadeError(f"{ref}: malformed JSON ({exc})", exit_code=2) from None


def _json_side(ref: str, data: Any, host: HostFacts) -> Side:
    from stockade.seccomp.runc_build import compile_docker_profile, profile_arches

    if isinstance(data, dict) and isinstance(data.get("linux"), dict):
        data = data["linux"].get("seccomp")
        if not data:
            raise StockadeError(f"{ref}: an OCI config without linux.seccomp (unconfined); "
                                "nothing to compare", exit_code=2)
    if not isinstance(data, dict) or "defaultAction" not in data:
        raise StockadeError(f"{ref}: unknown format: expected a stockade policy (YAML), a "
                            "Docker/OCI seccomp profile (JSON with defaultAction) or an OCI "
                            "config.json", exit_code=2)
    arches = [a for a in profile_arches(data, host.arch) if (a in BIG_ENDIAN) == (host.arch in BIG_ENDIAN)]
    if not arches:
        raise StockadeError(f"{ref}: none of its architectures can run on {host.arch}", exit_code=2)
    try:
        program = compile_docker_profile(data, native=host.arch, kernel=host.kernel,
                                         arches=arches)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise StockadeError(f"{ref}: not a valid seccomp profile ({exc})", exit_code=2) from None
    consts: dict[str, set[tuple[int, int, int]]] = {}
    for entry in data.get("syscalls") or []:
        for name in entry.get("names") or []:
            for a in entry.get("args") or []:
                if a.get("op") == "SCMP_CMP_MASKED_EQ":
                    consts.setdefault(name, set()).add((a["index"], a.get("valueTwo", 0), a["value"]))
                else:
                    consts.setdefault(name, set()).add((a["index"], a["value"], 0))
    return Side(ref, "seccomp-json", program, tuple(arches), consts)


# ------------------------------------------------------------------ comparing


def samples(consts: Iterable[tuple[int, int, int]]) -> list[tuple[int, ...]]:
    """Argument vectors that tell every condition on these constants apart."""
    return sample_args(consts, MAX_SAMPLES)


def _decide(side: Side, arch: str, nr: int, args: tuple[int, ...]) -> m.Action:
    return evaluate(side.program, arch, nr, args)


def _kind(a: m.Action, b: m.Action) -> str:
    if b.is_allow and not a.is_allow:
        return "added"
    if a.is_allow and not b.is_allow:
        return "removed"
    return "changed"


def _fmt_args(args: tuple[int, ...], consts: set[tuple[int, int, int]]) -> str:
    used = sorted({i for i, _, _ in consts})
    return ", ".join(f"arg{i}={args[i]:#x}" for i in used)


def compare(a: Side, b: Side, host: HostFacts) -> Report:
    common = tuple(x for x in a.arches if x in b.arches)
    if not common:
        raise StockadeError(
            f"nothing to compare: {a.label} covers {', '.join(a.arches)} and {b.label} covers "
            f"{', '.join(b.arches)}; their architectures do not overlap", exit_code=2)
    notes = [f"only in {s.label}: {', '.join(x for x in s.arches if x not in common)}"
             for s in (a, b) if set(s.arches) - set(common)]
    table = syscall_table()
    changes: list[Change] = []
    for arch in common:
        names = table.by_arch[arch]
        for name in sorted(names):
            nr = names[name]
            consts = a.consts.get(name, set()) | b.consts.get(name, set())
            diffs = []
            vectors = samples(consts)
            for args in vectors:
                da, db = _decide(a, arch, nr, args), _decide(b, arch, nr, args)
                if da != db:
                    diffs.append((args, da, db))
            if not diffs:
                continue
            if len(diffs) == len(vectors) and len({(x[1], x[2]) for x in diffs}) == 1:
                changes.append(Change(arch, name, "", str(diffs[0][1]), str(diffs[0][2]),
                                      _kind(diffs[0][1], diffs[0][2])))
                continue
            for args, da, db in diffs:
                changes.append(Change(arch, name, _fmt_args(args, consts), str(da), str(db),
                                      _kind(da, db)))
        beyond = table.max_number(arch) + 1  # the first number neither side can know
        ua, ub = _decide(a, arch, beyond, (0,) * 6), _decide(b, arch, beyond, (0,) * 6)
        if ua != ub:
            changes.append(Change(arch, "<unknown syscalls>", "", str(ua), str(ub), _kind(ua, ub)))
    caps = None
    settings: list[tuple[str, str, str, bool]] = []
    if a.policy is not None and b.policy is not None:
        ka, kb = a.policy.capabilities.kept, b.policy.capabilities.kept
        caps = {"added": sorted(kb - ka), "removed": sorted(ka - kb)}
        settings = _settings(a.policy, b.policy)
    else:
        notes.append("capabilities, paths and network: only compared between two policies "
                      "(a seccomp profile does not say)")
    return Report(a.label, b.label, common, tuple(changes), caps, tuple(settings), tuple(notes))


_NET = ("none", "loopback", "host")


def writable_in(policy: m.Policy, path: str) -> bool:
    """Whether `policy` already lets the workload write at `path`, whatever the spelling:
    a writable root (outside its read_only entries), a writable entry above it, a tmpfs
    mounted exactly there (`writable: [/tmp]` over `tmpfs: [/tmp]` is that same tmpfs;
    below a tmpfs a writable entry would bind the host's path instead), or a device node
    every runtime's /dev leaves writable."""
    from stockade.learn.fold import under, writable_everywhere

    fs = policy.filesystem
    if fs.root == "writable" and not any(under(path, e.path) for e in fs.read_only):
        return True
    return (any(under(path, e.path) for e in fs.writable)
            or any(path == e.path for e in fs.tmpfs) or writable_everywhere(path))


def _settings(a: m.Policy, b: m.Policy) -> list[tuple[str, str, str, bool]]:
    out: list[tuple[str, str, str, bool]] = []

    def paths(p: m.Policy, key: str) -> set[str]:
        return {e.path for e in getattr(p.filesystem, key)}

    if a.filesystem.root != b.filesystem.root:
        out.append(("filesystem.root", a.filesystem.root, b.filesystem.root,
                    b.filesystem.root == "writable"))
    for key, grant in (("writable", True), ("exec", True), ("read_only", True),
                       ("tmpfs", False), ("deny", False)):
        pa, pb = paths(a, key), paths(b, key)
        for path in sorted(pb - pa):
            looser = grant and not (key == "exec" and not pa)  # empty exec = anywhere readable
            if key == "writable":  # by effect, not by spelling
                looser = not (writable_in(a, path) or path in paths(b, "tmpfs"))
            out.append((f"filesystem.{key}", "", path, looser and key != "read_only"))
        for path in sorted(pa - pb):
            looser = key == "deny" or (key == "exec" and not pb)
            out.append((f"filesystem.{key}", path, "", looser))
    if a.network.mode != b.network.mode:
        out.append(("network.mode", a.network.mode, b.network.mode,
                    _NET.index(b.network.mode) > _NET.index(a.network.mode)))
    na = {r.family + (":" + r.type if r.type else "") for r in a.network.allow}
    nb = {r.family + (":" + r.type if r.type else "") for r in b.network.allow}
    # an empty list leaves socket() unrestricted: adding to it tightens, emptying loosens
    for s in sorted(nb - na):
        out.append(("network.allow", "", s, bool(na)))
    for s in sorted(na - nb):
        out.append(("network.allow", s, "", not nb))
    ba, bb = set(a.network.bind), set(b.network.bind)
    if ba != bb:
        out.append(("network.bind", ",".join(map(str, sorted(ba))) or "(any)",
                    ",".join(map(str, sorted(bb))) or "(any)", bool(ba) and (not bb or bool(bb - ba))))
    if a.no_new_privileges != b.no_new_privileges:
        out.append(("no_new_privileges", str(a.no_new_privileges), str(b.no_new_privileges),
                    not b.no_new_privileges))
    missing = set(a.namespaces) - set(b.namespaces)
    if missing or set(b.namespaces) - set(a.namespaces):
        out.append(("namespaces", ",".join(sorted(a.namespaces)), ",".join(sorted(b.namespaces)),
                    bool(missing)))
    return out


def render(report: Report) -> str:
    lines = [f"A: {report.a}", f"B: {report.b}", f"arches compared: {', '.join(report.arches)}", ""]
    if report.syscalls:
        rows = [("change", "arch", "syscall", "when", "A", "B")]
        rows += [(c.change, c.arch, c.syscall, c.args or "always", c.a, c.b) for c in report.syscalls]
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    else:
        lines.append("syscalls: the two filters decide every syscall the same way")
    if report.capabilities is not None:
        caps = report.capabilities
        lines.append("")
        lines.append("capabilities: " + ("same" if not caps["added"] and not caps["removed"] else
                     f"added {', '.join(caps['added']) or '-'}; removed {', '.join(caps['removed']) or '-'}"))
    if report.settings:
        lines.append("")
        for key, va, vb, looser in report.settings:
            mark = "looser" if looser else ""
            lines.append(f"{key}: {va or '-'} -> {vb or '-'} {mark}".rstrip())
    for n in report.notes:
        lines.append(f"note: {n}")
    lines.append("")
    lines.append("B allows something A does not" if report.looser else "B is no looser than A")
    return "\n".join(lines) + "\n"
