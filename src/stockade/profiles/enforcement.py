"""Per policy rule: which backends of the chosen targets enforce it, and how.

Used by `stockade explain` (the table) and `stockade compile --strict` (fail when a
restricting rule is enforced by none of the chosen targets).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.profiles.base import Artifacts, Enforcement
from stockade.profiles.capabilities import ordered
from stockade.profiles.registry import TARGETS, backend_enforcements


@dataclass(frozen=True)
class RuleEnforcement:
    rule: str
    required: bool  # a restriction (True) or a grant that needs no enforcer (False)
    by: tuple[Enforcement, ...]

    @property
    def enforced(self) -> bool:
        return bool(self.by)


def policy_rules(policy: Policy) -> list[tuple[str, bool]]:
    """The rules of a policy that some backend must carry, with `required`."""
    fs = policy.filesystem
    rules: list[tuple[str, bool]] = [(f"filesystem.root[{fs.root}]", fs.root != "writable")]
    for section, required in (("read_only", True), ("exec", True), ("deny", True),
                              ("writable", False), ("tmpfs", False)):
        for e in getattr(fs, section):
            rules.append((f"filesystem.{section}[{e.path}]", required))
    for s in policy.network.allow:
        rules.append((f"network.allow[{s.family}{':' + s.type if s.type else ''}]", True))
    for port in policy.network.bind:
        rules.append((f"network.bind[{port}]", True))
    kept = ",".join(c.removeprefix("CAP_") for c in ordered(policy.capabilities.kept))
    rules.append((f"capabilities.kept[{kept}]", True))
    if policy.no_new_privileges:
        rules.append(("no_new_privileges", True))
    return list(dict.fromkeys(rules))


def backends_for(targets: Iterable[str], policy: Policy) -> list[str]:
    """The backends the chosen targets' deployments enforce with, each once."""
    return list(dict.fromkeys(b for t in targets for b in TARGETS[t].backends(policy)))


def _table(policy: Policy, records: Iterable[Enforcement]) -> list[RuleEnforcement]:
    by_rule: dict[str, list[Enforcement]] = {}
    for e in records:
        if e not in by_rule.setdefault(e.rule, []):
            by_rule[e.rule].append(e)
    rows = [RuleEnforcement(rule, required, tuple(by_rule.pop(rule, ())))
            for rule, required in policy_rules(policy)]
    rows += [RuleEnforcement(rule, True, tuple(es)) for rule, es in sorted(by_rule.items())]
    return rows


def enforcement_table(policy: Policy, host: HostFacts, targets: Iterable[str]) -> list[RuleEnforcement]:
    """Every policy rule (and every rule a backend reports, e.g. syscalls) → its enforcers."""
    records: list[Enforcement] = []
    for backend in backends_for(targets, policy):
        records += backend_enforcements(backend, policy, host)
    return _table(policy, records)


def table_from_artifacts(policy: Policy, results: Iterable[Artifacts]) -> list[RuleEnforcement]:
    return _table(policy, [e for r in results for e in r.enforcements])


def unenforced_rules(rows: Iterable[RuleEnforcement]) -> list[str]:
    """Required rules no chosen backend enforces."""
    return [r.rule for r in rows if r.required and not r.enforced]


def unenforced(policy: Policy, results: Iterable[Artifacts]) -> list[str]:
    """For `compile --strict`: required rules that none of the compiled targets enforce
    (composite targets carry their constituents' records in their Artifacts)."""
    return unenforced_rules(table_from_artifacts(policy, results))


def rule_kind(rule: str) -> str:
    """`filesystem.deny[/etc/shadow]` -> `filesystem.deny`."""
    return rule.split("[", 1)[0]


def unenforced_in_scope(policy: Policy, results: Iterable[Artifacts]) -> list[str]:
    """For `compile --strict`: the unenforced required rules of the kinds the compiled
    targets carry at all. A seccomp-bpf filter never says anything about the filesystem,
    so a policy's (default) read-only root is not its failure; a `filesystem.deny` entry
    left out by a target that enforces the others is."""
    results = list(results)
    carried = {rule_kind(e.rule) for r in results for e in r.enforcements}
    return [rule for rule in unenforced(policy, results) if rule_kind(rule) in carried]


def enforcers_for_syscall(policy: Policy, host: HostFacts, name: str) -> list[str]:
    """For `explain SYSCALL`: which targets carry the decision about this syscall."""
    from stockade.profiles.systemd import syscall_filter

    out = ["seccomp (stockade run, seccomp-bpf/-docker/-oci, docker, oci, kubernetes)"]
    lines, _ = syscall_filter(policy, host)
    value = dict(lines).get("SystemCallFilter", "")
    listed = name in value.removeprefix("~").split()
    has_args = any(name in r.syscalls and r.args for r in policy.syscalls.rules)
    if listed or not value.startswith("~"):
        how = "SystemCallFilter=" + (", name level only: argument conditions are not expressible"
                                     if has_args else "")
        out.append(f"systemd ({how})")
    return out


def format_table(rows: Iterable[RuleEnforcement]) -> str:
    lines = []
    for r in rows:
        who = ", ".join(f"{e.backend} ({e.how})" for e in r.by)
        if not who:
            who = "NOT ENFORCED" if r.required else "nothing to enforce (a grant)"
        lines.append(f"{r.rule}: {who}")
    return "\n".join(lines) + ("\n" if lines else "")
