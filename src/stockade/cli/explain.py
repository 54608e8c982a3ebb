"""`stockade explain POLICY SYSCALL`: what happens to a syscall, why, and proof from the
BPF (stockade.profiles.explain); exit 1 if the policy's meaning and the filter disagree.
`--reach HOST:PORT`: the network section's answer (stockade.profiles.network_targets).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import sys
from typing import Any

from stockade.cli.options import kernel_version
from stockade.errors import StockadeError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="POLICY", help="policy file or preset name")
    parser.add_argument("syscall", metavar="SYSCALL", nargs="?",
                        help="syscall name, e.g. personality (or use --reach)")
    parser.add_argument("--reach", metavar="HOST:PORT[/udp]",
                        help="instead of a syscall: can the sandbox reach this peer, and why")
    parser.add_argument("--arch", metavar="A", help="architecture (default: the policy's first)")
    parser.add_argument("--caps", metavar="CAP,...", help="evaluate as if exactly these caps were kept")
    parser.add_argument("--args", metavar="V0,V1,...", default="",
                        help="argument values (integers or named constants), default all 0")
    parser.add_argument("--kernel", metavar="X.Y", help="kernel version for min_kernel conditions")
    parser.add_argument("--json", action="store_true", help="machine-readable answer")


def _args(text: str) -> tuple[int, ...]:
    from stockade.policy.vocab.constants import CONSTANTS

    values: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part in CONSTANTS:
            values.append(CONSTANTS[part])
            continue
        try:
            values.append(int(part, 0) & 0xFFFFFFFFFFFFFFFF)
        except ValueError:
            raise StockadeError(f"--args: {part!r} is not an integer or a known constant") from None
    if len(values) > 6:
        raise StockadeError("--args: a syscall has at most 6 arguments")
    return tuple(values + [0] * (6 - len(values)))


def main(args: argparse.Namespace) -> int:
    from stockade.linux.hostfacts import HostFacts
    from stockade.linux.syscall_table import canonical_arch, syscall_table
    from stockade.policy.loader import load_policy
    from stockade.policy.render import policy_digest
    from stockade.policy.vocab.capabilities import canonical_cap
    from stockade.profiles.explain import explain_syscall

    policy = load_policy(args.file)
    if args.reach is not None:
        return _reach(policy, args.reach, args.json)
    if args.syscall is None:
        raise StockadeError("explain: give a SYSCALL, or --reach HOST:PORT")
    host = HostFacts.detect()
    if args.kernel:
        host = dataclasses.replace(host, kernel=kernel_version(args.kernel))
    if args.caps is not None:
        caps = set()
        for name in filter(None, args.caps.split(",")):
            cap = canonical_cap(name)
            if cap is None:
                raise StockadeError(f"--caps: unknown capability {name!r}")
            caps.add(cap)
        policy = dataclasses.replace(
            policy, capabilities=dataclasses.replace(policy.capabilities, kept=frozenset(caps)))
        policy = dataclasses.replace(policy, digest=policy_digest(policy) + "+caps")
    arch = policy.syscalls.arches[0]
    if args.arch:
        arch_opt = canonical_arch(args.arch)
        if arch_opt is None or arch_opt not in policy.syscalls.arches:
            raise StockadeError(f"--arch: {args.arch!r} is not one of the policy's arches "
                                f"({', '.join(policy.syscalls.arches)})")
        arch = arch_opt
    table = syscall_table()
    name = args.syscall
    if name not in table.all_names:
        close = difflib.get_close_matches(name, table.all_names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise StockadeError(f"unknown syscall {name!r}{hint}")
    answer = explain_syscall(policy, host, name, arch, _args(args.args))
    _print(answer, args.json)
    return 0 if answer["decision"] is None or answer["bpf"]["agrees"] else 1


def _reach(policy: Any, target: str, as_json: bool) -> int:
    """`--reach HOST:PORT[/udp]`: the network section's answer (network_targets.reach)."""
    from stockade.profiles.network_targets import reach

    addr, _, proto = target.partition("/")
    host, _, port_text = addr.rpartition(":")
    proto = proto or "tcp"
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535 or proto not in (
            "tcp", "udp"):
        raise StockadeError(f"--reach: {target!r} is not HOST:PORT[/udp], e.g. 10.0.0.5:5432")
    if not _is_address(host.strip("[]")):
        from stockade.errors import Location
        from stockade.policy.egress import egress_rule

        egress_rule(host, [], None, Location("--reach"))  # a host name as egress takes one
    resolvers = None
    if policy.network.mode == "private":
        from stockade.errors import RunnerError
        from stockade.runner.network.peers import nameservers

        try:
            resolvers = nameservers("/etc/resolv.conf")
        except RunnerError:
            resolvers = None  # the answer then says "only if" for dns
    answer = reach(policy, host.strip("[]"), int(port_text), proto, resolvers)
    out = {"policy": policy.name, "target": f"{host}:{port_text}/{proto}",
           "mode": policy.network.mode, "reachable": answer.verdict, "why": answer.why}
    if as_json:
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{out['target']} from policy {policy.name} (network.mode {out['mode']})")
        print(f"  reachable: {answer.verdict}")
        print(f"  why:       {answer.why}")
    return 0


def _is_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _print(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        json.dump(answer, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    nr = answer["number"]
    print(f"{answer['syscall']} on {answer['arch']}" + (f" (nr {nr})" if nr is not None else "")
          + f", args {', '.join(hex(v) for v in answer['args'])}")
    print(f"  policy:   {answer['policy']}  (merged: {' -> '.join(answer['sources'])})")
    if answer["decision"] is None:
        print(f"  {answer['why']}")
        return
    print(f"  decision: {answer['decision']}")
    print(f"  why:      {answer['why']}")
    print(f"  without argument rules: {answer['name_level']}")
    for line in answer["rules"]:
        print(f"  rule:     {line}")
    for line in answer["inactive_rules"]:
        print(f"  inactive: {line}")
    bpf = answer["bpf"]
    verdict = "agrees" if bpf["agrees"] else "DISAGREES (a compiler bug: please report)"
    print(f"  checked:  the compiled filter ({bpf['instructions']} instructions) returns "
          f"{bpf['returns']}: {verdict}")
    print(f"  enforced by: {', '.join(answer['enforced_by'])}")
