"""The front end's create/run from a stored plan (oci/fastexec.c, oci/fastplan.py).

When the front end has no plan for a bundle, Python translates config.json, stores the
plan and execs the front end again, which runs it; later creates/runs of the same bundle
and config.json need no interpreter at all. STOCKADE_FAST=require
makes the front end exit 125 instead of falling back, so each test knows which path ran.
The probe's view from inside must be the same either way (and the Python path agrees
with runc: test_differential).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.oci.conftest import Bundles, leftovers, oci
from tests.integration.oci.test_differential import (
    RESOURCES,
    VARIANTS,
    _cgroup_files,
    normalise,
    probe_config,
)

REQUIRE = {"STOCKADE_FAST": "require"}


def fe(exe: str, root: Path, *args: str, env: dict[str, str] | None = None,
       stdin: Any = subprocess.DEVNULL, files: bool = False,
       input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    argv = [exe, "--root", str(root / "stockade"), *args]
    if files:  # create: the container keeps our stdio (a pipe would never see EOF)
        import tempfile

        with tempfile.TemporaryFile("w+") as err:
            res = subprocess.run(argv, text=True, stdout=subprocess.DEVNULL, stderr=err,
                                 stdin=stdin, env=full_env, timeout=30)
            err.seek(0)
            return subprocess.CompletedProcess(argv, res.returncode, "", err.read())
    if input_text is not None:
        return subprocess.run(argv, text=True, capture_output=True, input=input_text,
                              env=full_env, timeout=30)
    return subprocess.run(argv, text=True, capture_output=True, stdin=stdin, env=full_env,
                          timeout=30)


def entries(root: Path) -> list[Path]:
    """The stored plans (not the `seen` list)."""
    d = root / "stockade" / ".fast"
    return sorted(p for p in d.iterdir() if p.name != "seen") if d.exists() else []


def state(root: Path, cid: str) -> dict[str, Any]:
    r = oci(root, "state", cid)
    assert r.returncode == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_stored_plan_sees_what_python_sees(name: str, frontend_bin: str, bundles: Bundles,
                                           oci_root: Path) -> None:
    from tests.integration.oci.test_differential import HOSTDIR

    HOSTDIR.mkdir(exist_ok=True)
    cfg = probe_config(bundles)
    VARIANTS[name](cfg)
    bundle = str(bundles.make(cfg))
    ref = oci(oci_root, "run", "--bundle", bundle, f"py-{uuid.uuid4().hex[:6]}")
    assert ref.returncode == 0, ref.stderr
    first = fe(frontend_bin, oci_root, "--debug", "run", "--bundle", bundle, "first")
    assert first.returncode == 0, first.stderr
    assert "fast plan: stored" in first.stderr  # planned by Python, run by the front end
    cid = f"fast-{uuid.uuid4().hex[:6]}"
    got = fe(frontend_bin, oci_root, "run", "--bundle", bundle, cid, env=REQUIRE)
    assert got.returncode == 0, got.stderr
    assert len(entries(oci_root)) == 1
    a = normalise(ref.stdout)
    for how, out in (("planned", first.stdout), ("stored", got.stdout)):
        b = normalise(out)
        for key in a:
            assert b[key] == a[key], f"{name} {how}: {key} differs\npython: {a[key]}\nfast: {b[key]}"
    assert not (oci_root / "stockade" / cid).exists() and not leftovers(cid)


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_stored_plan_sets_the_same_cgroup_limits(name: str, frontend_bin: str,
                                                 bundles: Bundles, oci_root: Path) -> None:
    cfg = bundles.config()
    cfg["process"]["args"] = ["true"]
    cfg["linux"]["resources"].update(RESOURCES[name])
    bundle = str(bundles.make(cfg))
    seen = {}
    for how, env in (("python", {"STOCKADE_FAST": "off"}), ("planned", {}), ("fast", REQUIRE)):
        cid = f"cg-{how}-{uuid.uuid4().hex[:6]}"
        r = fe(frontend_bin, oci_root, "create", "--bundle", bundle, cid, env=env, files=True)
        assert r.returncode == 0, r.stderr
        seen[how] = _cgroup_files(state(oci_root, cid)["pid"])
        assert fe(frontend_bin, oci_root, "delete", "--force", cid).returncode == 0
        assert not leftovers(cid)
    assert seen["fast"] == seen["python"] == seen["planned"]
    assert seen["fast"]["devices.list"] != "?" and seen["fast"]["pids.max"] != "?"


def _stored(frontend_bin: str, root: Path, bundle: str, env: dict[str, str] | None = None) -> None:
    """Create once (Python plans, the front end runs it), check the plan was stored,
    delete."""
    cid = f"s-{uuid.uuid4().hex[:6]}"
    r = fe(frontend_bin, root, "--debug", "create", "--bundle", bundle, cid, env=env,
           files=True)
    assert r.returncode == 0 and "fast plan: stored" in r.stderr, r.stderr
    assert fe(frontend_bin, root, "delete", "--force", cid).returncode == 0


def _bundle(bundles: Bundles, args: list[str], **extra: Any) -> str:
    cfg = bundles.config()
    cfg["process"]["args"] = args
    cfg.update(extra)
    return str(bundles.make(cfg))


def test_lifecycle_from_a_stored_plan(frontend_bin: str, bundles: Bundles, oci_root: Path,
                                      tmp_path: Path) -> None:
    bundle = _bundle(bundles, ["sh", "-c", "while :; do sleep 0.05; done"])
    _stored(frontend_bin, oci_root, bundle)
    pid_file = tmp_path / "pid"
    ids = ("l1", "l2")  # two at once
    for cid in ids:
        r = fe(frontend_bin, oci_root, "create", "--bundle", bundle, "--pid-file",
               str(pid_file), cid, env=REQUIRE, files=True)
        assert r.returncode == 0, r.stderr
        s = state(oci_root, cid)
        assert s["status"] == "created" and s["pid"] == int(pid_file.read_text())
        assert s["bundle"] == str(Path(bundle).resolve()) and s["id"] == cid
    again = fe(frontend_bin, oci_root, "create", "--bundle", bundle, "l1", env=REQUIRE,
               files=True)
    assert again.returncode == 125  # exists: not for the stored plan to judge
    again = fe(frontend_bin, oci_root, "create", "--bundle", bundle, "l1", files=True)
    assert again.returncode != 0 and "already exists" in again.stderr
    for cid in ids:
        assert fe(frontend_bin, oci_root, "start", cid).returncode == 0
        assert state(oci_root, cid)["status"] == "running"
    # the plan's cgroups include the freezer, as Python's: pause and resume work
    assert oci(oci_root, "pause", "l2").returncode == 0
    assert state(oci_root, "l2")["status"] == "paused"
    assert oci(oci_root, "resume", "l2").returncode == 0
    assert fe(frontend_bin, oci_root, "kill", "l1", "KILL").returncode == 0
    deadline = time.monotonic() + 5
    while state(oci_root, "l1")["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert state(oci_root, "l2")["status"] == "running"
    for cid in ids:
        assert fe(frontend_bin, oci_root, "delete", "--force", cid).returncode == 0
        assert not (oci_root / "stockade" / cid).exists() and not leftovers(cid)


def test_run_passes_status_signals_and_stdio(frontend_bin: str, bundles: Bundles,
                                             oci_root: Path) -> None:
    # (the signal case without a pid namespace: its first process ignores SIGTERM)
    cases = {"exit 7": 7, "kill -TERM $$": 143, "read x; echo got:$x": 0}
    for script, code in cases.items():
        cfg = bundles.config()
        cfg["process"]["args"] = ["sh", "-c", script]
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "pid"]
        bundle = str(bundles.make(cfg))
        _stored(frontend_bin, oci_root, bundle)
        r = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "st", env=REQUIRE,
               input_text="hello\n")
        assert r.returncode == code, (script, r.stderr)
        if code == 0:
            assert r.stdout == "got:hello\n"
        assert not (oci_root / "stockade" / "st").exists() and not leftovers("st")


def test_signals_reach_the_container(frontend_bin: str, bundles: Bundles,
                                     oci_root: Path) -> None:
    bundle = _bundle(bundles, ["sh", "-c", "trap 'echo term; exit 3' TERM; "
                               "echo up; while :; do sleep 0.02; done"])
    _stored(frontend_bin, oci_root, bundle)
    p = subprocess.Popen([frontend_bin, "--root", str(oci_root / "stockade"), "run",
                          "--bundle", bundle, "sig"], env={**os.environ, **REQUIRE},
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert p.stdout is not None
    assert p.stdout.readline() == "up\n"
    p.terminate()  # to the runtime, forwarded to the container
    assert p.wait(timeout=10) == 3
    assert p.stdout.read() == "term\n"
    assert not (oci_root / "stockade" / "sig").exists() and not leftovers("sig")


@pytest.fixture
def own_rootfs(shared_rootfs: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "rootfs-own"
    shutil.copytree(shared_rootfs, dest, symlinks=True)
    return dest


def _own_bundle(base: Path, rootfs_path: str, args: list[str], spec: dict[str, Any]) -> str:
    base.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(json.dumps(spec))
    cfg["process"]["args"] = args
    cfg["root"]["path"] = rootfs_path
    (base / "config.json").write_text(json.dumps(cfg))
    return str(base)


def test_a_changed_input_is_a_miss(frontend_bin: str, own_rootfs: Path, tmp_path: Path,
                                   runc_spec: dict[str, Any], oci_root: Path) -> None:
    bdir = tmp_path / "b"
    bdir.mkdir()
    first = bdir / "r1"
    shutil.copytree(own_rootfs, first, symlinks=True)
    (bdir / "rootfs").symlink_to("r1")
    bundle = _own_bundle(bdir, "rootfs", ["true"], runc_spec)

    def fast() -> subprocess.CompletedProcess[str]:
        return fe(frontend_bin, oci_root, "run", "--bundle", bundle, "m", env=REQUIRE)

    _stored(frontend_bin, oci_root, bundle)
    assert fast().returncode == 0
    # root.path is a symlink that now points elsewhere: inside the bundle, then outside
    shutil.copytree(own_rootfs, bdir / "r2", symlinks=True)
    (bdir / "rootfs").unlink()
    (bdir / "rootfs").symlink_to("r2")
    r = fast()
    assert r.returncode == 125 and "changed" in r.stderr
    _stored(frontend_bin, oci_root, bundle)
    assert fast().returncode == 0
    (bdir / "rootfs").unlink()
    (bdir / "rootfs").symlink_to(own_rootfs)
    r = fast()
    assert r.returncode == 125 and "changed" in r.stderr
    r = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "m")  # Python refuses it
    assert r.returncode == 2 and "outside the bundle" in r.stderr
    (bdir / "rootfs").unlink()
    (bdir / "rootfs").symlink_to("r2")
    # config.json itself
    cfg = json.loads((bdir / "config.json").read_text())
    cfg["process"]["env"].append("X=1")
    (bdir / "config.json").write_text(json.dumps(cfg))
    r = fast()
    assert r.returncode == 125 and "no stored plan" in r.stderr
    assert not (oci_root / "stockade" / "m").exists() and not leftovers("m")


def test_a_tampered_or_foreign_entry_is_not_used(frontend_bin: str, bundles: Bundles,
                                                 oci_root: Path, tmp_path: Path) -> None:
    bundle = _bundle(bundles, ["true"])
    _stored(frontend_bin, oci_root, bundle)
    (entry,) = entries(oci_root)
    data = entry.read_bytes()

    def fast(exe: str = frontend_bin) -> subprocess.CompletedProcess[str]:
        return fe(exe, oci_root, "run", "--bundle", bundle, "t", env=REQUIRE)

    entry.chmod(0o666)  # writable by others: not trusted
    assert fast().returncode == 125
    entry.chmod(0o600)
    entry.write_bytes(data[:-9])
    r = fast()
    assert r.returncode == 125 and "malformed" in r.stderr
    entry.write_bytes(data)
    assert fast().returncode == 0
    # a front end built from other sources does not read it; Python does not store for it
    from stockade.oci.frontend import build

    other = tmp_path / "other-fe"
    build(str(other), cli=shutil.which("false"), stamp="another-build")
    r = fast(str(other))
    assert r.returncode == 125 and "another build" in r.stderr
    r = subprocess.run([*oci_cmd(), "--root", str(oci_root / "stockade"), "--debug", "run",
                        "--bundle", bundle, "t2"], env={**os.environ,
                                                        "STOCKADE_FAST_STAMP": "another-build",
                                                        "STOCKADE_FAST_KEY": entry.name},
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 0 and "built from other sources" in r.stderr
    assert not (oci_root / "stockade" / "t").exists() and not leftovers("t")


def oci_cmd() -> list[str]:
    from tests.integration.oci.conftest import STOCKADE

    return STOCKADE


def test_a_failure_is_undone_and_python_reports_it(frontend_bin: str, own_rootfs: Path,
                                                   tmp_path: Path, runc_spec: dict[str, Any],
                                                   oci_root: Path) -> None:
    prog = own_rootfs / "bin" / "probe-prog"
    shutil.copy(own_rootfs / "bin" / "busybox", prog)
    bundle = _own_bundle(tmp_path / "b", str(own_rootfs), ["probe-prog", "true"], runc_spec)
    _stored(frontend_bin, oci_root, bundle)
    prog.unlink()
    r = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "f", env=REQUIRE)
    assert r.returncode == 125 and "command not found" in r.stderr
    assert not (oci_root / "stockade" / "f").exists() and not leftovers("f")
    r = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "f")  # falls back
    assert r.returncode == 127 and "command not found" in r.stderr
    assert not (oci_root / "stockade" / "f").exists() and not leftovers("f")


def test_what_is_not_stored(frontend_bin: str, bundles: Bundles, oci_root: Path,
                            tmp_path: Path) -> None:
    hook = {"path": "/bin/true"}
    cases = {
        "hooks": _bundle(bundles, ["true"], hooks={"poststop": [hook]}),
        "a terminal": _bundle(bundles, ["true"], process={
            **bundles.config()["process"], "args": ["true"], "terminal": True}),
    }
    for why, bundle in cases.items():
        r = fe(frontend_bin, oci_root, "--debug", "run", "--bundle", bundle, "n")
        assert r.returncode == 0, r.stderr
        assert f"not stored: {why}" in r.stderr, r.stderr
        assert not (oci_root / "stockade" / "n").exists()
    r = fe(frontend_bin, oci_root, "--debug", "run", "--policy", "default", "--bundle",
           _bundle(bundles, ["true"]), "n")
    assert r.returncode == 0, r.stderr
    assert "fast plan" not in r.stderr  # --policy: Python only, nothing stored
    assert entries(oci_root) == []


def test_cgroup_v2_from_a_stored_plan(frontend_bin: str, bundles: Bundles,
                                      oci_root: Path) -> None:
    """On cgroup v2 (this hybrid host's unified mount, forced): the container is born in
    its cgroup with clone3, the device rules are an eBPF program, and it sees what the
    Python path shows it."""
    from stockade.runner.cgroups import detect, is_cgroup2
    from tests.integration.oci.test_cgroup_v2 import _dirs, device_programs

    mount = detect().v2_mount
    if mount is None or not is_cgroup2(mount):
        pytest.skip("no cgroup2 mount on this host")
    v2 = {"STOCKADE_TEST_CGROUP_V2": "1"}
    bundle = str(bundles.make(probe_config(bundles)))
    ref = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "p", env={
        **v2, "STOCKADE_FAST": "off"})
    assert ref.returncode == 0, ref.stderr
    _stored(frontend_bin, oci_root, bundle, v2)
    # the plan was made for v2: without the switch it is not used
    r = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "q", env=REQUIRE)
    assert r.returncode == 125 and "host facts" in r.stderr
    got = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "q", env={**v2, **REQUIRE})
    assert got.returncode == 0, got.stderr
    a, b = normalise(ref.stdout), normalise(got.stdout)
    for key in a:
        assert b[key] == a[key], key
    r = fe(frontend_bin, oci_root, "create", "--bundle", bundle, "c2", env={**v2, **REQUIRE},
           files=True)
    assert r.returncode == 0, r.stderr
    (cg,) = _dirs(oci_root, "c2")
    assert device_programs(cg) == 1
    pid = state(oci_root, "c2")["pid"]
    assert f"0::{cg[len(mount):]}\n" in Path(f"/proc/{pid}/cgroup").read_text()
    assert fe(frontend_bin, oci_root, "delete", "--force", "c2").returncode == 0
    assert not os.path.exists(cg) and not leftovers("c2")


def test_home_comes_from_the_rootfs_when_it_runs(frontend_bin: str, own_rootfs: Path,
                                                 tmp_path: Path, runc_spec: dict[str, Any],
                                                 oci_root: Path) -> None:
    """No HOME in config.json: the front end reads the rootfs's /etc/passwd (inside the
    root) when it runs the plan, as translate does; a symlink cannot lead it out."""
    passwd = own_rootfs / "etc" / "passwd"
    passwd.parent.mkdir(exist_ok=True)
    bundle = _own_bundle(tmp_path / "b", str(own_rootfs), ["sh", "-c", "echo $HOME"],
                         runc_spec)
    expected = {"root:x:0:0:root:/root:/bin/sh\n": "/root\n",
                "root:x:0:0:root:/home/r2:/bin/sh\n": "/home/r2\n",
                "root:x:0:0:root::/bin/sh\n": "/\n",
                "daemon:x:1:1::/d:/bin/sh\n": "/\n"}
    _stored(frontend_bin, oci_root, bundle)  # once: the plan holds no HOME
    for content, home in expected.items():
        passwd.unlink(missing_ok=True)
        passwd.write_text(content)
        ref = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "h",
                 env={"STOCKADE_FAST": "off"})
        assert ref.stdout == home, (content, ref.stderr)
        got = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "h", env=REQUIRE)
        assert got.returncode == 0 and got.stdout == home, (content, got.stderr)
    host_file = tmp_path / "host-passwd"
    host_file.write_text("root:x:0:0:root:/host-home:/bin/sh\n")
    passwd.unlink()
    passwd.symlink_to(host_file)  # absolute: resolved inside the rootfs, so missing there
    got = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "h", env=REQUIRE)
    assert got.returncode == 0 and got.stdout == "/\n"


def test_a_new_config_runs_without_the_python_runner(frontend_bin: str, bundles: Bundles,
                                                     oci_root: Path) -> None:
    """The first run of a config.json: Python plans, then execs the front end, which
    runs the container as its own child (seen from inside without a pid namespace)."""
    cfg = bundles.config()
    cfg["process"]["args"] = ["sh", "-c", "cat /proc/$PPID/comm"]
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]
    bundle = str(bundles.make(cfg))
    r = fe(frontend_bin, oci_root, "--debug", "run", "--bundle", bundle, "new")
    assert r.returncode == 0 and "fast plan: stored" in r.stderr, r.stderr
    assert r.stdout == "stockade-oci\n"
    r = fe(frontend_bin, oci_root, "run", "--bundle", bundle, "new", env={"STOCKADE_FAST": "off"})
    assert r.returncode == 0 and r.stdout != "stockade-oci\n"  # Python's own runner


def test_devices_and_a_cpuset_run_from_a_stored_plan(frontend_bin: str, bundles: Bundles,
                                                     oci_root: Path) -> None:
    """linux.devices and a cpuset were Python's only; the executor makes both, so the
    front end stores such a plan and runs it the same: the node exists with its mode, the
    container's cpuset has its parent's memory nodes and the cpus asked for."""
    cfg = bundles.config()
    cfg["process"]["args"] = ["sh", "-c", "stat -c '%A %u %g %t,%T' /dev/fuse; "
                              "grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status"]
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                "fileMode": 0o640, "uid": 0, "gid": 0}]
    cfg["linux"].setdefault("resources", {})["cpu"] = {"cpus": "0", "mems": "0"}
    bundle = str(bundles.make(cfg))
    outputs = {}
    for how, env in (("python", {"STOCKADE_FAST": "off"}), ("stored", None),
                     ("fast", REQUIRE)):
        cid = f"dv-{how}-{uuid.uuid4().hex[:6]}"
        r = fe(frontend_bin, oci_root, "--debug", "run", "--bundle", bundle, cid, env=env)
        assert r.returncode == 0, (how, r.stderr)
        if how == "stored":
            assert "fast plan: stored" in r.stderr, r.stderr
        outputs[how] = r.stdout
        assert fe(frontend_bin, oci_root, "delete", "--force", cid).returncode == 0
        assert not leftovers(cid)
    assert outputs["python"] == outputs["fast"] == outputs["stored"]
    assert outputs["fast"].startswith("crw-r----- 0 0 a,e5\n")  # 10, 229 in hex
    assert "Cpus_allowed_list:\t0\n" in outputs["fast"]
