"""What a policy does with one syscall, why, and proof from the BPF (`stockade explain`).

The answer is computed twice: from the policy's meaning (policy.semantics, the oracle)
and by running the compiled filter on a synthetic seccomp_data. They must agree.
"""

from __future__ import annotations

from typing import Any

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy


def explain_syscall(policy: Policy, host: HostFacts, name: str, arch: str,
                    values: tuple[int, ...]) -> dict[str, Any]:
    """The answer for `name(values)` on `arch` as a JSON-ready document: the decision and
    why, the rules that apply and those inactive here, the name-level fallback, what the
    compiled filter returns (`bpf.agrees`) and which targets enforce it. `decision` is
    None when `name` is no syscall on `arch`."""
    from stockade.linux.syscall_table import syscall_table
    from stockade.policy.semantics import applicable_rules, decide, fallback
    from stockade.seccomp.check import evaluate
    from stockade.seccomp.filter import compile_filter

    nr = syscall_table().number(arch, name)
    answer: dict[str, Any] = {
        "policy": policy.name, "sources": list(policy.sources), "syscall": name, "arch": arch,
        "number": nr, "args": list(values),
    }
    if nr is None:
        answer["decision"] = None
        answer["why"] = f"{name} is not a syscall on {arch}; nothing to filter there"
        return answer
    decision = decide(policy, name, arch, values, host.kernel)
    answer["decision"] = str(decision.action)
    if decision.reason == "network":
        where = policy.network.allow_origin
        listed = ", ".join(r.family + (f":{r.type}" if r.type else "")
                           for r in policy.network.allow)
        answer["why"] = (f"network.allow [{listed}]" + (f" at {where}" if where else "")
                         + (": this family/type is listed, so socket() is granted"
                            if decision.action.is_allow else
                            ": this family/type is not listed (EAFNOSUPPORT)"))
    elif decision.rule is not None:
        r = decision.rule
        answer["why"] = f"matching rule at {r.origin} ({r.origin.key_path})"
    elif decision.entry is not None:
        e = decision.entry
        via = f" via {e.via_group}" if e.via_group else ""
        answer["why"] = f"syscalls.{decision.reason}{via} at {e.origin} ({e.origin.key_path})"
    else:
        answer["why"] = f"not named anywhere: syscalls.default ({policy.syscalls.default})"
    rules = applicable_rules(policy, name, arch, host.kernel)
    answer["rules"] = [f"{r.origin} {r.action} if " + (" and ".join(
        f"arg{c.index} {c.op.value} {c.value:#x}" + (f" mask {c.mask:#x}" if c.mask else "")
        for c in r.args) or "always") for r in rules]
    answer["name_level"] = str(fallback(policy.syscalls, name).action)
    inactive = [r for r in policy.syscalls.rules if name in r.syscalls and r not in rules]
    answer["inactive_rules"] = [f"{r.origin} (its when/unless does not hold here)" for r in inactive]
    compiled = compile_filter(policy, host)
    got = evaluate(compiled.program, arch, nr, values)
    answer["bpf"] = {"instructions": compiled.instructions, "returns": str(got),
                     "agrees": got == decision.action}
    answer["enforced_by"] = _enforced_by(policy, host, name)
    return answer


def _enforced_by(policy: Policy, host: HostFacts, name: str) -> list[str]:
    try:
        from stockade.profiles.enforcement import enforcers_for_syscall
    except ImportError:
        return ["seccomp"]
    return list(enforcers_for_syscall(policy, host, name))
