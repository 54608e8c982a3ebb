"""`stockade oci exec` against `runc exec`: the same bundle created under both, the same
exec into each, a probe printing what the exec'd process sees (capabilities,
no_new_privs, seccomp, ids, whether its namespaces and cgroups are the container's, its
limits, cwd, env, the blocked syscall, the mount table): both must agree."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.oci.conftest import RUNTIMES, Bundles, oci
from tests.integration.oci.test_differential import _seccomp, _userns, mounts, sections

LOOP = ["sh", "-c", "while :; do sleep 0.05; done"]
PROBE = r"""
echo '== status'; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
echo '== ids'; id -u; id -g; id -G
echo '== ns'; for n in cgroup ipc mnt net pid user uts; do
  if [ "$(readlink /proc/self/ns/$n)" = "$(readlink /proc/1/ns/$n)" ]; then echo "$n same"
  else echo "$n differs"; fi; done
echo '== cgroup'; if [ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ]; then echo same
  else echo differs; fi
echo '== hostname'; hostname
echo '== limits'; cat /proc/self/limits
echo '== cwd'; pwd
echo '== env'; env | grep -E '^(PROBE_|FOO=|HOME=|PATH=)' | sort
echo '== blocked'; mkdir /dev/shm/probe 2>&1 | sed 's/^.*: //'; echo "rc=$?"; rmdir /dev/shm/probe 2>/dev/null
echo '== mounts'; cat /proc/self/mountinfo
"""


def normalise(out: str) -> dict[str, Any]:
    s = sections(out)
    m = mounts(s.get("mounts", []))
    m.pop("/dev", None)  # stockade's /dev is a read-only tmpfs (docs/OCI.md)
    return {k: s.get(k) for k in ("status", "ids", "ns", "cgroup", "hostname", "limits", "cwd",
                                  "env", "blocked")} | {"mounts": m}


@pytest.fixture
def created(bundles: Bundles, twins: Callable[..., str]) -> Callable[..., str]:
    """make(config mutator) -> id: the same container created and started in both."""
    def make(mutate: Callable[[dict[str, Any]], None] | None = None) -> str:
        cfg = bundles.config()
        cfg["process"]["args"] = LOOP
        cfg["process"]["env"].append("PROBE_X=1")
        cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] != "cgroup"]
        if mutate is not None:
            mutate(cfg)
        return twins(cfg, prefix="ex")

    return make


def both(root: Path, cid: str, *args: str) -> dict[str, subprocess.CompletedProcess[str]]:
    return {rt: oci(root, "exec", *_split(args, cid), runtime=rt) for rt in RUNTIMES}


def _split(args: tuple[str, ...], cid: str) -> list[str]:
    """exec [flags...] ID COMMAND...: flags come before a "--" marker in `args`."""
    i = args.index("--")
    return [*args[:i], cid, *args[i + 1:]]


def agree(got: dict[str, subprocess.CompletedProcess[str]], what: str) -> dict[str, Any]:
    for rt, r in got.items():
        assert r.returncode == 0, (what, rt, r.stderr)
    a, b = normalise(got["runc"].stdout), normalise(got["stockade"].stdout)
    for key in a:
        assert b[key] == a[key], f"{what}: {key}\nrunc: {a[key]}\nstockade: {b[key]}"
    return b


CASES: dict[str, tuple[Callable[[dict[str, Any]], None] | None, tuple[str, ...]]] = {
    "default": (None, ()),
    "userns": (_userns, ()),
    "seccomp": (_seccomp("SCMP_ACT_ERRNO", 28), ()),
    "user-groups": (None, ("--user", "1000:1000", "--additional-gids", "10",
                           "--additional-gids", "20")),
    "cap": (None, ("--cap", "CAP_SYS_ADMIN", "--cap", "CAP_CHOWN")),
    "env-cwd": (None, ("--env", "FOO=bar baz", "--env", "PROBE_X=2", "--cwd", "/tmp")),
    "nnp-flag": (lambda cfg: cfg["process"].__setitem__("noNewPrivileges", False),
                 ("--no-new-privs",)),
    "no-nnp": (lambda cfg: cfg["process"].__setitem__("noNewPrivileges", False), ()),
    "rlimits": (lambda cfg: cfg["process"].__setitem__(
        "rlimits", [{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 88}]), ()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_exec_agrees_with_runc(name: str, created: Callable[..., str], oci_root: Path) -> None:
    mutate, flags = CASES[name]
    cid = created(mutate)
    seen = agree(both(oci_root, cid, *flags, "--", "sh", "-c", PROBE), name)
    assert seen["ns"] == [f"{n} same" for n in ("cgroup", "ipc", "mnt", "net", "pid", "user",
                                                "uts")] or "user-groups" in name
    assert seen["cgroup"] == ["same"] or "user-groups" in name


def test_process_file_agrees(created: Callable[..., str], oci_root: Path,
                             tmp_path: Path) -> None:
    cid = created()
    proc = {"args": ["sh", "-c", PROBE], "cwd": "/tmp", "env": ["PATH=/bin", "FOO=file"],
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                             "permitted": ["CAP_KILL"]},
            "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}]}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(proc))
    agree(both(oci_root, cid, "--process", str(path), "--"), "process file")


def test_status_detach_and_pid_file(created: Callable[..., str], oci_root: Path,
                                    tmp_path: Path) -> None:
    cid = created()
    got = both(oci_root, cid, "--", "sh", "-c", "exit 7")
    assert {rt: r.returncode for rt, r in got.items()} == {"runc": 7, "stockade": 7}
    pid_file = tmp_path / "exec.pid"
    r = oci(oci_root, "exec", "--detach", "--pid-file", str(pid_file), cid, *LOOP)
    assert r.returncode == 0, r.stderr
    pid = int(pid_file.read_text())
    init = json.loads(oci(oci_root, "state", cid).stdout)["pid"]
    assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init}/cgroup").read_text()
    for ns in ("mnt", "pid", "net", "uts", "ipc"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}")
    status = Path(f"/proc/{pid}/status").read_text()
    assert "NoNewPrivs:\t1" in status and "CapEff:\t0000000020000420" in status
    os.kill(pid, 9)


def test_the_interpreter_is_closed_to_the_container(created: Callable[..., str],
                                                    oci_root: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Until its execve the exec'd process is the runtime's Python, waiting at its gate
    inside the container's pid namespace. It is non-dumpable, so nothing in the container
    can open its /proc/<pid>/exe or environ (CVE-2019-5736); the container's own
    (dumpable) first process shows that the probe would see them otherwise."""
    from stockade.oci import config, execute, state

    cid = created()
    root = oci_root / "stockade"
    seen: dict[str, str] = {}
    release = execute._release

    def paused(pid: int, *args: Any) -> int:
        status = Path(f"/proc/{pid}/status").read_text()
        nspid = next(x for x in status.splitlines() if x.startswith("NSpid:")).split()[-1]
        probe = oci(oci_root, "exec", cid, "sh", "-c",
                    f"test -e /proc/{nspid} && echo visible; "
                    f"cat /proc/{nspid}/exe >/dev/null 2>&1 && echo EXE-OPEN; "
                    f"cat /proc/{nspid}/environ >/dev/null 2>&1 && echo ENV-OPEN; "
                    "cat /proc/1/exe >/dev/null 2>&1 && echo init-exe-open")
        seen["probe"] = probe.stdout
        return release(pid, *args)

    monkeypatch.setattr(execute, "_release", paused)
    data = state.read(str(root), cid)
    cfg = config.load(str(data["bundle"]))
    proc = execute.process_for(cfg, process_file=None, command=["true"], env=[], cwd=None,
                               user=None, groups=[], caps=[], no_new_privs=False, tty=False,
                               apparmor=None, label=None)
    assert execute.exec_in(str(root), cid, data, proc, cfg) == 0
    assert seen["probe"].split() == ["visible", "init-exe-open"], seen["probe"]


def test_exec_errors(created: Callable[..., str], oci_root: Path, bundles: Bundles) -> None:
    cid = created()
    r = oci(oci_root, "exec", cid)
    assert r.returncode == 2 and "no command given" in r.stderr
    r = oci(oci_root, "exec", cid, "no-such-program")
    assert r.returncode == 127 and "command not found" in r.stderr
    r = oci(oci_root, "exec", "--tty", "--detach", cid, "true")
    assert r.returncode == 2 and "console-socket" in r.stderr
    r = oci(oci_root, "exec", "--user", "x", cid, "true")
    assert r.returncode == 2 and "UID[:GID]" in r.stderr
    r = oci(oci_root, "exec", "missing-one", "true")
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert oci(oci_root, "kill", cid, "KILL").returncode == 0
    deadline = time.monotonic() + 5
    while json.loads(oci(oci_root, "state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = oci(oci_root, "exec", cid, "true")
    assert r.returncode == 2 and "not running" in r.stderr


def test_tty_through_a_console_socket(created: Callable[..., str], oci_root: Path,
                                      tmp_path: Path) -> None:
    cid = created()
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    proc = subprocess.Popen(
        [*_stockade(), "--root", str(oci_root / "stockade"), "exec", "--tty",
         "--console-socket", path, cid, "sh", "-c", "tty; echo via-pty"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server.settimeout(10)
    conn, _ = server.accept()
    _, fds, _, _ = socket.recv_fds(conn, 64, 1)
    (master,) = fds
    out = b""
    deadline = time.monotonic() + 10
    while b"via-pty" not in out and time.monotonic() < deadline:
        try:
            out += os.read(master, 4096)
        except OSError:
            break
    assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
    assert b"/dev/pts/" in out and b"via-pty" in out
    os.close(master)
    conn.close()
    server.close()


def _stockade() -> list[str]:
    from tests.integration.oci.conftest import STOCKADE

    return STOCKADE


def test_ps_agrees_with_runc(created: Callable[..., str], oci_root: Path) -> None:
    """runc ps --format json: the pids of the container's cgroup, an exec'd one included;
    the table is ps's lines of those pids."""
    cid = created()
    for rt in RUNTIMES:  # the same checks hold for both
        r = oci(oci_root, "exec", "--detach", cid, *LOOP, runtime=rt)
        assert r.returncode == 0, (rt, r.stderr)
        deadline = time.monotonic() + 5
        while True:
            got = oci(oci_root, "ps", "--format", "json", cid, runtime=rt)
            assert got.returncode == 0, (rt, got.stderr)
            pids = json.loads(got.stdout)
            if len(pids) >= 3 or time.monotonic() > deadline:  # init, exec'd loop, a sleep
                break
            time.sleep(0.05)
        init = json.loads(oci(oci_root, "state", cid, runtime=rt).stdout)["pid"]
        assert init in pids and len(pids) >= 2
        table = oci(oci_root, "ps", cid, runtime=rt).stdout.splitlines()
        assert table[0].split()[:2] == ["UID", "PID"]
        listed = {int(line.split()[1]) for line in table[1:]}
        stable = {p for p in pids if Path(f"/proc/{p}/comm").exists()
                  and Path(f"/proc/{p}/comm").read_text().strip() == "sh"}
        assert init in listed and stable <= listed and len(stable) == 2  # init, exec'd
        assert os.getpid() not in listed and 1 not in listed  # only the container's
    r = oci(oci_root, "ps", "missing-one")
    assert r.returncode == 2 and "does not exist" in r.stderr
