"""A corpus of REAL containers, one per misconfiguration, started once per session.

Docker containers come from the session's private dockerd; runc containers from bundles
with a busybox rootfs and their own state root. Everything is removed in `close()`, which
the fixtures call at teardown and the host-unchanged test calls early (it is idempotent).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Dockerd, make_busybox_rootfs, require_root, require_tool

PYTHON = os.path.realpath(sys.executable)
PY_PREFIX = str(Path(PYTHON).parent.parent)  # the interpreter's install prefix
SITE = str(REPO / ".venv" / "lib" / "python3.11" / "site-packages")
SELF_ENV = {"PYTHONPATH": f"{REPO / 'src'}:{SITE}", "PYTHONDONTWRITEBYTECODE": "1",
            "PATH": "/bin:/usr/bin"}


def python_binds() -> list[tuple[str, str]]:
    """What `--self` needs inside a busybox container: the host's interpreter, its shared
    libraries and this checkout, all read-only. None of these is a sensitive host dir."""
    binds = [(PY_PREFIX, PY_PREFIX), (str(REPO), str(REPO))]
    libdir = os.path.realpath("/lib/x86_64-linux-gnu")
    binds.append((libdir, "/lib/x86_64-linux-gnu"))
    binds.append((os.path.realpath("/lib64/ld-linux-x86-64.so.2"), "/lib64/ld-linux-x86-64.so.2"))
    return binds


SELF_CMD = [PYTHON, "-S", "-m", "stockade", "audit", "--self", "--format", "json", "--fail-on", "critical"]

# name -> docker run arguments (before the image). The expected verdicts are in the tests.
DOCKER_ROWS: dict[str, list[str]] = {
    "baseline": [],
    "limits": ["--memory", "64m", "--pids-limit", "64"],
    "cap-sys-admin": ["--cap-add", "SYS_ADMIN"],
    "cap-dac-read-search": ["--cap-add", "DAC_READ_SEARCH"],
    "cap-sys-module": ["--cap-add", "SYS_MODULE"],
    "cap-sys-ptrace-hostpid": ["--cap-add", "SYS_PTRACE", "--pid", "host"],
    "cap-sys-rawio": ["--cap-add", "SYS_RAWIO"],
    "cap-net-admin": ["--cap-add", "NET_ADMIN"],
    "cap-net-admin-hostnet": ["--cap-add", "NET_ADMIN", "--net", "host"],
    "cap-syslog": ["--cap-add", "SYSLOG"],
    "seccomp-unconfined": ["--security-opt", "seccomp=unconfined"],
    "docker-sock": ["-v", "{sock}:/var/run/docker.sock"],
    "docker-sock-ro": ["-v", "{sock}:/var/run/docker.sock:ro"],
    "host-pid": ["--pid", "host"],
    "host-net": ["--net", "host"],
    "host-ipc": ["--ipc", "host"],
    "host-uts": ["--uts", "host"],
    "host-root": ["-v", "/:/host"],
    "host-etc": ["-v", "/etc:/host-etc"],
    "host-etc-ro": ["-v", "/etc:/host-etc:ro"],
    "second-proc": ["-v", "/proc:/host/proc"],
    "masked-off": ["--security-opt", "systempaths=unconfined"],
    "block-device": ["--device", "/dev/loop0:/dev/loop0"],
    "devices-allow-all": ["--device-cgroup-rule", "a *:* rwm"],
    "secrets": ["-e", "DB_PASSWORD=s3cr3t-value-never-printed", "-v", "{token}:/var/run/secrets/kubernetes.io/serviceaccount:ro"],
    "shared-propagation": ["-v", "{scratch}:/shared:rshared"],
    "route-localnet": ["--sysctl", "net.ipv4.conf.all.route_localnet=1"],
    "latent-caps": ["--cap-add", "SYS_ADMIN", "--user", "1000:1000"],
    # the proof needs a private mount namespace (CAP_SYS_ADMIN) to mknod without touching the
    # container's own files; this row shows it succeeding
    "devices-allow-all-sysadmin": ["--device-cgroup-rule", "a *:* rwm", "--cap-add", "SYS_ADMIN"],
}


@dataclass
class DockerCorpus:
    daemon: Dockerd
    names: dict[str, str] = field(default_factory=dict)  # row -> container name
    ids: list[str] = field(default_factory=list)  # full container ids (cgroup names)
    scratch: str = ""  # host dirs the rows bind in (a fake token, a shared mount source)
    closed: bool = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.names:
            self.daemon.docker("rm", "-f", *self.names.values(), check=False, timeout=120)
        if self.scratch:
            subprocess.run(["umount", "-l", os.path.join(self.scratch, "shared")], capture_output=True)
            shutil.rmtree(self.scratch, ignore_errors=True)


TOKEN_VALUE = "fake-token-value-never-printed"


def _docker_args(row: list[str], sock: str, scratch: str) -> list[str]:
    token = os.path.join(scratch, "token")
    args = [a.replace("{sock}", sock).replace("{token}", token).replace("{scratch}", scratch + "/shared")
            for a in row]
    for src, dst in python_binds():
        args += ["-v", f"{src}:{dst}:ro"]
    return args


@pytest.fixture(scope="session")
def host_before(dockerd: Dockerd) -> dict[str, Any]:
    """Host state after dockerd is up and before any corpus container exists."""
    from .hoststate import snapshot

    return snapshot()


@pytest.fixture(scope="session")
def docker_corpus(dockerd: Dockerd, host_before: dict[str, Any]) -> Iterator[DockerCorpus]:
    if not os.path.exists("/dev/loop0"):
        subprocess.run(["mknod", "/dev/loop0", "b", "7", "0"], check=False)
    corpus = DockerCorpus(dockerd)
    scratch = tempfile.mkdtemp(prefix="stockade-audit-scratch-", dir="/tmp")
    os.chmod(scratch, 0o755)
    os.makedirs(os.path.join(scratch, "token"))
    os.makedirs(os.path.join(scratch, "shared"))
    with open(os.path.join(scratch, "token", "token"), "w") as fh:
        fh.write(TOKEN_VALUE)
    corpus.scratch = scratch
    try:
        # rshared needs a shared source mount; / is private here, so make a shared bind of
        # our own scratch dir (removed in close())
        shared = os.path.join(scratch, "shared")
        subprocess.run(["mount", "--bind", shared, shared], check=True, capture_output=True)
        subprocess.run(["mount", "--make-shared", shared], check=True, capture_output=True)
        for row, extra in DOCKER_ROWS.items():
            name = f"stockade-audit-{row}"
            dockerd.docker("rm", "-f", name, check=False)
            proc = dockerd.docker("run", "-d", "--name", name, *_docker_args(extra, dockerd.socket, scratch),
                                  dockerd.image, "sleep", "600", check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"docker run {row}: {proc.stderr.strip()}")
            corpus.names[row] = name
            corpus.ids.append(proc.stdout.strip())
        yield corpus
    finally:
        corpus.close()


# ---- runc bundles -------------------------------------------------------------------

def _moby_seccomp_oci() -> dict[str, Any]:
    """Docker's default profile as OCI linux.seccomp, for a container with no capabilities."""
    from tests.conftest import MOBY_PROFILE

    prof = json.loads(MOBY_PROFILE.read_text())
    rules = []
    for rule in prof["syscalls"]:
        inc, exc = rule.get("includes", {}), rule.get("excludes", {})
        if inc.get("caps") or (inc.get("arches") and "amd64" not in inc["arches"]):
            continue
        if "amd64" in exc.get("arches", []):
            continue
        out = {"names": rule["names"], "action": rule["action"]}
        if rule.get("args"):
            out["args"] = rule["args"]
        if "errnoRet" in rule:
            out["errnoRet"] = rule["errnoRet"]
        rules.append(out)
    return {"defaultAction": prof["defaultAction"], "defaultErrnoRet": prof.get("defaultErrnoRet", 1),
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": rules}


def _bind(src: str, dst: str) -> dict[str, Any]:
    return {"destination": dst, "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid", "nodev"]}


def runc_config(base: dict[str, Any], row: str, rootfs: str) -> dict[str, Any]:
    cfg = json.loads(json.dumps(base))
    cfg["root"] = {"path": rootfs, "readonly": True}
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sleep", "600"]
    cfg["hostname"] = f"audit-{row}"
    cfg["mounts"] += [_bind(s, d) for s, d in python_binds()]
    cfg["linux"]["cgroupsPath"] = f"/stockade-audit-{row}"
    if row == "sysfs-rw":
        for m in cfg["mounts"]:
            if m["destination"] == "/sys":
                m["options"] = [o for o in m["options"] if o != "ro"]
    if row == "strict":
        # stockade's `strict` preset, expressed for runc: no capabilities, a user namespace,
        # every namespace, Docker's default seccomp (the strict filter is tighter still),
        # read-only root, no_new_privs, masked paths, memory and pids limits.
        caps = cfg["process"]["capabilities"]
        for key in caps:
            caps[key] = []
        cfg["process"]["noNewPrivileges"] = True
        ns = cfg["linux"]["namespaces"]
        ns += [{"type": "user"}, {"type": "cgroup"}]
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["seccomp"] = _moby_seccomp_oci()
        cfg["linux"]["resources"]["memory"] = {"limit": 256 * 1024 * 1024}
        cfg["linux"]["resources"]["pids"] = {"limit": 128}
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    return cfg


RUNC_ROWS = ("leaked-fd", "sysfs-rw", "shared-keyring", "strict")


@dataclass
class RuncCorpus:
    root: str  # runc --root
    base: str  # bundles and rootfs
    ids: list[str] = field(default_factory=list)
    closed: bool = False

    def runc(self, *args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runc", "--root", self.root, *args], capture_output=True, text=True,
                              check=check, timeout=60, **kw)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for cid in self.ids:
            self.runc("delete", "-f", cid, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def runc_corpus(host_before: dict[str, Any]) -> Iterator[RuncCorpus]:
    require_root()
    require_tool("runc")
    # 0755 all the way down: the strict row's user namespace maps root to uid 100000
    base = tempfile.mkdtemp(prefix="stockade-audit-runc-", dir="/tmp")
    os.chmod(base, 0o755)
    corpus = RuncCorpus(root=tempfile.mkdtemp(prefix="stockade-audit-runc-state-", dir="/tmp"), base=base)
    try:
        rootfs = make_busybox_rootfs(Path(base) / "rootfs")
        os.chmod(rootfs, 0o755)
        subprocess.run(["runc", "spec", "--bundle", base], check=True, capture_output=True)
        template = json.loads((Path(base) / "config.json").read_text())
        leak_dir = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)  # the fd runc will leak
        try:
            for row in RUNC_ROWS:
                bundle = Path(base) / row
                bundle.mkdir()
                (bundle / "config.json").write_text(json.dumps(runc_config(template, row, str(rootfs))))
                cid = f"stockade-audit-{row}"
                corpus.ids.append(cid)
                extra: list[str] = []
                pass_fds: tuple[int, ...] = ()
                if row == "leaked-fd":
                    os.dup2(leak_dir, 3, inheritable=True) if leak_dir != 3 else None
                    extra, pass_fds = ["--preserve-fds", "1"], (3,)
                if row == "shared-keyring":
                    extra = ["--no-new-keyring"]
                # the container inherits stdio: a file, not a pipe, or run -d never returns
                with open(bundle / "stderr", "w+") as err:
                    proc = subprocess.run(["runc", "--root", corpus.root, "run", "-d", *extra, "--bundle",
                                           str(bundle), cid], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=err, timeout=60, pass_fds=pass_fds)
                    if proc.returncode != 0:
                        err.seek(0)
                        raise RuntimeError(f"runc run {row}: {err.read().strip()}")
        finally:
            os.close(leak_dir)
        _wait_running(corpus)
        yield corpus
    finally:
        corpus.close()


def _wait_running(corpus: RuncCorpus) -> None:
    deadline = time.monotonic() + 10
    for cid in corpus.ids:
        while time.monotonic() < deadline:
            out = corpus.runc("state", cid, check=False).stdout
            if '"running"' in out:
                break
            time.sleep(0.05)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The shared dockerd fixture leaves the netns bind mount dockerd makes for --net=host
    containers (our host-net rows trigger it) under its deleted exec-root: unmount those."""
    try:
        with open("/proc/self/mountinfo") as fh:
            points = [line.split()[4] for line in fh]
    except OSError:
        return
    for mp in points:
        if mp.startswith("/tmp/stockade-dockerd-") and mp.endswith("/exec/netns/default"):
            base = mp[: -len("/exec/netns/default")]
            if not os.path.isdir(os.path.join(base, "data")):
                subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
                shutil.rmtree(base, ignore_errors=True)


# ---- stockade's own runner with the strict preset -------------------------------------

def stockade_run_cmd(rootfs: str, *payload: str) -> list[str]:
    cmd = [sys.executable, "-m", "stockade", "run", "--policy", "strict", "--rootfs", rootfs]
    for src, dst in python_binds():
        cmd += ["--bind", f"{src}:{dst}:ro"]
    for k, v in SELF_ENV.items():
        cmd += ["--env", f"{k}={v}"]
    return [*cmd, "--", *payload]


@dataclass
class StockadeStrict:
    runner: subprocess.Popen[bytes]
    pid: int  # the payload (sleep) as the host sees it
    rootfs: str
    base: str

    cgroups: tuple[str, ...] = ()  # the payload's cgroup dirs, to check they are removed

    def close(self) -> None:
        if self.runner.poll() is None:
            # SIGTERM: the runner forwards it, reaps the payload and removes its cgroup
            self.runner.terminate()
            try:
                self.runner.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.runner.pid, 9)  # our own session: the runner and its payload
                self.runner.wait(timeout=20)
        shutil.rmtree(self.base, ignore_errors=True)


def _cgroup_dirs(pid: int) -> tuple[str, ...]:
    out = []
    with open(f"/proc/{pid}/cgroup") as fh:
        for line in fh:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if path != "/" and ctrls and not ctrls.startswith("name="):
                out.append(f"/sys/fs/cgroup/{ctrls.split(',')[0]}{path}")
    return tuple(out)


def _descendant(pid: int, comm: str) -> int | None:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/comm") as fh:
                if fh.read().strip() == comm:
                    return p
        except OSError:
            continue
        todo += children.get(p, [])
    return None


@pytest.fixture(scope="session")
def stockade_strict(host_before: dict[str, Any]) -> Iterator[StockadeStrict]:
    require_root()
    pytest.importorskip("stockade.cli.run")
    base = tempfile.mkdtemp(prefix="stockade-audit-strict-", dir="/tmp")
    os.chmod(base, 0o755)
    rootfs = str(make_busybox_rootfs(Path(base) / "rootfs"))
    os.chmod(rootfs, 0o755)
    log = open(Path(base) / "runner.log", "wb")  # noqa: SIM115 - lives as long as the runner
    runner = subprocess.Popen(stockade_run_cmd(rootfs, "sleep", "600"), stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    pid = None
    deadline = time.monotonic() + 10
    while pid is None and time.monotonic() < deadline and runner.poll() is None:
        pid = _descendant(runner.pid, "sleep")
        time.sleep(0.05)
    strict = StockadeStrict(runner, pid or 0, rootfs, base, _cgroup_dirs(pid) if pid else ())
    try:
        if pid is None:
            log.flush()
            pytest.skip(f"stockade run could not start here: {(Path(base) / 'runner.log').read_text()[-500:]}")
        yield strict
    finally:
        strict.close()
        log.close()
