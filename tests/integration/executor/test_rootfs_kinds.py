"""The new root as the executor builds it (executor/rootfs.c): the jail's own entries
(symlink, file), a tmpfs's data, OCI linux.devices (mknod, or the host's node bound in a
user namespace), the host's / read-only from the start, and the runner's messages naming
the failing mount. Each case runs through the launcher and `stockade-oci --executor`."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from stockade import api
from stockade.errors import RunnerError
from stockade.runner._record import replace
from stockade.runner.launcher import launch
from stockade.runner.plan import MountOp, Plan
from tests.conftest import require_root

pytestmark = pytest.mark.root
ENV = {"PATH": "/usr/bin:/bin"}
HOST_MAP = "stockade: 1\nname: hostmap\nextends: [default]\nuser: {map: host}\n"


@pytest.fixture(autouse=True)
def _root() -> Iterator[None]:
    require_root()
    old = os.umask(0o022)  # the executor's files are made under the caller's umask
    yield
    os.umask(old)


def _plan(outdir: Path, script: str, extra: Sequence[MountOp] = (), *,
          policy: str = "default", devices: tuple[tuple[str, str | None], ...] = (),
          rootfs: str | None = None) -> Plan:
    p = api.plan(["/bin/sh", "-c", script], policy=policy, env=ENV, rootfs=rootfs,
                 binds=[f"{outdir}:/mnt"])
    mounts = tuple(replace(m, data=devices) if m.kind == "dev" and devices else m
                   for m in p.mounts)
    return replace(p, mounts=mounts + tuple(extra))


def _out(outdir: Path, plan: Plan) -> list[str]:
    res = launch(plan)
    assert res.exit_code == 0, (outdir / "err").read_text() if (outdir / "err").exists() else ""
    return (outdir / "out").read_text().splitlines()


def _fails(plan: Plan) -> str:
    with pytest.raises(RunnerError) as exc:
        launch(plan)
    assert exc.value.step == "rootfs" and exc.value.exit_code == 114
    return exc.value.message


def _host_map(tmp_path: Path) -> str:
    path = tmp_path / "hostmap.yaml"
    path.write_text(HOST_MAP)
    return str(path)


def test_symlink_and_file_entries_in_the_jail(outdir: Path, leak_check: None) -> None:
    extra = [MountOp("symlink", "/opt/link", "/usr/bin", why="test"),
             MountOp("file", "/opt/note", data=(("content", "hello\nworld"),), why="test")]
    script = ("exec >/mnt/out 2>/mnt/err; readlink /opt/link; cat /opt/note; echo; "
              "stat -c %a /opt/note; (echo x > /opt/note) 2>/dev/null || echo read-only; "
              "test -x /opt/link/sh && echo through")
    assert _out(outdir, _plan(outdir, script, extra)) == \
        ["/usr/bin", "hello", "world", "644", "read-only", "through"]


def test_an_entry_through_a_symlink_stays_in_the_root(outdir: Path, tmp_path: Path,
                                                      leak_check: None) -> None:
    # The attack: a symlink entry naming a host directory, then a file below it. Resolved
    # inside the root, the link dangles there; nothing is written on the host.
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    extra = [MountOp("symlink", "/opt/esc", str(host_dir), why="test"),
             MountOp("file", "/opt/esc/pwned", data=(("content", "x"),), why="test")]
    message = _fails(_plan(outdir, "touch /mnt/ran", extra))
    assert "mountpoint /opt/esc cannot be resolved inside the root (a dangling symlink?): " \
           "No such file or directory" in message
    assert list(host_dir.iterdir()) == [] and not (outdir / "ran").exists()


def test_a_failing_mount_is_named_with_its_reason(outdir: Path, leak_check: None) -> None:
    extra = [MountOp("fs", "/x", fstype="stockade-no-such-fs", why="the test's fs")]
    message = _fails(_plan(outdir, "touch /mnt/ran", extra))
    assert message.endswith("mounting fs at /x (the test's fs): No such device")
    assert not (outdir / "ran").exists()


def test_tmpfs_data_is_added_to_its_mode(outdir: Path, leak_check: None) -> None:
    extra = [MountOp("tmpfs", "/scratch", data=(("size", "1m"), ("mode", "0700")), why="test")]
    script = ("exec >/mnt/out 2>/mnt/err; stat -c %a /scratch; "
              "grep ' /scratch ' /proc/self/mountinfo | grep -o 'size=[0-9]*k,mode=[0-7]*'")
    assert _out(outdir, _plan(outdir, script, extra)) == ["700", "size=1024k,mode=700"]


def test_a_tmpfs_context_reaches_the_kernel(outdir: Path, leak_check: None) -> None:
    if os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is active: the context would be taken")
    # Without SELinux no filesystem takes context=: the refusal shows that it was passed.
    extra = [MountOp("tmpfs", "/scratch", data=(("context", "system_u:object_r:tmp_t:s0"),),
                     why="filesystem.tmpfs")]
    message = _fails(_plan(outdir, "touch /mnt/ran", extra))
    assert message.endswith("mounting tmpfs at /scratch (filesystem.tmpfs): Invalid argument")


DEVICES = (("fuse", "c 10 229 8630 0 0"), ("net/tun", "c 10 200 8608 1 2"))  # 0o20666, 0o20640
STAT = "exec >/mnt/out 2>/mnt/err; stat -c '%F %t:%T %a %u:%g' /dev/fuse /dev/net/tun"


def test_devices_are_made_with_their_mode_and_owner(outdir: Path, tmp_path: Path,
                                                    leak_check: None) -> None:
    plan = _plan(outdir, STAT, policy=_host_map(tmp_path), devices=DEVICES)
    assert not plan.identity.userns
    assert _out(outdir, plan) == ["character special file a:e5 666 0:0",
                                  "character special file a:c8 640 1:2"]


def test_devices_in_a_user_namespace_are_the_hosts_nodes(outdir: Path, leak_check: None) -> None:
    for name, _ in DEVICES:
        if not os.path.exists("/dev/" + name):
            pytest.skip(f"/dev/{name} is not on this host")
    plan = _plan(outdir, STAT, devices=DEVICES)
    assert plan.identity.userns
    lines = _out(outdir, plan)
    host = [os.stat("/dev/" + name) for name, _ in DEVICES]
    assert [line.rsplit(" ", 2)[0] for line in lines] == \
        ["character special file a:e5", "character special file a:c8"]
    assert [line.split()[-2] for line in lines] == [f"{st.st_mode & 0o7777:o}" for st in host]


def test_device_errors_name_the_device(outdir: Path, tmp_path: Path, leak_check: None) -> None:
    made = _plan(outdir, "touch /mnt/ran", policy=_host_map(tmp_path),
                 devices=(("null", "c 1 3 8630 0 0"),))
    assert _fails(made).endswith("linux.devices /dev/null: File exists")
    bound = _plan(outdir, "touch /mnt/ran", devices=(("stockade-no-such-node", "c 1 3 8630 0 0"),))
    assert _fails(bound).endswith("cannot open a source tree: No such file or directory "
                                  "(/dev/stockade-no-such-node)")
    assert not (outdir / "ran").exists()


def test_the_hosts_root_is_read_only_before_any_mount(outdir: Path, leak_check: None) -> None:
    # `--rootfs /`: its tree turns read-only while detached, so a missing mountpoint cannot
    # be made (it would be made on the host's own /)
    plan = _plan(outdir, "touch /mnt/ran", rootfs="/")
    extra = [MountOp("tmpfs", "/stockade-no-such-dir/x", why="test")]
    message = _fails(replace(plan, mounts=plan.mounts + tuple(extra)))
    assert message.endswith("cannot create mountpoint /stockade-no-such-dir: "
                            "Read-only file system")
    assert not os.path.exists("/stockade-no-such-dir")


def test_the_jails_root_turns_read_only_last_and_alone(outdir: Path, tmp_path: Path,
                                                       leak_check: None) -> None:
    # read-only: its entries were made first, its binds and /tmp keep their own modes;
    # root: writable leaves the tmpfs writable, never the host's /usr bound into it
    script = ("exec >/mnt/out 2>/mnt/err; for p in /x /tmp/x /usr/x; do "
              "touch $p 2>/dev/null && echo $p rw || echo $p ro; done; cat /etc/hostname")
    assert _out(outdir, _plan(outdir, script)) == ["/x ro", "/tmp/x rw", "/usr/x ro", "default"]
    policy = tmp_path / "rw.yaml"
    policy.write_text("stockade: 1\nname: rw\nextends: [default]\nfilesystem: {root: writable}\n")
    assert _out(outdir, _plan(outdir, script, policy=str(policy))) == \
        ["/x rw", "/tmp/x rw", "/usr/x ro", "rw"]
    assert not os.path.exists("/x") and not os.path.exists("/usr/x")
