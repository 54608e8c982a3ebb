"""Host id ranges for root's `map: auto` sandboxes: one range per running sandbox.

With one fixed range, every sandbox root started mapped to the same host uid: the kernel
counts per-user limits by host uid (128 inotify instances, user watches, ...) and allows
signals between equal uids, so one sandbox could exhaust every other's limits or stop a
payload it can see (issue 13). As podman's `--userns=auto`, each concurrent sandbox now
takes its own range of 65536 ids from a pool: by default 2048 ranges from 2000000000
(below 2^31), $STOCKADE_ID_POOL=START:COUNT to move or resize it (every runner on a host
must use the same pool: ranges are told apart by their first id).

A range is held by an flock() on <state dir>/idpool/<first id>.lock ($STOCKADE_STATE_DIR,
default /run/stockade), taken by the runner before the clone and dropped after the
sandbox's end (its cgroup removed, its init reaped). The sandbox's init shares the open
file, never the payload (O_CLOEXEC). The kernel drops the lock when the last holder dies,
so a SIGKILLed runner frees its range; lock files are never removed (removing one races
with a concurrent locker), and a stale file is harmless. A holder writes its pid into the
file and empties it on release: a range whose file is not empty was left by a runner
that died, and is taken again only when no process has an id in it (without a pid
namespace, a payload's children can outlive the runner). Ranges overlapping an account of
/etc/passwd or /etc/group, or a range of /etc/subuid or /etc/subgid, are never used.

An OCI container (`stockade oci create --policy` giving a bundle a user namespace)
outlives the process that made it, so no flock can hold its range: `pin` writes an owner
record, <first id>.owner beside the lock file (atomically, under the lock), naming the
container's state directory (path and inode). acquire skips a range whose owner
directory exists; a record whose directory is gone (a create killed half-way, a state
directory removed by hand) is stale, and the range is taken again once no process has
an id in it. `unpin` (the container's delete) removes the record.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time

from stockade.runner._record import frozen, replace
from stockade.runner.codes import runner_error
from stockade.runner.idmap import range_conflict
from stockade.runner.plan import (
    AUTO_POOL_RANGES,
    AUTO_RANGE_BASE,
    AUTO_RANGE_COUNT,
    IdMap,
    IdPool,
    Plan,
)

TYPE_CHECKING = False  # not typing's: the run path loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

POOL_ENV = "STOCKADE_ID_POOL"
STATE_ENV = "STOCKADE_STATE_DIR"
DEFAULT_STATE_DIR = "/run/stockade"
_MAX_ID = 2**32 - 1  # (uid_t)-1 is "no id": never mapped


@frozen
class Lease:
    """A range held for one sandbox: ids [base, base + count), locked through `fd`."""

    base: int
    count: int
    fd: int
    path: str


def configured_pool(env: Mapping[str, str] | None = None) -> IdPool:
    """The pool from $STOCKADE_ID_POOL (START:COUNT) and $STOCKADE_STATE_DIR."""
    env = os.environ if env is None else env
    lock_dir = os.path.join(env.get(STATE_ENV) or DEFAULT_STATE_DIR, "idpool")
    spec = env.get(POOL_ENV)
    if not spec:
        return IdPool(AUTO_RANGE_BASE, AUTO_POOL_RANGES * AUTO_RANGE_COUNT, lock_dir)
    start_text, sep, count_text = spec.partition(":")
    if not (sep and start_text.isdigit() and count_text.isdigit()):
        raise runner_error("preflight", f"{POOL_ENV}={spec!r}: expected START:COUNT (host ids, "
                           f"e.g. {AUTO_RANGE_BASE}:{AUTO_POOL_RANGES * AUTO_RANGE_COUNT})")
    start, count = int(start_text), int(count_text)
    if start == 0 or count < AUTO_RANGE_COUNT or start + count > _MAX_ID:
        raise runner_error("preflight", f"{POOL_ENV}={spec!r}: the pool must start above 0, "
                           f"hold at least {AUTO_RANGE_COUNT} ids and end below {_MAX_ID}")
    return IdPool(start, count, lock_dir)


def acquire(pool: IdPool, in_use: Callable[[int, int], bool] | None = None) -> Lease:
    """Lock the first free range of the pool; raises RunnerError('idmap') when none is.

    in_use(lo, hi): whether a process has an id in [lo, hi) (default: a /proc scan),
    asked only for ranges a dead runner left."""
    directory = _lock_dir(pool.lock_dir)
    size = pool.range_size
    held = taken = left = pinned = 0
    for base in range(pool.start, pool.start + pool.size - size + 1, size):
        if range_conflict(base, base + size) is not None:
            taken += 1
            continue
        lease, why = _try_lock(directory, base, size, in_use or ids_in_use)
        if lease is not None:
            return lease
        held += why == "held"
        left += why == "left"
        pinned += why == "pinned"
    last = pool.start + pool.size // size * size - 1
    raise runner_error("idmap", f"id pool exhausted: no free range of {size} ids in "
                       f"{pool.start}-{last} ({held} held by running sandboxes, {pinned} "
                       f"pinned to OCI containers, {left} with "
                       f"processes left by a killed runner, {taken} overlapping host accounts "
                       "or /etc/subuid, /etc/subgid); wait for a sandbox to end or give a "
                       f"larger pool ({POOL_ENV}=START:COUNT)")


def release(lease: Lease) -> None:
    """Give the range back (after the sandbox's processes are gone)."""
    try:
        os.ftruncate(lease.fd, 0)  # emptied: released cleanly, no process scan next time
    finally:
        os.close(lease.fd)


def pin(lease: Lease, owner_dir: str) -> None:
    """Keep the leased range for `owner_dir` (an OCI container's state directory) after
    the lease is released, until unpin or until the directory is gone."""
    st = os.stat(owner_dir)
    record = _owner_path(lease.path)
    tmp = record + ".tmp"  # one writer at a time: we hold the range's lock
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.write(fd, b"%s\n%d\n" % (os.path.abspath(owner_dir).encode(), st.st_ino))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, record)
    except OSError as exc:
        raise runner_error("idmap", f"id range owner record {record}: {exc.strerror}") from exc


def unpin(lock_dir: str, base: int, owner_dir: str, wait_s: float = 5.0) -> None:
    """Remove the owner record of range `base` if it still names `owner_dir` (call it
    while the directory exists: until then no sandbox holds the range's lock for long).
    A record left (lock busy, an error) is only stale: acquire reclaims it."""
    path = os.path.join(lock_dir, f"{base}.lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
        record = _owner_path(path)
        if _read_owner(record)[0] == os.path.abspath(owner_dir):
            os.unlink(record)
    except OSError:
        return
    finally:
        os.close(fd)


def placed(plan: Plan, lease: Lease) -> Plan:
    """The plan with its placeholder maps (the pool's first range) moved to the lease."""
    ident = plan.identity
    if ident.pool is None:
        return plan
    shift = lease.base - ident.pool.start

    def moved(maps: tuple[IdMap, ...]) -> tuple[IdMap, ...]:
        return tuple(IdMap(m.inside, m.outside + shift, m.count) for m in maps)

    return replace(plan, identity=replace(ident, uid_map=moved(ident.uid_map),
                                          gid_map=moved(ident.gid_map), pool=None,
                                          owner=lease.base))


def ids_in_use(lo: int, hi: int) -> bool:
    """Whether a running process has a uid or gid (real, effective, saved, fs) in [lo, hi)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return True  # cannot tell: do not reuse the range
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as fh:
                text = fh.read()
        except OSError:
            continue  # gone meanwhile
        for line in text.splitlines():
            if line.startswith((b"Uid:", b"Gid:")) and any(
                    lo <= int(v) < hi for v in line.split()[1:]):
                return True
    return False


def _lock_dir(path: str) -> str:
    """The lock directory, created if missing; refused unless only we can write it (a
    file someone else could replace would let two sandboxes share a range)."""
    try:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.lstat(path)
    except OSError as exc:
        raise runner_error("idmap", f"id pool lock directory {path}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise runner_error("idmap", f"id pool lock directory {path} must be a directory "
                           f"owned by uid {os.geteuid()} that no one else can write")
    return path


def _owner_path(lock_path: str) -> str:
    return lock_path[: -len(".lock")] + ".owner"


def _read_owner(record: str) -> tuple[str, int] | tuple[None, None]:
    """(directory, inode) an owner record names; (None, None) without a record."""
    try:
        with open(record, "rb") as fh:
            lines = fh.read().split(b"\n")
    except FileNotFoundError:
        return None, None
    ino = int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else -1
    return os.fsdecode(lines[0]), ino  # unreadable content: stale (no such directory)


def _owner_alive(record: str) -> bool | None:
    """None: no owner record; True: its container's state directory exists; False: stale."""
    directory, ino = _read_owner(record)
    if directory is None:
        return None
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_ino == ino


def _try_lock(directory: str, base: int, count: int,
              in_use: Callable[[int, int], bool]) -> tuple[Lease | None, str]:
    """(the lease, "") or (None, "held" | "pinned" | "left")."""
    path = os.path.join(directory, f"{base}.lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise runner_error("idmap", f"id range lock {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None, "held"
    except OSError as exc:
        os.close(fd)
        raise runner_error("idmap", f"id range lock {path}: {exc.strerror}") from exc
    try:
        record = _owner_path(path)
        owner = _owner_alive(record)
        if owner:
            os.close(fd)  # an OCI container's, for as long as it exists
            return None, "pinned"
        if (owner is False or os.pread(fd, 32, 0)) and in_use(base, base + count):
            os.close(fd)  # a killed runner's or a vanished container's processes are here
            return None, "left"
        if owner is False:
            os.unlink(record)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
    except OSError as exc:
        os.close(fd)
        raise runner_error("idmap", f"id range lock {path}: {exc.strerror}") from exc
    return Lease(base, count, fd, path), ""
