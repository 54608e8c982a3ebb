"""An idmapped writable host directory must not let the payload's root leave set-uid,
set-gid or file-capability files on the host (runner.setid_guard).

Through the idmapped mount (runner.idmount) what the payload's root writes in a
root-owned directory is host root's on disk. Before the guard every attempt below
succeeded: `chmod 4755`, `open(O_CREAT, 0o4755)`, `chmod 2775` on a directory,
fchmodat2 and `mknod(S_IFREG|04755)` left -rwsr-xr-x/drwxrwsr-x root files in the host
directory, and security.capability (cap_net_raw, v2) was stored as-is: host-effective.
The control runs show the same calls succeed where nothing is idmapped (so each probe is
a real attack the kernel would carry out, stopped by the guard alone).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_root

CLI = [sys.executable, "-m", "stockade", "run"]
NOTE = "CAP_SETFCAP dropped so the payload cannot write file capabilities effective on the host"

# Each probe prints "<name> OK" or "<name> <ERRNO>"; run in the current directory.
PROBE = r'''
import ctypes, errno, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def raw(nr, *args):
    if libc.syscall(nr, *args) < 0:
        raise OSError(ctypes.get_errno(), "")
def attempt(name, fn):
    try:
        fn()
        print(name, "OK")
    except OSError as exc:
        print(name, errno.errorcode.get(exc.errno, exc.errno))
def touch(name):
    with open(name, "w") as fh:
        fh.write("x")
touch("a"); touch("b"); touch("c"); touch("d")
attempt("chmod_suid", lambda: os.chmod("a", 0o4755))
attempt("chmod_sgid", lambda: os.chmod("b", 0o2755))
attempt("fchmod_suid", lambda: os.fchmod(os.open("b", os.O_RDONLY), 0o4755))
attempt("open_creat_suid", lambda: os.close(os.open("made", os.O_CREAT | os.O_WRONLY, 0o4755)))
attempt("open_tmpfile_sgid", lambda: os.close(os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o2755)))
attempt("mkdir_sgid", lambda: os.mkdir("sgdir", 0o2775))
os.makedirs("plaindir", exist_ok=True)
attempt("chmod_dir_sgid", lambda: os.chmod("plaindir", 0o2775))
attempt("fchmodat2_suid", lambda: raw(452, -100, b"c", 0o4755, 0))
if os.uname().machine == "x86_64":  # chmod (90) with junk in the mode's high bits
    attempt("chmod_high_bits", lambda: raw(90, b"c", ctypes.c_ulong(0xFFFFFFFF00000000 | 0o4755)))
attempt("mknod_suid", lambda: os.mknod("node", 0o100000 | 0o4755))  # S_IFREG
blob = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # v2, effective, cap_net_raw
attempt("setxattr_cap", lambda: os.setxattr("d", "security.capability", blob))
how = struct.pack("QQQ", os.O_CREAT | os.O_WRONLY, 0o644, 0)  # struct open_how
attempt("openat2", lambda: raw(437, -100, b"o2", how, len(how)))
'''

REFUSED = {"chmod_suid": "EPERM", "chmod_sgid": "EPERM", "fchmod_suid": "EPERM",
           "open_creat_suid": "EPERM", "open_tmpfile_sgid": "EPERM", "mkdir_sgid": "EPERM",
           "chmod_dir_sgid": "EPERM", "fchmodat2_suid": "EPERM", "mknod_suid": "EPERM",
           "setxattr_cap": "EPERM", "openat2": "ENOSYS",
           **({"chmod_high_bits": "EPERM"} if os.uname().machine == "x86_64" else {})}


def _policy(tmp_path: Path, writable: Path | None, extra: str = "") -> str:
    path = tmp_path / ("app.yaml" if writable else "plain.yaml")
    text = "stockade: 1\nname: app\nextends: [default]\n" + extra
    if writable is not None:
        text += f"filesystem:\n  writable: [{writable}]\n"
    path.write_text(text)
    return str(path)


def _run(policy: str, cwd: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--policy", policy, "--cwd", cwd, "--", *argv],
                          capture_output=True, text=True, timeout=120)


def _results(stdout: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in stdout.splitlines() if " " in line)


def _privileged_files(top: Path) -> list[str]:
    """Every file or directory under `top` with a set-id bit or a capability xattr."""
    found = []
    for base, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            path = os.path.join(base, name)
            st = os.lstat(path)
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(f"{path} {stat.filemode(st.st_mode)}")
            if not stat.S_ISLNK(st.st_mode) and "security.capability" in os.listxattr(path):
                found.append(f"{path} security.capability")
    return found


def test_every_setid_attempt_is_refused_and_the_host_dir_stays_clean(
        tmp_path: Path, data_dir: Path) -> None:
    (data_dir / "probe.py").write_text(PROBE)
    proc = _run(_policy(tmp_path, data_dir), str(data_dir), "python3", "probe.py")
    assert proc.returncode == 0, proc.stderr
    assert _results(proc.stdout) == REFUSED
    assert NOTE in proc.stderr
    assert _privileged_files(data_dir) == []
    assert not any((data_dir / n).exists() for n in ("made", "node", "sgdir", "o2"))


def test_the_same_attempts_succeed_where_nothing_is_idmapped(tmp_path: Path) -> None:
    """The control: in the sandbox's own /tmp (a tmpfs, gone with it), with no writable
    host path, the kernel carries out every probe: the refusals above are the guard's."""
    require_root()
    proc = _run(_policy(tmp_path, None), "/tmp", "python3", "-c", PROBE)
    assert proc.returncode == 0, proc.stderr
    results = _results(proc.stdout)
    assert {k: v for k, v in results.items() if k != "openat2"} == \
        {k: "OK" for k in REFUSED if k != "openat2"}
    assert results["openat2"] == "OK"
    assert NOTE not in proc.stderr


def test_setcap_and_the_bounding_set(tmp_path: Path, data_dir: Path) -> None:
    setcap = shutil.which("setcap")
    script = "grep CapBnd /proc/self/status; cp /bin/true t"
    if setcap is not None:
        script += f"; {setcap} cap_net_raw+ep t 2>/dev/null || echo SETCAP_REFUSED"
    proc = _run(_policy(tmp_path, data_dir), str(data_dir), "/bin/sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    bounding = int(proc.stdout.split()[1], 16)
    assert not bounding >> 31 & 1  # CAP_SETFCAP: not even an execve can regain it
    assert bounding >> 0 & 1 and bounding >> 4 & 1  # chown, fsetid: the rest is kept
    if setcap is not None:
        assert "SETCAP_REFUSED" in proc.stdout
    assert _privileged_files(data_dir) == []


def test_existing_setid_files_lose_their_bits_when_rewritten_or_chowned(
        tmp_path: Path, data_dir: Path) -> None:
    """What needs no rule: the kernel clears set-id bits on a write or chown by the
    payload (CAP_FSETID counts in the host's namespace only) and drops a capability xattr
    on a write. Guards against a kernel or a policy where that would not hold."""
    for name, mode in (("suid", 0o4755), ("sgid", 0o2755), ("chowned", 0o4755)):
        (data_dir / name).write_text("host's\n")
        os.chmod(data_dir / name, mode)
    (data_dir / "shared").mkdir()
    os.chmod(data_dir / "shared", 0o2775)  # a host set-gid directory
    (data_dir / "capped").write_text("host's\n")
    os.setxattr(data_dir / "capped", "security.capability",
                bytes.fromhex("0100000200200000000000000000000000000000"))
    proc = _run(_policy(tmp_path, data_dir), str(data_dir), "/bin/sh", "-c",
                "echo payload >> suid && echo payload >> sgid && echo payload >> capped && "
                "chown 1000:1000 chowned && touch shared/file && mkdir shared/sub && "
                "echo DONE")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "DONE"
    # A set-gid directory passes S_ISGID on to new directories only (harmless: no exec)
    assert sorted(f.rsplit(" ", 1)[0] for f in _privileged_files(data_dir)) == [
        str(data_dir / "shared"), str(data_dir / "shared/sub")]
    assert os.stat(data_dir / "shared" / "sub").st_mode & stat.S_IFDIR
    assert (data_dir / "suid").read_text() == "host's\npayload\n"


def test_ordinary_work_still_succeeds(tmp_path: Path, data_dir: Path) -> None:
    sqlite = ("import sqlite3; c = sqlite3.connect('app.db'); c.execute('create table t (x)');"
              " c.execute('insert into t values (42)'); c.commit();"
              " print(c.execute('select x from t').fetchone()[0])")
    script = (f"python3 -c \"{sqlite}\" && mkdir -p d/e && touch f g && chmod 644 f && "
              "chmod 755 g d && chmod 1777 d/e && python3 -c \"import os; "
              "os.close(os.open('h', os.O_CREAT | os.O_WRONLY, 0o640))\" && cp -p g g2 && "
              "echo DONE")
    git = shutil.which("git") is not None
    if git:
        script += (" && git init -q repo && cd repo && echo hi > f && chmod +x f && "
                   "git add f && git -c user.name=t -c user.email=t@example.invalid commit -q "
                   "-m first && git log --format=%s")
    proc = _run(_policy(tmp_path, data_dir), str(data_dir), "/bin/sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:2] == ["42", "DONE"]
    if git:
        assert proc.stdout.split()[2] == "first"
    modes = {n: stat.S_IMODE(os.stat(data_dir / n).st_mode)
             for n in ("f", "g", "g2", "d", "d/e", "h")}
    assert modes == {"f": 0o644, "g": 0o755, "g2": 0o755, "d": 0o755, "d/e": 0o1777,
                     "h": 0o640 & ~0o022}
    assert os.stat(data_dir / "app.db").st_uid == 0


def test_io_uring_is_refused_even_when_the_policy_allows_it(tmp_path: Path,
                                                            data_dir: Path) -> None:
    """IORING_OP_OPENAT never passes seccomp: with an idmapped writable path the guard
    refuses io_uring_setup even under a policy that allows it (the control shows it does)."""
    try:
        if Path("/proc/sys/kernel/io_uring_disabled").read_text().strip() != "0":
            pytest.skip("io_uring is disabled on this host (kernel.io_uring_disabled)")
    except FileNotFoundError:
        pass
    probe = ("import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
             "p = ctypes.create_string_buffer(120); r = libc.syscall(425, 4, p); "
             "print('OK' if r >= 0 else ctypes.get_errno())")
    allow = "syscalls:\n  allow: [io_uring_setup, io_uring_enter, io_uring_register]\n"
    control = _run(_policy(tmp_path, None, allow), "/", "python3", "-c", probe)
    assert control.returncode == 0, control.stderr
    if control.stdout.strip() != "OK":
        pytest.skip(f"io_uring_setup fails here even unguarded (errno {control.stdout})")
    proc = _run(_policy(tmp_path, data_dir, allow), str(data_dir), "python3", "-c", probe)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"  # EPERM


def test_no_new_user_namespace_even_when_the_policy_allows_it(tmp_path: Path,
                                                              data_dir: Path) -> None:
    """In a user namespace of its own the payload would hold CAP_SETFCAP again, over the
    files its root owns: the guard refuses CLONE_NEWUSER under any policy."""
    probe = ("import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
             "print('OK' if libc.unshare(0x10000000) == 0 else ctypes.get_errno())")
    allow = "syscalls:\n  allow: [unshare, clone, clone3]\n"
    control = _run(_policy(tmp_path, None, allow), "/", "python3", "-c", probe)
    assert control.returncode == 0, control.stderr
    assert control.stdout.strip() == "OK"  # the policy allows it where nothing is idmapped
    proc = _run(_policy(tmp_path, data_dir, allow), str(data_dir), "python3", "-c", probe)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"  # EPERM


def test_image_root_alone_is_not_guarded_but_a_writable_bind_is(
        tmp_path: Path, data_dir: Path, busybox_rootfs: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An image's root writes into the container's own upper layer under the store, whose
    root is 0700 (no other host user reaches a set-uid file there): set-id installs keep
    working. A writable --bind next to it brings the guard for the whole sandbox."""
    import io
    import tarfile

    from stockade.image import export
    from stockade.image.store import Store

    store = Store(tmp_path / "store")
    monkeypatch.setenv("STOCKADE_STORE", str(store.root))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    store.load(export.write_tar(tmp_path / "bb.tar", export.docker_archive_files(
        [buf.getvalue()], {"Env": ["PATH=/bin"]}, repo_tags=["bb:1"])))
    script = "touch /x && chmod 4755 /x && echo ROOT_OK; touch /data/y && chmod 4755 /data/y " \
             "&& echo BIND_OK; true"
    policy = tmp_path / "rw.yaml"
    policy.write_text("stockade: 1\nname: rw\nextends: [default]\nfilesystem: {root: writable}\n")
    alone = subprocess.run([*CLI, "--policy", str(policy), "--image", "bb:1", "--keep", "--",
                            "/bin/sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.split() == ["ROOT_OK"] and NOTE not in alone.stderr, alone.stderr
    upper = [p for p in store.containers_dir.glob("*/upper/x")]
    assert len(upper) == 1 and upper[0].stat().st_mode & stat.S_ISUID  # in the upper layer
    assert stat.S_IMODE(store.root.stat().st_mode) & 0o077 == 0  # out of other users' reach
    bound = subprocess.run([*CLI, "--policy", str(policy), "--image", "bb:1", "--bind",
                            f"{data_dir}:/data", "--", "/bin/sh", "-c", script],
                           capture_output=True, text=True, timeout=120)
    assert bound.returncode == 0, bound.stderr
    assert bound.stdout.split() == [] and NOTE in bound.stderr
    assert _privileged_files(data_dir) == []
