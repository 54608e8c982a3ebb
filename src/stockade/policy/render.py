"""Turn a resolved Policy back into a document: `show --resolved`, digests, import output."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from stockade.policy import model as m


def _cond(c: m.Condition | None) -> dict[str, Any] | None:
    if c is None:
        return None
    out: dict[str, Any] = {}
    if c.arches is not None:
        out["arch"] = sorted(c.arches)
    if c.caps is not None:
        out["caps"] = sorted(c.caps)
    if c.min_kernel is not None:
        out["min_kernel"] = f"{c.min_kernel[0]}.{c.min_kernel[1]}"
    return out


def _arg(a: m.ArgCondition) -> dict[str, Any]:
    out: dict[str, Any] = {"index": a.index, "op": a.op.value, "value": a.value}
    if a.op is m.ArgOp.MASKED_EQ:
        out["mask"] = a.mask
    return out


def rule_document(r: m.SyscallRule) -> dict[str, Any]:
    out: dict[str, Any] = {"syscalls": list(r.syscalls), "action": str(r.action)}
    if r.args:
        out["args"] = [_arg(a) for a in r.args]
    if r.when is not None:
        out["when"] = _cond(r.when)
    if r.unless is not None:
        out["unless"] = _cond(r.unless)
    if r.comment:
        out["comment"] = r.comment
    return out


def to_document(p: m.Policy) -> dict[str, Any]:
    """The merged policy as a standalone v1 document (no extends)."""
    doc: dict[str, Any] = {"stockade": 1, "name": p.name}
    if p.description:
        doc["description"] = p.description
    sc = p.syscalls
    doc["syscalls"] = {
        "default": str(sc.default),
        "unknown": str(sc.unknown),
        "arches": list(sc.arches),
        "allow": sorted(sc.allow),
        "deny": sorted(sc.deny),
        "rules": [rule_document(r) for r in sc.rules],
    }
    doc["capabilities"] = {"drop": ["ALL"], "add": [c.removeprefix("CAP_") for c in p.capabilities.add],
                           "ambient": [c.removeprefix("CAP_") for c in p.capabilities.ambient]}
    doc["no_new_privileges"] = p.no_new_privileges
    fs = p.filesystem
    doc["filesystem"] = {"root": fs.root, **{k: [e.path for e in getattr(fs, k)]
                                             for k in ("read_only", "writable", "exec", "deny", "tmpfs")}}
    if fs.expose:  # omitted when empty: digests stay as they were
        doc["filesystem"]["expose"] = [e.path for e in fs.expose]
    doc["network"] = {"mode": p.network.mode,
                      "allow": [r.family + (f":{r.type}" if r.type else "") for r in p.network.allow],
                      "bind": list(p.network.bind)}
    if p.network.host_abstract_sockets:  # omitted at its default: digests stay as they were
        doc["network"]["host_abstract_sockets"] = True
    doc["namespaces"] = [n for n in m.ALL_NAMESPACES if n in p.namespaces]
    user: dict[str, Any] = {"uid": p.user.uid, "gid": p.user.gid}
    if p.user.map == "explicit":
        user["uid_map"] = [vars(x) for x in p.user.uid_map]
        user["gid_map"] = [vars(x) for x in p.user.gid_map]
    else:
        user["map"] = p.user.map
    doc["user"] = user
    doc["resources"] = {k: v for k, v in vars(p.resources).items()
                        if v is not None and k != "origins"}  # provenance, not meaning
    doc["rlimits"] = {k: ("unlimited" if v < 0 else v) for k, v in p.rlimits.items()}
    lsm: dict[str, Any] = {"landlock": {"mode": p.lsm.landlock.mode}, "required": p.lsm.required}
    if p.lsm.apparmor is not None:
        lsm["apparmor"] = {"mode": p.lsm.apparmor.mode}
    if p.lsm.selinux is not None:
        lsm["selinux"] = {"type": p.lsm.selinux.type, "base": p.lsm.selinux.base}
    doc["lsm"] = lsm
    if p.hostname:
        doc["hostname"] = p.hostname
    return doc


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100)


def policy_digest(p: m.Policy) -> str:
    doc = to_document(p)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
