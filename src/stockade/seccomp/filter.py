"""compile_filter: plan, build, check, and plan again until the program means the policy.

Each round plans every arch, builds the plans through libseccomp (in a time-limited
child), and checks the program against the policy; a syscall found wrong gets the next
rewrite (`plan.Escalation`) and the round repeats, at most seven times. What it took is
kept in the result, so the Docker/OCI JSON is planned with the same rewrites.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

from stockade.errors import StockadeError
from stockade.linux.hostfacts import HostFacts
from stockade.policy import model as m
from stockade.seccomp import bpf
from stockade.seccomp.actions import action_ret
from stockade.seccomp.arches import BIG_ENDIAN, bpf_arches, bpf_buildable
from stockade.seccomp.build import Refused
from stockade.seccomp.check import disagreements
from stockade.seccomp.forked_build import TimedOut, build_bounded
from stockade.seccomp.plan import Escalation, plan_arch
from stockade.seccomp.prologue import enosys_prologue, unknown_ranges


@dataclass(frozen=True)
class CompiledFilter:
    """A checked program and what it took to build it."""

    program: bytes  # struct sock_filter[], native byte order: ENOSYS prologue + libseccomp's
    arches: tuple[str, ...]
    lossy: frozenset[tuple[str, str]] = frozenset()  # (arch, syscall): see arches.MULTIPLEXED
    escalation: Escalation = Escalation()  # what it took: the JSON outputs are planned alike

    @property
    def instructions(self) -> int:
        return len(self.program) // 8


# Keyed by what a compile reads of the host (its arch and kernel decide which rules
# apply and how wide arguments are), not the whole record: the rest never changes it.
_CACHE: dict[tuple[str, str, tuple[int, int]], CompiledFilter] = {}


def compile_filter(policy: m.Policy, host: HostFacts) -> CompiledFilter:
    """Compile (memoised per process by policy digest, host arch and kernel)."""
    key = (policy.digest, host.arch, host.kernel)
    if policy.digest and key in _CACHE:
        return _CACHE[key]
    result = _compile_filter(policy, host)
    if policy.digest:
        _CACHE[key] = result
    return result


def compile_bpf(policy: m.Policy, host: HostFacts | None = None) -> bytes:
    """The loadable program for `seccomp(SECCOMP_SET_MODE_FILTER)`."""
    return compile_filter(policy, host or HostFacts.detect()).program


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
    refused: Refused | None = None
    timed_out = False
    for _ in range(7):
        plans = [plan_arch(policy, arch, host, escalation) for arch in arches]
        try:
            main, lossy = build_bounded(plans, sc.default)
        except TimedOut:
            # `ge 0` pads (a step for rules mis-built with the other pads) can hang
            # libseccomp: once, cut those syscalls' rules apart with the other pads instead
            narrowed = escalation.narrow_pads - escalation.exact
            if timed_out or not narrowed:
                raise
            timed_out = True
            escalation = dataclasses.replace(escalation, narrow_pads=escalation.narrow_pads - narrowed,
                                             exact=escalation.exact | narrowed)
            continue
        except Refused as exc:
            if exc.syscall in escalation.exact:
                raise StockadeError(exc.message) from None
            # disjoint rules cannot collide
            escalation = dataclasses.replace(escalation, exact=escalation.exact | {exc.syscall})
            refused = exc
            continue
        refused = None
        prologue: list[bpf.Insn] = []
        if sc.unknown != sc.default:
            prologue = enosys_prologue(unknown_ranges(arches), action_ret(sc.unknown))
        compiled = CompiledFilter(bpf.encode(prologue) + main, arches, frozenset(lossy), escalation)
        wrong = disagreements(policy, host, compiled.program, plans, compiled.lossy)
        if not wrong:
            return compiled
        # per syscall: other pads, then cut overlaps exactly, then also no range compares
        escalation = escalation.escalate(wrong)
    if refused is not None:
        raise StockadeError(refused.message)
    raise StockadeError(f"internal error: the compiled filter disagrees with the policy for "
                        f"{', '.join(sorted(wrong))}; please report this policy")
