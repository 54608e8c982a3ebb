"""Building: planned rules -> the Docker / OCI seccomp JSON (`--security-opt seccomp=`,
`linux.seccomp`), which runc and crun hand to libseccomp rule by rule.

One rule list serves every arch there, judged by the host's arch (see `_grouped`), and
runc adds socket rules to the multiplexed socketcall() too (see `_runc_collision`).
"""

from __future__ import annotations

import errno

import pyseccomp

from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts
from stockade.linux.syscall_table import syscall_table
from stockade.policy import model as m
from stockade.policy.semantics import restrictiveness
from stockade.seccomp.actions import action_ret
from stockade.seccomp.arches import ARGS_32BIT, MULTIPLEXED, bpf_buildable
from stockade.seccomp.build import LIBSECCOMP_OP, arch_filter
from stockade.seccomp.filter import compile_filter
from stockade.seccomp.names import OP_OF_NAME, SCMP_ACTION, SCMP_OP, json_action
from stockade.seccomp.plan import Escalation, plan_arch
from stockade.seccomp.rules import ArchPlan, PlannedRule, ordered


def _scmp_arch(arch: str) -> str:
    return "SCMP_ARCH_" + arch.upper()


def _json_args(args: tuple[m.ArgCondition, ...]) -> list[dict[str, object]]:
    out = []
    for c in args:
        if c.op is m.ArgOp.MASKED_EQ:
            out.append({"index": c.index, "value": c.mask, "valueTwo": c.value, "op": SCMP_OP[c.op]})
        else:
            out.append({"index": c.index, "value": c.value, "valueTwo": 0, "op": SCMP_OP[c.op]})
    return out


def _json_entry(names: list[str], action: m.Action, args: tuple[m.ArgCondition, ...]) -> dict[str, object]:
    entry: dict[str, object] = {"names": names, "action": SCMP_ACTION[action.kind]}
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
    # them in this order): argument rules first, the strictest first, as `rules.ordered` does.
    buckets: dict[tuple[m.Action, tuple[m.ArgCondition, ...]], list[str]] = {}
    for rule in ordered(chosen):
        buckets.setdefault((rule.action, rule.args), []).append(rule.syscall)
    groups = sorted(buckets.items(), key=lambda kv: (
        not kv[0][1], tuple(-x for x in restrictiveness(kv[0][0])), str(kv[0][0]), kv[0][1]))
    return [_json_entry(sorted(set(names)), a, args) for (a, args), names in groups], warnings


def json_profile(policy: m.Policy, host: HostFacts,
                 escalation: Escalation | None = None) -> tuple[dict[str, object], list[str]]:
    """The Docker JSON and the warnings about what it cannot say. `escalation`: the
    rewrites building the BPF program needed (found here when None and buildable)."""
    sc = policy.syscalls
    # one rule list for every arch: padded for the host's own argument width (see rewrite.pad)
    if escalation is None:  # what building the BPF program needed, where this machine can
        escalation = compile_filter(policy, host).escalation if bpf_buildable(host) else Escalation()
    plans = [plan_arch(policy, arch, host, escalation, wide_pads=host.arch not in ARGS_32BIT)
             for arch in sc.arches]
    syscalls, warnings = _grouped(plans, host.arch)
    profile: dict[str, object] = {"defaultAction": SCMP_ACTION[sc.default.kind]}
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
    flt = arch_filter(default, arch)
    table = syscall_table().by_arch[arch]
    for entry in entries:
        action = json_action(str(entry["action"]), entry.get("errnoRet"), 0)  # type: ignore[arg-type]
        args = [pyseccomp.Arg(a["index"], LIBSECCOMP_OP[OP_OF_NAME[a["op"]]], a["value"], a["valueTwo"])
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
    return json_profile(policy, host)[0]


def oci_seccomp(policy: m.Policy, host: HostFacts) -> dict[str, object]:
    """The OCI runtime-spec `linux.seccomp` object (runc, crun)."""
    return as_oci(json_profile(policy, host)[0])


def as_oci(docker: dict[str, object]) -> dict[str, object]:
    """The Docker JSON as the OCI `linux.seccomp` object: the same shape plus its flags."""
    return {**docker, "flags": []}  # none: in particular no SPEC_ALLOW, speculation mitigations stay on
