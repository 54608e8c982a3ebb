"""The executor's plan (executor/plan_json.py): the golden document of each plan kind,
the round trip, and the typed refusals of both readers (Python's loads and the C
executor's, through the tests' build of the front end: `--read-plan FILE`)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stockade.executor import plan_json
from tests.unit.executor.plan_kinds import GOLDEN, KINDS, document, golden_text


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_plan_of_each_kind_is_its_golden_file(kind: str, tmp_path: Path) -> None:
    got = golden_text(kind, tmp_path)
    want = (GOLDEN / f"{kind}.json").read_bytes()
    assert got == want, f"plan of {kind} changed: review, then `python tools/regen_plans.py`"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip(kind: str, tmp_path: Path) -> None:
    doc = document(kind, tmp_path)
    assert doc["version"] == plan_json.VERSION
    assert plan_json.loads(plan_json.dumps(doc)) == doc
    assert list(plan_json.loads(plan_json.dumps(doc))) == list(doc)  # the documented order


def test_the_golden_files_differ_where_their_kinds_do() -> None:
    docs = {k: json.loads((GOLDEN / f"{k}.json").read_bytes()) for k in KINDS}
    assert docs["cgroup_v2_limits"]["cgroups"]["mode"] == "v2"
    assert len(docs["cgroup_v2_limits"]["cgroups"]["device_program"]) % 16 == 0  # 8-byte insns
    assert docs["cgroup_v2_limits"]["cgroups"]["device_program"]
    assert docs["cgroup_v1_limits"]["cgroups"]["mode"] == "v1"
    assert {w["file"] for w in docs["cgroup_v1_limits"]["cgroups"]["writes"]} >= {
        "memory.limit_in_bytes", "pids.max", "cpu.cfs_quota_us"}
    assert docs["userns"]["identity"]["userns"] is True
    assert docs["userns"]["identity"]["uid_map"] == [[0, 100000, 65536]]
    assert docs["minimal"]["identity"]["uid_map"] == []
    assert docs["minimal"]["lsm"] == {"apparmor_profile": None, "selinux_label": None}
    assert docs["lsm_labels"]["lsm"] == {
        "apparmor_profile": "docker-default",
        "selinux_label": "system_u:system_r:container_t:s0:c1,c2"}
    docker = docs["docker_like"]
    assert docker["process"]["home_of_uid"] == 1000 and docker["process"]["umask"] == 18
    assert [plan_json.UNLIMITED, plan_json.UNLIMITED] in [r[1:] for r in docker["rlimits"]]
    assert {m["kind"] for m in docker["mounts"]} >= {"mask", "readonly", "bind", "fs"}
    assert docker["oom_score_adj"] == 500
    assert docker["state"]["annotations"][1] == ["x", 'y"z']


def _golden(kind: str = "minimal") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / f"{kind}.json").read_bytes())
    return doc


# (what is changed, the refusal both readers give)
BAD: list[tuple[str, Any, str]] = [
    ("version", 1, "version"),
    ("namespaces.loopback", "yes", "loopback"),
    ("namespaces.clone_flags", 1.5, "clone_flags"),
    ("caps", None, "caps"),
    ("identity.uid", "0", "uid"),
    ("mounts.0.kind", "overlay", "kind"),
    ("mounts.0.readonly", 0, "readonly"),
    ("process.argv", "sh", "argv"),
    ("cgroups.mode", "v3", "mode"),
    ("seccomp.filters", ["0g"], "hex"),
    ("root", {"path": "/r", "readonly": False}, "propagation"),
    ("lsm.selinux_label", 5, "selinux_label"),
    ("root.jail", "yes", "jail"),
    ("root.host", None, "host"),
    ("mounts.0.why", 3, "why"),
]


def _edit(doc: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = where.split(".")
    cur: Any = doc
    for key in parents:
        cur = cur[int(key)] if isinstance(cur, list) else cur[key]
    cur[last] = value
    return doc


@pytest.mark.parametrize(("where", "value", "named"), BAD, ids=[b[0] for b in BAD])
def test_python_refuses_a_mistyped_field(where: str, value: Any, named: str) -> None:
    with pytest.raises(plan_json.PlanError) as exc:
        plan_json.loads(json.dumps(_edit(_golden(), where, value)).encode())
    assert named in str(exc.value) or where.split(".")[-1] in str(exc.value)


def test_python_refuses_a_missing_field() -> None:
    doc = _golden()
    del doc["process"]["cwd"]
    with pytest.raises(plan_json.PlanError, match=r"plan\.process\.cwd: missing"):
        plan_json.loads(json.dumps(doc).encode())


def test_what_cannot_be_written_is_not_stored(tmp_path: Path) -> None:
    from stockade.oci import config as oci_config
    from stockade.oci.translate import translate
    from stockade.runner._record import replace
    from tests.unit.executor.plan_kinds import BUILD, HOST, HYBRID, RUNC_SPEC, make_bundle

    raw = make_bundle(tmp_path, RUNC_SPEC)
    c = translate(oci_config.strip_nulls(copy.deepcopy(RUNC_SPEC)), str(tmp_path), "x",
                  last_cap=40, euid=0)
    with pytest.raises(plan_json.NotStored, match="UTF-8"):
        plan_json.document(c, HYBRID, b"\xff" + raw, HOST, [], BUILD)
    nul = replace(c, plan=replace(c.plan, argv=("sh", "a\0b")))
    with pytest.raises(plan_json.NotStored, match="NUL"):
        plan_json.document(nul, HYBRID, raw, HOST, [], BUILD)
    many = replace(c, plan=replace(c.plan, argv=("x",) * (plan_json.MAX_ARGS + 1)))
    with pytest.raises(plan_json.NotStored, match="more than"):
        plan_json.document(many, HYBRID, raw, HOST, [], BUILD)


# --- the C reader (oci/fastexec.c), through the tests' build of the front end --------

@pytest.fixture
def reader(executor_test_build: str) -> str:
    return executor_test_build  # `--read-plan FILE`


def _read(reader: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([reader, "--read-plan", str(path)], capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_executor_reads_each_golden_plan(reader: str, kind: str) -> None:
    doc = _golden(kind)
    r = _read(reader, GOLDEN / f"{kind}.json")
    assert r.returncode == 0, r.stdout + r.stderr
    cg = doc["cgroups"]
    rlimits = " ".join(f"{res}:{soft % 2**64}:{hard % 2**64}"
                       for res, soft, hard in doc["rlimits"])  # -1: RLIM_INFINITY
    filters = [len(f) // 2 for f in doc["seccomp"]["filters"]] + [0, 0]
    uid_map = "".join(f"{i} {o} {n}\n" for i, o, n in doc["identity"]["uid_map"])
    maps_root = any(m[0] == 0 for m in doc["identity"]["uid_map"]) and \
        any(m[0] == 0 for m in doc["identity"]["gid_map"])
    oom = doc["oom_score_adj"]
    want = (f"argv0={doc['process']['argv'][0]} mounts={len(doc['mounts'])} "
            f"cgroup={cg['mode']} writes={len(cg['writes'])} "
            f"devprog={len(cg['device_program']) // 2} filters={filters[0]},{filters[1]} "
            f"rlimits={len(doc['rlimits'])} {rlimits} "
            f"lsm={doc['lsm']['apparmor_profile'] or '-'},{doc['lsm']['selinux_label'] or '-'} "
            f"uid_map={uid_map}"
            f"maps_root={int(maps_root)} home={int(doc['process']['home_of_uid'] is not None)} "
            f"oom={int(oom is not None)}:{oom or 0}\n")
    assert r.stdout == want


@pytest.mark.parametrize(("where", "value", "named"), BAD, ids=[b[0] for b in BAD])
def test_the_executor_refuses_a_mistyped_field(reader: str, tmp_path: Path, where: str,
                                               value: Any, named: str) -> None:
    plan = tmp_path / "plan"
    plan.write_text(json.dumps(_edit(_golden("docker_like"), where, value)))
    r = _read(reader, plan)
    assert r.returncode == 1 and r.stdout.startswith("refused: ") and named in r.stdout, r.stdout


def test_both_readers_take_the_jails_own_entries(reader: str, tmp_path: Path) -> None:
    doc = _golden("docker_like")
    doc["root"].update(path="", host=True, jail=True)  # the jail: a tmpfs root
    base = doc["mounts"][0]
    doc["mounts"] += [dict(base, kind="symlink", destination="/bin", source="usr/bin"),
                      dict(base, kind="file", destination="/etc/hosts",
                           data=[["content", "127.0.0.1\tlocalhost\n"]], why="generated")]
    plan = tmp_path / "plan"
    plan.write_text(json.dumps(doc))
    plan_json.loads(plan.read_bytes())
    r = _read(reader, plan)
    assert r.returncode == 0 and f" mounts={len(doc['mounts'])} " in f" {r.stdout}", r.stdout
    doc["mounts"][-1]["kind"] = "fifo"
    plan.write_text(json.dumps(doc))
    assert _read(reader, plan).stdout == "refused: mounts.kind: fifo is not a mount kind\n"


def test_the_executor_refuses_a_missing_field_or_no_json(reader: str, tmp_path: Path) -> None:
    doc = _golden()
    del doc["identity"]["gid_map"]
    plan = tmp_path / "plan"
    plan.write_text(json.dumps(doc))
    r = _read(reader, plan)
    assert r.returncode == 1 and r.stdout == "refused: field gid_map: missing\n"
    plan.write_bytes((GOLDEN / "minimal.json").read_bytes()[:-20])
    r = _read(reader, plan)
    assert r.returncode == 1 and r.stdout.startswith("refused: not JSON")
    plan.write_bytes(b"STKFAST1\0\0\0\0")  # the positional encoding of before
    assert _read(reader, plan).stdout.startswith("refused: not JSON")


# --- run documents (stockade run, the API, Python oci create/exec) ----------------------

def _run_plans() -> dict[str, Any]:
    from stockade.policy.loader import load_policy
    from stockade.runner.plan import Bind, RunSpec, build_plan
    from stockade.runner.prepare import policy_part

    ret_allow = b"\x06\x00\x00\x00\x00\x00\xff\x7f"
    spec = RunSpec(argv=("/bin/sh", "-c", "true", *(f"a{i}" for i in range(300))),
                   binds=(Bind("/tmp", "/mnt"),))
    return {ref: build_plan(policy_part(load_policy(ref), seccomp_bpf=ret_allow), spec, euid=0)
            for ref in ("default", "strict")}


@pytest.mark.parametrize("ref", ["default", "strict"])
def test_the_executor_reads_a_run_document(reader: str, tmp_path: Path, ref: str) -> None:
    """The default jail (its tmpfs root, symlinks and files, 60-odd mounts, a bind, 300
    arguments: more than a stored plan's 64) is read whole by the C reader."""
    plan = _run_plans()[ref]
    fds = plan_json.ExecFds(report=3, err=4, sync=5, status=6, tty_slave=7)
    doc = plan_json.run_document(plan, "run", fds)
    assert doc["root"]["path"] == "" and doc["root"]["jail"] is True  # the jail's own tmpfs
    assert {m["kind"] for m in doc["mounts"]} >= {"symlink", "bind", "dev", "proc"}
    assert doc["cgroups"]["mode"] == "none" and doc["fds"]["tty_slave"] == 7
    path = tmp_path / "run.json"
    path.write_bytes(plan_json.dumps(doc))
    r = _read(reader, path)
    assert r.returncode == 0, r.stdout
    assert r.stdout.startswith(f"argv0=/bin/sh mounts={len(doc['mounts'])} cgroup=v0 writes=0 ")


def test_a_run_document_too_big_for_the_executor_is_refused_before_it_runs() -> None:
    plan = _run_plans()["default"]
    from stockade.runner._record import replace

    many = replace(plan, argv=("x",) * (plan_json.MAX_ARGS + 1))
    with pytest.raises(plan_json.NotStored, match="more than 4096"):
        plan_json.run_document(many, "run", plan_json.ExecFds(report=3, err=4, sync=5, status=6))
    with pytest.raises(plan_json.NotStored, match="exec mode"):
        plan_json.run_document(plan, "daemon", plan_json.ExecFds(report=3, err=4, sync=5,
                                                                 status=6))
