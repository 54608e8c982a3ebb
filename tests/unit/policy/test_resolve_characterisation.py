"""Characterisation of `policy.resolve`: every input resolves exactly as it did when the
fixture was captured (issue 18, the per-section mergers replaced one 208-line function).

The corpus: the presets, examples/, the hostile policies in tests/data, every policy text
written inline in tests/ (harvested from the source), and chains of 1-3 files generated
by hypothesis (`_chain`), which reach every section's merge rules and their errors. The
fixture holds each case's input texts and a sha256 of its whole resolved Policy (every
field, origins and `Resources.origins` included) or its error line, so it stays small.

Re-capture (only when a change of resolved output is intended, and say so in the commit):
    .venv/bin/python -m tests.unit.policy.test_resolve_characterisation --capture
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import hashlib
import json
import os
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import strategies as st

from stockade.errors import Location, StockadeError
from stockade.policy.loader import PRESETS, load_policy
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "golden" / "resolve" / "characterisation.json"
CASE_DIR_FILES = ("p0.yaml", "p1.yaml", "p2.yaml")


def _plain(value: Any) -> Any:
    """The resolved model as JSON data: every dataclass field (compare=False ones too)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Location):
        return [value.file, value.line, value.column, value.key_path]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def outcome(ref: str) -> str:
    """sha256 of the resolved policy, or the error's type and its one line."""
    try:
        policy = load_policy(ref)
    except StockadeError as exc:
        return f"{type(exc).__name__}: {exc}"
    text = json.dumps(_plain(policy), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- the corpus


def _repo_refs() -> list[str]:
    """Repo files, relative to REPO (the test runs there, so origins do not hold tmp paths)."""
    files = sorted((REPO / "examples").glob("*.yaml")) + sorted((REPO / "tests" / "data").rglob("*.y*ml"))
    return [*PRESETS, *(str(p.relative_to(REPO)) for p in files)]


def _inline_texts() -> list[str]:
    """Policy texts written as string literals in tests/ (not f-strings: they need values)."""
    out: list[str] = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "stockade: 1" in node.value:
                text = textwrap.dedent(node.value)
                if text not in out:
                    out.append(text)
    return out


# Each pool: good values, then after BAD the ones resolve refuses (drawn 1 in 100,
# so most chains resolve and reach the merge rules; each error still shows up).
BAD = object()
SYSCALL_WORDS = ["read", "write", "ptrace", "personality", "clone", "socket", "mount", "unshare",
                 "@mount", "@debug", "@system-service", "@privileged", BAD, "nosuchcall", "@nosuchgroup"]
ACTION_WORDS = ["allow", "errno", "enosys", "kill", "log", "errno:EACCES", "errno:13",
                BAD, "errno:EFOO", "errno:5000", "explode"]
RULES = [
    {"syscalls": ["clone"], "action": "errno:EPERM",
     "args": [{"index": 0, "op": "masked_eq", "mask": "CLONE_NEWUSER", "value": "CLONE_NEWUSER"}],
     "when": {"arch": ["x86_64", "aarch64"]}},
    {"syscalls": ["socket"], "action": "errno:EAFNOSUPPORT", "args": [{"index": 0, "op": "eq", "value": "AF_PACKET"}]},
    {"syscalls": ["personality", "@debug"], "action": "allow", "unless": {"caps": ["SYS_ADMIN"], "min_kernel": "5.8"}},
    {"syscalls": ["read"], "action": "log", "args": [{"index": 2, "op": "gt", "value": -1}]},
    {"syscalls": ["ptrace", "clone"], "action": "kill"},
    BAD,
    {"syscalls": ["clone"], "action": "errno", "args": [{"index": 0, "op": "masked_eq", "value": 3}]},
    {"syscalls": ["clone"], "action": "errno", "args": [{"index": 0, "op": "masked_eq", "mask": 1, "value": 3}]},
    {"syscalls": ["clone"], "action": "errno", "args": [{"index": 0, "op": "eq", "value": 1, "mask": 1}]},
    {"syscalls": ["clone"], "action": "errno",
     "args": [{"index": 1, "op": "eq", "value": 1}, {"index": 1, "op": "ne", "value": 2}]},
    {"syscalls": ["clone"], "action": "errno", "args": [{"index": 0, "op": "eq", "value": "NO_SUCH_CONST"}]},
    {"syscalls": ["clone"], "action": "errno", "when": {"arch": ["vax"], "caps": ["NOPE"]}},
    {"syscalls": ["clone"], "action": "errno", "when": {"min_kernel": "five"}},
]
CAP_WORDS = ["ALL", "NET_RAW", "CAP_CHOWN", "SYS_ADMIN", "NET_BIND_SERVICE", "chown", BAD, "NOSUCH"]
AMBIENT = ["NET_BIND_SERVICE", "CHOWN", BAD, "NOSUCH"]
PATHS = ["/tmp", "/var/cache", "/etc", "/proc/kcore", "/data/**", "/srv/*.log", "/home/", "/x/[ab]", "/",
         BAD, "tmp", "/a/../b"]
SOCKETS = ["unix", "inet:tcp", "inet6", "netlink", "inet6:udp", BAD, "bogus", "inet:icmp"]
EGRESS = [{"to": "10.0.0.0/8", "ports": [443], "proto": "tcp"}, {"to": "dns"}, {"to": "example.com"},
          BAD, {"to": "10.0.0.1/8"}, {"to": "not a host"}]
PUBLISH = ["8080:80", "127.0.0.1:8443:443/udp", "8080:81", "0.0.0.0:9000:90", BAD, "oops"]
SIZES = ["64Mi", 0, "1Gi", 1048576, "1.5G", BAD, "bogus", "9Ei"]
ARCHES = ["native", "all", ["x86_64", "x86"], ["native", "aarch64", "x86_64"], BAD, [], ["vax"]]
SELINUX = [{}, {"type": "web_t"}, {"base": "container", "type": "x_t"}, BAD, {"type": "bad-type"}]
RATES = ["10Mbit", "5mbps", BAD, "1bit"]


def _one(draw: st.DrawFn, pool: list[Any]) -> Any:
    cut = pool.index(BAD)
    bad = draw(st.integers(0, 99)) == 0
    return draw(st.sampled_from(pool[cut + 1:] if bad else pool[:cut]))


def _some(draw: st.DrawFn, pool: list[Any], most: int = 3) -> list[Any]:
    return [_one(draw, pool) for _ in range(draw(st.integers(0, most)))]


@st.composite
def _layer(draw: st.DrawFn, name: str, extends: list[str]) -> dict[str, Any]:
    """One policy file: each section present or not, values from pools of good and bad."""
    doc: dict[str, Any] = {"stockade": 1, "name": name}
    if extends:
        doc["extends"] = extends
    pick = draw(st.sets(st.sampled_from(["syscalls", "capabilities", "no_new_privileges", "filesystem",
                                          "network", "namespaces", "user", "resources", "rlimits", "lsm",
                                          "hostname", "description"]), min_size=1))
    if "syscalls" in pick:
        sc: dict[str, Any] = {"allow": _some(draw, SYSCALL_WORDS, 4), "deny": _some(draw, SYSCALL_WORDS, 4),
                              "rules": _some(draw, RULES, 2)}
        if draw(st.booleans()):
            sc["default"] = _one(draw, ACTION_WORDS)
        if draw(st.booleans()):
            sc["unknown"] = _one(draw, ACTION_WORDS)
        if draw(st.booleans()):
            sc["arches"] = _one(draw, ARCHES)
        doc["syscalls"] = sc
    if "capabilities" in pick:
        doc["capabilities"] = {"drop": _some(draw, CAP_WORDS), "add": _some(draw, CAP_WORDS),
                               "ambient": _some(draw, AMBIENT, 1)}
    if "no_new_privileges" in pick:
        doc["no_new_privileges"] = draw(st.booleans())
    if "filesystem" in pick:
        fs: dict[str, Any] = {k: _some(draw, PATHS, 2) for k in draw(st.sets(st.sampled_from(
            ["read_only", "writable", "exec", "deny", "tmpfs", "expose"])))}
        if draw(st.booleans()):
            fs["root"] = draw(st.sampled_from(["read-only", "writable"]))
        doc["filesystem"] = fs
    if "network" in pick:
        net: dict[str, Any] = {"allow": _some(draw, SOCKETS), "bind": draw(st.lists(st.sampled_from([80, 8080, 443]), max_size=2))}
        if draw(st.booleans()):
            net["mode"] = draw(st.sampled_from(["none", "loopback", "host", "private"]))
        if draw(st.booleans()):
            net["host_abstract_sockets"] = draw(st.booleans())
        if draw(st.booleans()):
            net["egress"] = _some(draw, EGRESS, 2)
            net["publish"] = _some(draw, PUBLISH, 2)
        if draw(st.booleans()):
            net["bandwidth"] = {"egress": _one(draw, RATES)}
        doc["network"] = net
    if "namespaces" in pick:
        doc["namespaces"] = draw(st.lists(st.sampled_from(["user", "pid", "mount", "net", "ipc", "uts", "cgroup"]),
                                         max_size=4))
    if "user" in pick:
        user: dict[str, Any] = {}
        for key, pool in (("uid", [0, 1000]), ("gid", [0, 1000]), ("map", ["auto", "host"]),
                          ("uid_map", [[{"inside": 0, "outside": 100000, "count": 65536}]]),
                          ("gid_map", [[{"inside": 0, "outside": 100000, "count": 65536}]])):
            if draw(st.booleans()):
                user[key] = draw(st.sampled_from(pool))
        doc["user"] = user
    if "resources" in pick:
        res: dict[str, Any] = {}
        for key, pool in (("memory", SIZES), ("swap", SIZES), ("pids", [32, 512]), ("cpu", [0.5, 2]),
                          ("cpu_weight", [100]), ("io_weight", [500])):
            if draw(st.booleans()):
                res[key] = _one(draw, pool) if BAD in pool else draw(st.sampled_from(pool))
        doc["resources"] = res
    if "rlimits" in pick:
        doc["rlimits"] = draw(st.dictionaries(st.sampled_from(["nofile", "core", "nproc"]),
                                              st.sampled_from([0, 256, "unlimited"]), max_size=2))
    if "lsm" in pick:
        lsm: dict[str, Any] = {}
        if draw(st.booleans()):
            lsm["apparmor"] = {"mode": draw(st.sampled_from(["enforce", "complain"]))}
        if draw(st.booleans()):
            lsm["selinux"] = _one(draw, SELINUX)
        if draw(st.booleans()):
            lsm["landlock"] = {"mode": draw(st.sampled_from(["best-effort", "required", "off"]))}
        if draw(st.booleans()):
            lsm["required"] = draw(st.booleans())
        doc["lsm"] = lsm
    if "hostname" in pick:
        doc["hostname"] = draw(st.sampled_from(["web", "a.b"]))
    if "description" in pick:
        doc["description"] = name + " generated"
    return doc


@st.composite
def _chain(draw: st.DrawFn) -> list[str]:
    """1-3 files, each extending the previous one; the first may extend a preset."""
    base = draw(st.sampled_from([[], ["default"], ["strict"], ["unconfined"], ["default", "strict"]]))
    texts: list[str] = []
    for i in range(draw(st.integers(1, len(CASE_DIR_FILES)))):
        doc = draw(_layer(f"p{i}", [CASE_DIR_FILES[i - 1]] if i else base))
        texts.append(yaml.safe_dump(doc, sort_keys=False))
    return texts


# ---------------------------------------------------------------- running a case


def _run_files(texts: list[str], where: Path) -> str:
    """Write the chain's files as p0.yaml.. into `where` (the cwd), resolve the last one."""
    for name in CASE_DIR_FILES:
        (where / name).unlink(missing_ok=True)
    for name, text in zip(CASE_DIR_FILES, texts, strict=False):
        (where / name).write_text(text)
    return outcome(CASE_DIR_FILES[len(texts) - 1])


def _cases() -> list[dict[str, Any]]:
    return list(json.loads(FIXTURE.read_text())["cases"])


def _case_id(case: dict[str, Any]) -> str:
    return str(case.get("ref") or case["id"])


CASES = _cases() if FIXTURE.exists() else []


def test_fixture_covers_the_corpus() -> None:
    # every preset and repo policy file is a case; the generated chains reach every section
    refs = {c["ref"] for c in CASES if "ref" in c}
    assert set(_repo_refs()) <= refs, sorted(set(_repo_refs()) - refs)
    assert sum(1 for c in CASES if "files" in c) >= 200
    assert sum(1 for c in CASES if c["expected"].startswith("sha256:")) >= 100
    assert sum(1 for c in CASES if c["expected"].startswith("PolicyError")) >= 50


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_resolves_as_captured(case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if "ref" in case:
        monkeypatch.chdir(REPO)
        got = outcome(case["ref"])
    else:
        monkeypatch.chdir(tmp_path)
        got = _run_files(case["files"], tmp_path)
    assert got == case["expected"]


# ---------------------------------------------------------------- capture


def capture(generated: int = 450) -> None:
    import tempfile

    cases: list[dict[str, Any]] = []
    os.chdir(REPO)
    for ref in _repo_refs():
        cases.append({"ref": ref, "expected": outcome(ref)})
    with tempfile.TemporaryDirectory() as d:
        where = Path(d)
        os.chdir(where)
        for i, text in enumerate(_inline_texts()):
            cases.append({"id": f"inline-{i}", "files": [text], "expected": _run_files([text], where)})
        chains: list[list[str]] = []
        while len(chains) < generated:  # random on purpose: the fixture keeps the texts
            texts = _chain().example()
            if texts not in chains:
                chains.append(texts)
        for i, texts in enumerate(chains):
            cases.append({"id": f"gen-{i}", "files": texts, "expected": _run_files(texts, where)})
        os.chdir(REPO)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps({"about": __doc__.splitlines()[0], "cases": cases}, indent=1) + "\n")
    print(f"{len(cases)} cases -> {FIXTURE}")


if __name__ == "__main__" and "--capture" in sys.argv:
    capture()
