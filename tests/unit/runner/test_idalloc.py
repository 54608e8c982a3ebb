"""The id-range allocator (runner.idalloc) without privileges: a private pool and lock
directory under tmp, locks held by this process or a child that is killed."""

from __future__ import annotations

import fcntl
import os
import signal
from pathlib import Path

import pytest

from stockade.errors import RunnerError
from stockade.policy.loader import load_policy
from stockade.runner import idalloc, idmap
from stockade.runner.codes import EXIT_CODES
from stockade.runner.plan import (
    AUTO_RANGE_BASE,
    IdMap,
    IdPool,
    RunSpec,
    build_plan,
    describe,
)
from stockade.runner.prepare import policy_part

FAKE_BPF = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # one instruction: RET ALLOW
SIZE = 65536
START = 3_000_000_000  # far from any real pool: nothing here maps these ids


def pool(tmp_path: Path, ranges: int = 3) -> IdPool:
    return IdPool(START, ranges * SIZE, str(tmp_path / "idpool"))


def never(lo: int, hi: int) -> bool:
    return False


def test_concurrent_leases_get_disjoint_ranges_and_release_frees(tmp_path: Path) -> None:
    p = pool(tmp_path)
    a = idalloc.acquire(p, never)
    b = idalloc.acquire(p, never)  # another open file description: the lock conflicts
    try:
        assert (a.base, b.base) == (START, START + SIZE)
        assert a.count == b.count == SIZE
        assert Path(a.path).read_text() == f"{os.getpid()}\n"  # a holder writes its pid
    finally:
        idalloc.release(a)
    assert Path(a.path).read_text() == ""  # emptied: released cleanly
    c = idalloc.acquire(p, never)  # the first range again, once released
    try:
        assert c.base == START
    finally:
        idalloc.release(c)
        idalloc.release(b)
    assert sorted(os.listdir(p.lock_dir)) == [f"{START}.lock", f"{START + SIZE}.lock"]


def test_exhausted_pool_fails_closed_in_one_line(tmp_path: Path) -> None:
    p = pool(tmp_path, ranges=2)
    held = [idalloc.acquire(p, never), idalloc.acquire(p, never)]
    try:
        with pytest.raises(RunnerError) as exc:
            idalloc.acquire(p, never)
        err = exc.value
        assert err.step == "idmap" and err.exit_code == EXIT_CODES["idmap"]
        assert "id pool exhausted" in str(err) and "(2 held by running sandboxes" in str(err)
        assert "STOCKADE_ID_POOL" in str(err) and "\n" not in str(err)
    finally:
        for lease in held:
            idalloc.release(lease)


def test_a_killed_holder_frees_its_range(tmp_path: Path) -> None:
    """The kernel drops the flock when the holder dies: no release needed."""
    p = pool(tmp_path)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the holder: lock, say so, wait to be killed
        os.close(ready_r)
        idalloc.acquire(p, never)
        os.write(ready_w, b"x")
        signal.pause()
        os._exit(0)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"x"
        assert idalloc.acquire(p, never).base == START + SIZE  # held while it lives
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
    asked: list[tuple[int, int]] = []

    def none_left(lo: int, hi: int) -> bool:
        asked.append((lo, hi))
        return False

    lease = idalloc.acquire(p, none_left)
    try:
        assert lease.base == START
        assert asked == [(START, START + SIZE)]  # its file still named the dead holder
    finally:
        idalloc.release(lease)


def test_a_dead_holders_range_with_processes_left_is_skipped(tmp_path: Path) -> None:
    p = pool(tmp_path)
    os.makedirs(p.lock_dir, mode=0o700)
    Path(p.lock_dir, f"{START}.lock").write_text("12345\n")  # left by a killed runner
    lease = idalloc.acquire(p, lambda lo, hi: lo == START)
    try:
        assert lease.base == START + SIZE
        assert Path(p.lock_dir, f"{START}.lock").read_text() == "12345\n"  # left as is
    finally:
        idalloc.release(lease)
    with pytest.raises(RunnerError, match="1 with processes left by a killed runner"):
        idalloc.acquire(pool(tmp_path, ranges=1), lambda lo, hi: True)


def test_ranges_taken_by_host_accounts_are_never_used(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idmap, "reserved_ids",
                        lambda: ((START + 5, 1, "/etc/passwd has id x"),
                                 (START + SIZE + 100, 10, "/etc/subuid has range y")))
    assert idmap.range_conflict(START, START + SIZE) == "/etc/passwd has id x"
    assert idmap.range_conflict(START + 6, START + SIZE) is None
    lease = idalloc.acquire(pool(tmp_path), never)
    try:
        assert lease.base == START + 2 * SIZE
    finally:
        idalloc.release(lease)
    with pytest.raises(RunnerError, match="2 overlapping host accounts"):
        idalloc.acquire(pool(tmp_path, ranges=2), never)


def test_lock_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    p = pool(tmp_path)
    os.makedirs(p.lock_dir)
    os.chmod(p.lock_dir, 0o777)
    with pytest.raises(RunnerError, match="no one else can write") as exc:
        idalloc.acquire(p, never)
    assert exc.value.step == "idmap"
    assert os.listdir(p.lock_dir) == []  # nothing created there


def test_lock_file_is_not_inherited_across_exec(tmp_path: Path) -> None:
    lease = idalloc.acquire(pool(tmp_path), never)
    try:
        assert fcntl.fcntl(lease.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        idalloc.release(lease)


def test_configured_pool_from_env() -> None:
    default = idalloc.configured_pool({})
    assert (default.start, default.range_size) == (AUTO_RANGE_BASE, SIZE)
    assert default.start + default.size <= 2**31  # below 2^31: no signed-uid surprises
    assert default.lock_dir == "/run/stockade/idpool"
    custom = idalloc.configured_pool({"STOCKADE_ID_POOL": f"{START}:{4 * SIZE}",
                                      "STOCKADE_STATE_DIR": "/x"})
    assert custom == IdPool(START, 4 * SIZE, "/x/idpool")
    for bad in ("1000", "a:b", "0:65536", "100000:10", "4294900000:131072", "-5:65536"):
        with pytest.raises(RunnerError) as exc:
            idalloc.configured_pool({"STOCKADE_ID_POOL": bad})
        assert exc.value.step == "preflight" and "STOCKADE_ID_POOL" in str(exc.value)


def test_plan_maps_the_pools_first_range_until_placed(tmp_path: Path) -> None:
    part = policy_part(load_policy("default"), seccomp_bpf=FAKE_BPF)
    p = pool(tmp_path)
    plan = build_plan(part, RunSpec(argv=("true",)), euid=0, pool=p)
    ident = plan.identity
    assert ident.pool == p and ident.owner is None
    assert ident.uid_map == ident.gid_map == (IdMap(0, START, SIZE),)
    assert "id range" in describe(plan) and f"{START}-{START + 3 * SIZE - 1}" in describe(plan)
    lease = idalloc.Lease(START + 2 * SIZE, SIZE, -1, "")
    placed = idalloc.placed(plan, lease).identity
    assert placed.uid_map == placed.gid_map == (IdMap(0, START + 2 * SIZE, SIZE),)
    assert placed.pool is None and placed.owner == START + 2 * SIZE  # owns its namespace
    # not pooled: map host, rootless, explicit maps
    rootless = build_plan(part, RunSpec(argv=("true",)), euid=1000, pool=p).identity
    assert rootless.pool is None and rootless.owner is None


def _pinned(p: IdPool, owner: Path) -> int:
    """A range pinned to `owner` as `stockade oci create` pins one; its lease released."""
    lease = idalloc.acquire(p, never)
    try:
        idalloc.pin(lease, str(owner))
    finally:
        idalloc.release(lease)
    return lease.base


def test_a_pinned_range_stays_taken_until_unpinned(tmp_path: Path) -> None:
    p = pool(tmp_path, ranges=2)
    owner = tmp_path / "containers" / "c1"
    owner.mkdir(parents=True)
    base = _pinned(p, owner)
    record = Path(p.lock_dir) / f"{base}.owner"
    assert record.read_text() == f"{owner}\n{owner.stat().st_ino}\n"
    assert not list(Path(p.lock_dir).glob("*.tmp"))  # written by rename, nothing half-made
    other = idalloc.acquire(p, never)  # no flock is held for it, yet it is taken
    try:
        assert other.base == base + SIZE
        with pytest.raises(RunnerError) as exc:
            idalloc.acquire(p, never)
        assert "1 pinned to OCI containers" in exc.value.message
    finally:
        idalloc.release(other)
    idalloc.unpin(p.lock_dir, base, str(tmp_path / "containers" / "c2"))  # not its owner
    assert record.exists()
    idalloc.unpin(p.lock_dir, base, str(owner))
    assert not record.exists()
    again = idalloc.acquire(p, never)
    try:
        assert again.base == base
    finally:
        idalloc.release(again)


def test_a_stale_owner_is_reclaimed_only_when_no_process_uses_its_ids(tmp_path: Path) -> None:
    p = pool(tmp_path)
    owner = tmp_path / "c1"
    owner.mkdir()
    base = _pinned(p, owner)
    owner.rmdir()  # the container's state directory removed by hand: a stale record
    asked: list[tuple[int, int]] = []

    def busy(lo: int, hi: int) -> bool:
        asked.append((lo, hi))
        return True

    skipped = idalloc.acquire(p, busy)  # its processes are still there: not reused
    try:
        assert skipped.base == base + SIZE and asked[0] == (base, base + SIZE)
    finally:
        idalloc.release(skipped)
    assert (Path(p.lock_dir) / f"{base}.owner").exists()
    reclaimed = idalloc.acquire(p, never)
    try:
        assert reclaimed.base == base
        assert not (Path(p.lock_dir) / f"{base}.owner").exists()
    finally:
        idalloc.release(reclaimed)


@pytest.mark.parametrize("content", ["", "relative/dir\n1\n", "{dir}\nnot-an-inode\n",
                                     "{dir}\n1\n"])
def test_an_owner_record_not_naming_a_live_directory_is_stale(tmp_path: Path,
                                                              content: str) -> None:
    p = pool(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    os.makedirs(p.lock_dir, mode=0o700)
    # a record naming a path that is not a directory, or an existing one with another
    # inode (the state directory deleted and made again by another container)
    (Path(p.lock_dir) / f"{START}.owner").write_text(content.format(dir=live))
    lease = idalloc.acquire(p, never)
    try:
        assert lease.base == START
    finally:
        idalloc.release(lease)
