"""Learned -> a policy document; merging documents for `--append`.

Without a base the document stands alone: the recording run's settings (the `default`
preset's namespaces, user mapping and tmpfs) plus what was learned, with every
capability dropped except those exercised. With `--policy BASE` it `extends` the base
and adds only what the base does not already allow.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stockade.learn.infer import Learned
from stockade.policy import model as m
from stockade.policy.semantics import decide

MI = 1024 * 1024
NETWORK_ORDER = ("none", "loopback", "private", "host")


def suggested_resources(memory_peak: int | None, pids_peak: int | None) -> dict[str, Any]:
    """Peak usage with headroom: twice the memory (page cache of written files counts in
    the cgroup's peak and varies between runs), at least 64Mi; twice the pids plus 16."""
    out: dict[str, Any] = {}
    if memory_peak:
        out["memory"] = f"{max(64, -(-2 * memory_peak // MI))}Mi"
    if pids_peak:
        out["pids"] = max(32, 2 * pids_peak + 16)
    return out


def refused_by(policy: m.Policy, learned: Learned) -> dict[str, m.Action]:
    """The syscalls the workload made that `policy` does not allow (by name, on the
    native arch), with its answer: the recorder let them through, `policy` would not."""
    native = learned.arches[0]
    answers = {n: decide(policy, n, native).action for n in learned.allow}
    return {n: a for n, a in answers.items() if not a.is_allow}


def network_mode(learned: Learned, base_mode: str) -> str:
    if learned.remote:
        # the peers it reached become egress entries of a private network; IPv6 peers
        # (a private network is IPv4 only) or none recorded leave only the host's
        return "private" if learned.peers and not learned.remote_v6 else "host"
    if any(s.startswith("inet") for s in learned.sockets):
        return base_mode if base_mode != "none" else "loopback"
    return "none"


def build(learned: Learned, *, name: str, description: str, base: m.Policy | None,
          base_ref: str | None, default_action: str, resources: dict[str, Any],
          recorded_under: m.Policy | None = None) -> dict[str, Any]:
    """recorded_under: the policy of the recording run (its tmpfs and deny lists are kept
    in a standalone result: the workload ran with them)."""
    doc: dict[str, Any] = {"stockade": 1, "name": name, "description": description}
    fs: dict[str, Any] = {}
    if base is not None and base_ref is not None:
        doc["extends"] = [base_ref]
        native = learned.arches[0]
        allow = [n for n in learned.allow if not decide(base, n, native).action.is_allow]
        doc["syscalls"] = {"allow": allow, "rules": list(learned.rules)}
        caps = [c for c in learned.caps if "CAP_" + c not in base.capabilities.kept]
        if caps:
            doc["capabilities"] = {"add": caps}
        mode = network_mode(learned, base.network.mode)
        net: dict[str, Any] = {"allow": list(learned.sockets)}
        if NETWORK_ORDER.index(mode) > NETWORK_ORDER.index(base.network.mode):
            net["mode"] = mode
    else:
        # what the recording's policy refuses keeps its answer: the result is never looser
        # than the policy the workload was recorded under (`stockade diff --check`)
        refused = refused_by(recorded_under, learned) if recorded_under is not None else {}
        kept_answers = [{"syscalls": [n], "action": str(a), "comment": f"{recorded_under.name} "
                         "refuses it; the recorder let it through"}
                        for n, a in sorted(refused.items()) if recorded_under is not None]
        doc["syscalls"] = {"default": default_action, "unknown": "enosys",
                           "arches": list(learned.arches),
                           "allow": [n for n in learned.allow if n not in refused],
                           "rules": list(learned.rules) + kept_answers}
        doc["capabilities"] = {"drop": ["ALL"], "add": list(learned.caps)}
        doc["no_new_privileges"] = True
        fs["root"] = "read-only"
        under = recorded_under.filesystem if recorded_under is not None else None
        fs["tmpfs"] = [e.path for e in under.tmpfs] if under is not None else ["/tmp"]
        fs["deny"] = [e.path for e in under.deny] if under is not None else []
        net = {"mode": network_mode(learned, "loopback"), "allow": list(learned.sockets)}
    fs.update({"read_only": list(learned.read), "writable": list(learned.write),
               "exec": list(learned.exec)})
    doc["filesystem"] = fs
    if learned.bind:
        net["bind"] = list(learned.bind)
    if net.get("mode", base.network.mode if base is not None else "") == "private":
        net["egress"] = egress_entries(learned.peers)
    doc["network"] = net
    if base is None:
        doc["namespaces"] = list(m.ALL_NAMESPACES)
    if resources:
        doc["resources"] = resources
    return doc


def egress_entries(peers: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    """One network.egress entry per address the workload connected to, with its ports
    (no proto: the recorder sees connect() on a socket, not whether it is TCP or UDP)."""
    ports: dict[str, set[int]] = {}
    for addr, port in peers:
        ports.setdefault(addr, set()).add(port)
    return [{"to": addr, "ports": sorted(p for p in ports[addr] if p)}
            for addr in sorted(ports, key=lambda a: tuple(int(x) for x in a.split(".")))]


def _union(a: list[Any], b: list[Any]) -> list[Any]:
    out = list(a)
    keys = {json.dumps(x, sort_keys=True) for x in a}
    for x in b:
        k = json.dumps(x, sort_keys=True)
        if k not in keys:
            keys.add(k)
            out.append(x)
    return out


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`--append`: everything either run needed (lists unioned, limits at their maximum)."""
    from stockade.learn.fold import _prune

    out = dict(new)
    for section, keys in (("syscalls", ("arches", "allow", "rules")),
                          ("capabilities", ("add",)),
                          ("filesystem", ("read_only", "writable", "exec", "tmpfs", "deny")),
                          ("network", ("allow", "bind", "egress"))):
        o, n = old.get(section) or {}, dict(new.get(section) or {})
        for key in keys:
            if key in o or key in n:
                merged = _union(list(o.get(key) or []), list(n.get(key) or []))
                if section == "syscalls" and key == "allow" or key == "bind":
                    merged = sorted(merged)
                if section == "filesystem" and key in ("read_only", "writable"):
                    merged = _prune(merged, plain_covers=key == "writable")
                n[key] = merged
        if section == "network" and "mode" in o:
            modes = [x for x in (o.get("mode"), n.get("mode")) if x in NETWORK_ORDER]
            n["mode"] = max(modes, key=NETWORK_ORDER.index)
        if n:
            out[section] = n
    res = dict(old.get("resources") or {})
    for key, value in (new.get("resources") or {}).items():
        res[key] = value if key not in res else _bigger(res[key], value)
    if res:
        out["resources"] = res
    found = re.search(r"\(merged: (\d+) runs\)", str(old.get("description", "")))
    runs = int(found.group(1)) if found else 1
    out["description"] = re.sub(r" \(merged: \d+ runs\)", "", str(new.get("description", ""))) \
        + f" (merged: {runs + 1} runs)"
    return out


def _bigger(a: Any, b: Any) -> Any:
    def size(v: Any) -> int:
        s = str(v)
        for suffix, mult in (("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)):
            if s.endswith(suffix):
                return int(s[:-2]) * mult
        return int(s)
    return a if size(a) >= size(b) else b
