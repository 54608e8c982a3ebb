"""Network rows: can the container send anywhere, and does its jail hold what it asked?

A container in a network namespace of its own with a route out reaches every address its
host can, unless something filters it. stockade's private networks (`network.mode:
private`) filter on the host side, in an nft table per sandbox that the run records under
the state directory with the sandbox's netns inode: that record is how the audit tells
a jailed sandbox from an open one, and what it checks the host against. Host mode only
for the jail's side: from inside, the host's rules cannot be seen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from stockade.audit import probes_lib
from stockade.audit.checks._ns import host_ns
from stockade.audit.model import Severity, Status, Verdict, absent, na
from stockade.audit.probe import Outcome, Probe
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View

STATE_ENV = "STOCKADE_STATE_DIR"
DEFAULT_STATE_DIR = "/run/stockade"


def _routes_out() -> Outcome:
    """With the container's eyes: a route through any interface but lo."""
    def go() -> str:
        with open("/proc/net/route") as fh:
            rows = [line.split() for line in fh.readlines()[1:]]
        out = [r for r in rows if len(r) > 3 and r[0] != "lo"]
        if not out:
            raise FileNotFoundError(2, "no route but lo")
        default = [r for r in out if r[1] == "00000000"]
        row = (default or out)[0]
        gw = int(row[2], 16)
        via = ".".join(str(gw >> s & 0xFF) for s in (0, 8, 16, 24))
        return f"{row[0]}: {'default' if default else 'a'} route, gateway {via}"
    return probes_lib.attempt(go)


def _route_probes(view: View) -> Mapping[str, Probe]:
    return {"route": Probe(_routes_out)}


def jail_record(view: View) -> dict[str, object] | None:
    """The live stockade private-network record whose sandbox has this container's net
    namespace (host mode), or None."""
    if view.mode != "host":
        return None
    from stockade.runner.network.state import live_records

    directory = os.path.join(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR, "net")
    ino = view.ns.get("net")
    for record in live_records(directory):
        if ino is not None and record.get("netns") == ino:
            return record
    return None


def _tool(argv: list[str]) -> tuple[int, str]:
    import subprocess

    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, done.stdout


@check("NET-EGRESS-OPEN", "egress is unrestricted", Severity.MEDIUM,
       remediation="network.mode: private with network.egress entries for what it needs "
       "(or network.mode: none / loopback)",
       references=("CIS Docker 5.9", "CWE-923"), probes=_route_probes)
def net_egress_open(view: View, proofs: Proofs) -> Verdict:
    """The container has a route out and no host-side rule limits where it goes: any
    address the host reaches (internal services, cloud metadata) is reachable. A stockade
    private network counts as restricted while its nft table is in place and it has no
    allow-everything entry."""
    fix = (("network.mode", "private"),)
    is_host, ev = host_ns(view, "net")
    if is_host:
        return Verdict(Status.PRESENT, (ev, "the host's network: no egress rule applies "
                                        "(see NS-HOST-NET)"), fix=fix)
    route = proofs.get("route")
    if route is None:
        return Verdict(Status.ERROR, (ev, proofs.line("route")))
    if not route.ok:
        return absent(ev, proofs.line("route"))
    record = jail_record(view)
    if record is None:
        if view.mode != "host":
            return Verdict(Status.PRESENT, (ev, proofs.line("route"), "from inside, host-side "
                                            "rules cannot be seen: audit from the host"), fix=fix)
        return Verdict(Status.PRESENT, (ev, proofs.line("route"), "not a stockade private "
                                        "network: nothing on the host side is known to "
                                        "filter it"), fix=fix)
    table = str(record.get("table", ""))
    rc, _ = _tool(["nft", "list", "table", *table.split()])
    if rc != 0:
        return Verdict(Status.PRESENT, (ev, proofs.line("route"), f"stockade jail slot "
                                        f"{record.get('slot')}: its nft table {table} is gone"),
                       fix=fix)
    entries = [e for e in record.get("egress", []) or []  # type: ignore[attr-defined]
               if isinstance(e, list) and len(e) >= 2]
    wide = [e for e in entries if e[0] == "0.0.0.0/0" and not e[1]]
    if wide:
        return Verdict(Status.PRESENT, (ev, f"stockade jail slot {record.get('slot')}: an "
                                        "egress entry allows every address on every port"),
                       fix=fix)
    return absent(ev, proofs.line("route"), f"stockade jail slot {record.get('slot')}: "
                  f"{len(entries)} egress rule(s) in {table}, everything else refused")


@check("NET-BANDWIDTH-MISSING", "the bandwidth limit the policy asked for is not in place",
       Severity.LOW, remediation="restart the sandbox (its tc qdiscs are set before the "
       "payload starts); check that nothing on the host deletes qdiscs",
       references=("CWE-770",), host_only=True)
def net_bandwidth_missing(view: View, proofs: Proofs) -> Verdict:
    """A stockade private network whose policy set network.bandwidth has the token
    buckets on its host-side devices (the veth end for ingress, its ifb for egress)."""
    record = jail_record(view)
    if record is None:
        return na("not a stockade private network (no bandwidth is asked of anything else)")
    rates = record.get("bandwidth") or [0, 0]
    egress, ingress = (int(v) for v in rates)  # type: ignore[attr-defined]
    links = record.get("links") or []
    if not (egress or ingress):
        return absent("the policy set no network.bandwidth")
    host_if, ifb = (str(x) for x in links)  # type: ignore[attr-defined]
    missing, evidence = [], []
    for dev, rate, what in ((host_if, ingress, "ingress"), (ifb, egress, "egress")):
        if not rate:
            continue
        rc, out = _tool(["tc", "qdisc", "show", "dev", dev])
        line = next((x for x in out.splitlines() if " tbf " in f" {x} "), "")
        evidence.append(f"{what} {rate} bit/s on {dev}: {line.strip() or 'no tbf qdisc'}")
        if rc != 0 or not line:
            missing.append(what)
    if missing:
        return Verdict(Status.PRESENT, tuple(evidence))
    return absent(*evidence)


CHECKS = (net_egress_open, net_bandwidth_missing)
