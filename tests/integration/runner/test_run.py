"""`stockade run` on the real kernel, as root: what the payload sees, limits, exits.

Each test checks the real precondition (root) and skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import stockade
from stockade.errors import RunnerError
from stockade.policy.model import Policy
from tests.conftest import require_root
from tests.integration.runner.conftest import no_resources, with_resources

pytestmark = pytest.mark.root
HERE = Path(__file__).parent
CLI = [sys.executable, "-m", "stockade", "run"]
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


def sh(script: str, policy: Policy | str = "default", **kw: object) -> stockade.RunResult:
    return stockade.run(["/bin/sh", "-c", script], policy=policy, env=ENV, **kw)  # type: ignore[arg-type]


def capture(argv: list[str], policy: Policy | str = "default", **kw: object) -> tuple[int, str]:
    """Run with stdout into a pipe (the sandbox writes to our fd 1 via a temp file)."""
    import tempfile

    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            res = stockade.run(argv, policy=policy, env=ENV, **kw)  # type: ignore[arg-type]
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return res.exit_code, tmp.read().decode()


def status_of(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_status_caps_nnp_seccomp(default_policy: Policy, leak_check: None) -> None:
    from stockade.policy.vocab.capabilities import cap_mask

    rc, out = capture(["/bin/cat", "/proc/self/status"], default_policy)
    assert rc == 0
    st = status_of(out)
    kept = cap_mask(default_policy.capabilities.kept)
    assert int(st["CapEff"], 16) == kept
    assert int(st["CapBnd"], 16) == kept
    assert int(st["CapPrm"], 16) == kept
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"].strip() == "1"
    assert st["Seccomp"].strip() == "2"


def test_namespaces_differ_and_uid_map_is_not_identity(leak_check: None) -> None:
    script = "for n in user pid mnt net ipc uts cgroup; do readlink /proc/self/ns/$n; done; " \
             "cat /proc/self/uid_map; echo PID=$$; hostname"
    rc, out = capture(["/bin/sh", "-c", script])
    assert rc == 0
    lines = out.splitlines()
    inside = lines[:7]
    for link in inside:
        kind = link.split(":")[0]
        name = "mnt" if kind == "mnt" else kind
        assert link != os.readlink(f"/proc/self/ns/{name}"), link
    uid_map = lines[7].split()
    assert uid_map != ["0", "0", "4294967295"]
    assert uid_map[1] != "0"
    assert "PID=2" in out  # the payload is not PID 1: a tiny init is
    assert lines[-1] == "default"


def test_rootfs_busybox_and_binds(busybox_rootfs: Path, tmp_path: Path, leak_check: None) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("hello\n")
    rw = tmp_path / "rw"
    rw.mkdir()
    rw.chmod(0o777)
    rc, out = capture(
        ["sh", "-c", "cat /in/f; echo x > /in/g || echo RO; echo y > /rw/y && echo RW; "
         "ls /proc/sys/kernel/core_pattern; echo z > /etc/z || echo ROOTRO"],
        rootfs=str(busybox_rootfs), binds=[f"{src}:/in:ro", f"{rw}:/rw"])
    assert rc == 0, out
    assert "hello" in out and "RO" in out and "RW" in out and "ROOTRO" in out
    assert (rw / "y").read_text() == "y\n"
    assert not (src / "g").exists()


def test_symlink_in_rootfs_cannot_redirect_a_mount(busybox_rootfs: Path, tmp_path: Path,
                                                  leak_check: None) -> None:
    import shutil

    root = tmp_path / "root"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    # The rootfs says /mnt is a symlink to the host's victim dir: the bind must land inside.
    (root / "mnt").symlink_to(victim)
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("m")
    try:
        rc, out = capture(["sh", "-c", "ls /mnt/"], rootfs=str(root), binds=[f"{src}:/mnt:ro"])
    except RunnerError as exc:  # refusing is fine: the target resolves to nothing inside
        assert exc.step == "rootfs"
    assert list(victim.iterdir()) == []  # nothing mounted or created on the host path


def test_oom_killed_and_reported(default_policy: Policy, leak_check: None) -> None:
    pol = with_resources(default_policy, memory=32 << 20, swap=0, pids=64)
    res = stockade.run(["/usr/bin/python3", "-c", "x = bytearray(200 << 20)"], policy=pol,
                       env=ENV)
    assert res.oom_killed
    assert res.exit_code == 137 and res.signal == signal.SIGKILL
    assert res.memory_peak is not None and res.memory_peak <= 33 << 20
    assert res.cgroup == "v1"


def test_fork_bomb_stops_at_pids(default_policy: Policy, leak_check: None) -> None:
    pol = with_resources(default_policy, pids=16)
    res = sh("i=0; while [ $i -lt 60 ]; do sleep 3 & i=$((i+1)); done 2>/dev/null; "
             "echo started; kill 0", pol)
    assert res.pids_peak is not None and res.pids_peak <= 16
    assert not res.oom_killed


def test_cpu_is_throttled(default_policy: Policy, leak_check: None) -> None:
    pol = with_resources(default_policy, cpu=0.25)
    t0 = time.monotonic()
    res = sh("timeout 1 sh -c 'while :; do :; done'; true", pol)
    wall = time.monotonic() - t0
    assert res.cpu_time_ns is not None
    used = res.cpu_time_ns / 1e9
    # 0.25 core for ~1 s: well under a full core, with tolerance for start-up and jitter.
    assert 0.02 < used < 0.5, (used, wall)


def test_nofile_limit_holds(default_policy: Policy) -> None:
    import dataclasses
    from types import MappingProxyType

    pol = dataclasses.replace(default_policy, rlimits=MappingProxyType({"nofile": 32}),
                              digest=default_policy.digest + "-nofile")
    rc, out = capture(["/usr/bin/python3", "-c",
                       "import os\nn=0\ntry:\n  while True: os.open('/dev/null', 0); n+=1\n"
                       "except OSError as e: print('stopped', n+3, e.errno)"], pol)
    assert rc == 0
    assert out.split()[:3] == ["stopped", "32", "24"]  # EMFILE at exactly the limit


def test_exit_status_and_signal() -> None:
    assert sh("exit 7").exit_code == 7
    res = sh("kill -TERM $$")
    assert res.exit_code == 128 + signal.SIGTERM and res.signal == signal.SIGTERM


def test_command_not_found_is_127(leak_check: None) -> None:
    with pytest.raises(RunnerError) as exc:
        stockade.run(["no-such-command-xyz"], env=ENV)
    assert exc.value.exit_code == 127 and exc.value.step == "exec"
    proc = subprocess.run([*CLI, "--", "/nonexistent/bin"], capture_output=True, text=True)
    assert proc.returncode == 127
    assert "step 'exec' failed" in proc.stderr


def test_env_is_only_what_is_passed() -> None:
    rc, out = capture(["/usr/bin/env"])
    assert rc == 0 and out.strip().splitlines() == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


def test_fds_above_2_are_closed_and_cwd_inside(tmp_path: Path) -> None:
    leak = os.open(str(tmp_path), os.O_RDONLY)  # inheritable host directory fd
    os.set_inheritable(leak, True)
    try:
        rc, out = capture(["/bin/sh", "-c", "ls /proc/self/fd; pwd"], cwd="/tmp")
    finally:
        os.close(leak)
    assert rc == 0
    fds = out.split()[:-1]
    assert set(fds) <= {"0", "1", "2", "3"}  # 3 = ls's own directory fd
    assert out.split()[-1] == "/tmp"


def test_cwd_outside_root_is_refused() -> None:
    with pytest.raises(RunnerError) as exc:
        stockade.run(["/bin/true"], env=ENV, cwd="/proc/self/fd/3")
    assert exc.value.step == "hygiene"


def test_signals_are_forwarded(tmp_path: Path) -> None:
    proc = subprocess.Popen([*CLI, "-e", "PATH", "--", "/bin/sh", "-c",
                             "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 42


def test_tty(tmp_path: Path) -> None:
    proc = subprocess.run([*CLI, "--tty", "--", "/bin/sh", "-c", "test -t 0 && test -t 1 && echo TTY"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert "TTY" in proc.stdout


def test_dry_run_and_json_report(tmp_path: Path) -> None:
    proc = subprocess.run([*CLI, "--dry-run", "--", "/bin/true"], capture_output=True,
                          text=True)
    assert proc.returncode == 0
    for word in ("uid_map", "mount       proc", "cap bnd", "seccomp", "cgroup      pids=1024"):
        assert word in proc.stdout
    report = tmp_path / "r.json"
    proc = subprocess.run([*CLI, "--json-report", str(report), "--", "/bin/sh", "-c", "exit 3"],
                          capture_output=True, text=True)
    assert proc.returncode == 3
    data = json.loads(report.read_text())
    assert data["exit_code"] == 3 and data["cgroup"] == "v1"
    assert {"memory_peak_bytes", "cpu_time_ns", "pids_peak", "oom_killed"} <= set(data)


def test_classic_escapes_fail(default_policy: Policy, leak_check: None) -> None:
    runner_binary = os.path.realpath(sys.executable)
    # the payload's source goes in as -c: the checkout may live under /tmp, which the
    # sandbox replaces with its own tmpfs
    rc, out = capture(["/usr/bin/python3", "-c", (HERE / "escape_payload.py").read_text(), runner_binary],
                      default_policy)
    assert rc == 0, out
    results = json.loads(out.strip().splitlines()[-1])
    escaped = {k: v for k, v in results.items() if not str(v).startswith("blocked")}
    assert not escaped, results
    assert len(results) == 10


def test_classic_escapes_fail_under_strict(leak_check: None) -> None:
    runner_binary = os.path.realpath(sys.executable)
    rc, out = capture(["/usr/bin/python3", "-c", (HERE / "escape_payload.py").read_text(), runner_binary],
                      "strict")
    results = json.loads(out.strip().splitlines()[-1])
    escaped = {k: v for k, v in results.items() if not str(v).startswith("blocked")}
    assert not escaped, results


def test_two_hundred_runs_leak_nothing(default_policy: Policy, leak_check: None) -> None:
    pol = no_resources(default_policy)
    stockade.run(["/bin/true"], policy=pol, env=ENV)  # warm the plan cache
    for _ in range(200):
        assert stockade.run(["/bin/true"], policy=pol, env=ENV).exit_code == 0


def test_no_init_payload_is_pid_1() -> None:
    rc, out = capture(["/bin/sh", "-c", "echo PID=$$"], init=False)
    assert rc == 0 and "PID=1" in out


def test_from_a_multithreaded_caller(default_policy: Policy, leak_check: None) -> None:
    """With other threads alive the launch goes through a forked single-threaded helper;
    concurrent runs from several threads each get their own sandbox and result."""
    import threading

    pol = no_resources(default_policy)
    results: dict[int, int] = {}

    def worker(n: int) -> None:
        results[n] = stockade.run(["/bin/sh", "-c", f"exit {n}"], policy=pol, env=ENV).exit_code

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {1: 1, 2: 2, 3: 3, 4: 4}
    stop = threading.Event()
    idle = threading.Thread(target=stop.wait)
    idle.start()
    try:
        with pytest.raises(RunnerError) as exc:  # errors cross the helper intact
            stockade.run(["no-such-command-xyz"], env=ENV)
    finally:
        stop.set()
        idle.join()
    assert exc.value.step == "exec" and exc.value.exit_code == 127


def test_bundle(busybox_rootfs: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2", "root": {"path": str(busybox_rootfs), "readonly": True},
        "hostname": "bx",
        "process": {"args": ["sh", "-c", "echo $FOO; pwd; hostname"], "cwd": "/etc",
                    "env": ["FOO=bar", "PATH=/bin"]}}))
    proc = subprocess.run([*CLI, "--bundle", str(bundle)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["bar", "/etc", "bx"]


def test_non_root_user_and_ambient_caps(default_policy: Policy) -> None:
    from stockade.policy.model import Capabilities, User

    caps = Capabilities(drop=("ALL",), add=("NET_BIND_SERVICE",), ambient=("NET_BIND_SERVICE",),
                        kept=frozenset({"CAP_NET_BIND_SERVICE"}))
    import dataclasses

    pol = dataclasses.replace(default_policy, user=User(uid=1000, gid=1000),
                              capabilities=caps, digest=default_policy.digest + "-amb")
    rc, out = capture(["/bin/sh", "-c", "id -u; id -g; cat /proc/self/status"], pol)
    assert rc == 0
    lines = out.splitlines()
    assert lines[:2] == ["1000", "1000"]
    st = status_of(out)
    bit = 1 << 10  # CAP_NET_BIND_SERVICE
    assert int(st["CapAmb"], 16) == bit and int(st["CapEff"], 16) == bit
    assert int(st["CapInh"], 16) == bit and int(st["CapBnd"], 16) == bit


def test_without_no_new_privs(default_policy: Policy) -> None:
    import dataclasses

    pol = dataclasses.replace(default_policy, no_new_privileges=False,
                              digest=default_policy.digest + "-nnp0")
    rc, out = capture(["/bin/cat", "/proc/self/status"], pol)
    assert rc == 0
    st = status_of(out)
    assert st["NoNewPrivs"].strip() == "0" and st["Seccomp"].strip() == "2"


def test_stdin_passes_through(tmp_path: Path) -> None:
    proc = subprocess.run([*CLI, "--", "/bin/cat"], input="piped\n", capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == "piped\n"


def test_writable_symlink_in_rootfs_cannot_reach_the_host(default_policy: Policy,
                                                          busybox_rootfs: Path,
                                                          tmp_path: Path) -> None:
    """filesystem.writable in a rootfs is re-bound inside it: a symlink planted in the
    rootfs (here to a host directory) resolves inside the root, never to the host path."""
    import dataclasses
    import shutil

    from stockade.errors import Location
    from stockade.policy.model import PathEntry

    root = tmp_path / "root"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    host_dir.chmod(0o777)
    (root / "data").symlink_to(host_dir)  # absolute: means <root>/<host_dir> inside
    fs = dataclasses.replace(default_policy.filesystem,
                             writable=(PathEntry("/data", Location("test")),))
    pol = dataclasses.replace(default_policy, filesystem=fs,
                              digest=default_policy.digest + "-wsym")
    try:
        capture(["sh", "-c", "echo pwn > /data/x"], pol, rootfs=str(root))
    except RunnerError as exc:
        assert exc.step == "rootfs"  # refusing is fine too
    assert not (host_dir / "x").exists()


def test_writable_in_rootfs(default_policy: Policy, busybox_rootfs: Path, tmp_path: Path) -> None:
    import dataclasses
    import shutil

    from stockade.errors import Location
    from stockade.policy.model import PathEntry

    root = tmp_path / "root"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    (root / "wdir").mkdir()
    (root / "wdir").chmod(0o777)
    fs = dataclasses.replace(default_policy.filesystem,
                             writable=(PathEntry("/wdir", Location("test")),))
    pol = dataclasses.replace(default_policy, filesystem=fs, digest=default_policy.digest + "-w")
    rc, out = capture(["sh", "-c", "echo ok > /wdir/x && echo W; echo no > /etc/y || echo RO"],
                      pol, rootfs=str(root))
    assert rc == 0 and out.split() == ["W", "RO"]
    assert (root / "wdir" / "x").read_text() == "ok\n"


@pytest.mark.parametrize("no_init", [False, True])
def test_sandbox_dies_with_a_killed_runner(no_init: bool) -> None:
    """SIGKILL skips the runner's cleanup: PR_SET_PDEATHSIG (set again after every uid
    change, which clears it) takes the sandbox down; the empty cgroup is reaped later."""
    import glob

    extra = ["--no-init"] if no_init else []
    proc = subprocess.Popen([*CLI, *extra, "--", "/bin/sh", "-c", "echo ready; sleep 30"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    dirs = glob.glob(f"/sys/fs/cgroup/pids/**/stockade/{proc.pid}-*", recursive=True)
    assert dirs, "the run's cgroup"
    procs_file = os.path.join(dirs[0], "cgroup.procs")
    with open(procs_file) as fh:
        assert fh.read().split()
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    left = ["?"]
    while time.monotonic() < deadline:
        with open(procs_file) as fh:
            left = fh.read().split()
        if not left:
            break
        time.sleep(0.05)
    assert not left, f"sandbox processes outlived the runner: {left}"
    for d in glob.glob(f"/sys/fs/cgroup/**/stockade/{proc.pid}-*", recursive=True):
        os.rmdir(d)
