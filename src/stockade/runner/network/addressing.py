"""One slot per running jail: its /30 out of the pool, its device and table names.

Slot i of the pool ($STOCKADE_NET_POOL, default 10.213.0.0/16) is the /30 at offset 4*i:
.1 is the host's end of the veth, .2 the sandbox's. The names carry the slot number, so
whatever a killed run left is found again from its slot alone. A slot is held by an
flock() on <state dir>/net/<i>.lock (as runner.idalloc holds id ranges): taken before
anything is created, shared with the sandbox's init (never the payload: O_CLOEXEC), so
the kernel frees it when the runner and its sandbox are both gone.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import stat

from stockade.runner._record import frozen
from stockade.runner.codes import runner_error

POOL_ENV = "STOCKADE_NET_POOL"
DEFAULT_POOL = "10.213.0.0/16"
STATE_ENV = "STOCKADE_STATE_DIR"
DEFAULT_STATE_DIR = "/run/stockade"
SLOT_PREFIX = 30
DEVICE_PREFIX = "stockade"  # + slot: the host's veth end; + slot + "i": its ifb


@frozen
class Slot:
    index: int
    network: str  # the /30, e.g. 10.213.0.4/30
    host_addr: str  # .1 of it: the sandbox's gateway
    sandbox_addr: str  # .2 of it

    @property
    def host_if(self) -> str:
        return f"{DEVICE_PREFIX}{self.index}"

    @property
    def ifb(self) -> str:
        return f"{DEVICE_PREFIX}{self.index}i"

    @property
    def table(self) -> str:
        return f"{DEVICE_PREFIX}_{self.index}"


@frozen
class Held:
    slot: Slot
    fd: int  # the flock'd lock file


def state_dir(sub: str = "net") -> str:
    """<$STOCKADE_STATE_DIR or the default>/<sub>, created 0700 and checked: a file
    someone else could write would let them name what a cleanup deletes. The default is
    /run/stockade for root, $XDG_RUNTIME_DIR/stockade (else /tmp/stockade-UID) for
    others."""
    base = os.environ.get(STATE_ENV)
    if not base and os.geteuid() != 0:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        base = os.path.join(xdg, "stockade") if xdg else f"/tmp/stockade-{os.geteuid()}"
    base = base or DEFAULT_STATE_DIR
    path = os.path.join(base, sub)
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        top = os.lstat(base)
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise runner_error("namespaces", f"network state directory {path}: {exc.strerror}") from exc
    if top.st_uid not in (0, os.geteuid()) or top.st_mode & 0o022:
        raise runner_error("namespaces", f"network state directory {base} must belong to uid "
                           f"{os.geteuid()} or root, and no one else may write it")
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise runner_error("namespaces", f"network state directory {path} must be a directory "
                           f"owned by uid {os.geteuid()} that no one else can write")
    return path


def pool() -> ipaddress.IPv4Network:
    text = os.environ.get(POOL_ENV) or DEFAULT_POOL
    try:
        net = ipaddress.IPv4Network(text)
    except ValueError:
        net = None
    if net is None or net.prefixlen > SLOT_PREFIX:
        raise runner_error("preflight", f"{POOL_ENV}={text!r}: expected an IPv4 network of "
                           f"/{SLOT_PREFIX} or larger, e.g. {DEFAULT_POOL}")
    return net


def slot(index: int, net: ipaddress.IPv4Network | None = None) -> Slot:
    base = (net or pool()).network_address + 4 * index
    return Slot(index, f"{base}/{SLOT_PREFIX}", str(base + 1), str(base + 2))


def slot_count(net: ipaddress.IPv4Network | None = None) -> int:
    return int((net or pool()).num_addresses // 4)


def try_hold(directory: str, index: int) -> Held | None:
    """The slot locked for this process, or None when a live run holds it."""
    path = os.path.join(directory, f"{index}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return Held(slot(index), fd)


def release(held: Held) -> None:
    os.close(held.fd)
