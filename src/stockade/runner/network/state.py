"""What each jail created, written before it is created, and the forwarding refcount.

<state dir>/net/<slot>.json names the devices and the table of a jail and the
interfaces it needed forwarding on; whoever next holds the slot's lock with the record
still there (the next jail in that slot, any jail's start-up sweep, `stockade gc`)
removes what it names. forwarding.json keeps the value each interface had before a jail
switched IPv4 forwarding on there: the value goes back when no live jail needs the
interface any more. Nothing else on the host is changed: the host end of the veth gets
its own forwarding (and route_localnet for loopback publishing) and goes away with it.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import suppress

from stockade.runner.network.addressing import try_hold

FORWARDING_FILE = "forwarding.json"
FORWARDING_LOCK = "forwarding.lock"


def record_path(directory: str, index: int) -> str:
    return os.path.join(directory, f"{index}.json")


def write_record(directory: str, index: int, record: dict[str, object]) -> None:
    path = record_path(directory, index)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.write(fd, json.dumps(record, sort_keys=True).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_record(directory: str, index: int) -> dict[str, object] | None:
    try:
        with open(record_path(directory, index), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_record(directory: str, index: int) -> None:
    with suppress(FileNotFoundError):
        os.unlink(record_path(directory, index))


def record_indexes(directory: str) -> list[int]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())


def _sysctl_path(dev: str) -> str:
    return f"/proc/sys/net/ipv4/conf/{dev}/forwarding"


def read_forwarding(dev: str) -> str | None:
    try:
        with open(_sysctl_path(dev)) as fh:
            return fh.read().strip()
    except OSError:
        return None


def write_sysctl(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


class _Locked:
    """forwarding.json under its flock, read on entry and written back on exit."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.saved: dict[str, str] = {}
        self.fd = -1

    def __enter__(self) -> dict[str, str]:
        path = os.path.join(self.directory, FORWARDING_LOCK)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            with open(os.path.join(self.directory, FORWARDING_FILE), encoding="utf-8") as fh:
                loaded = json.load(fh)
            self.saved = {str(k): str(v) for k, v in loaded.items()}
        except (OSError, ValueError, AttributeError):
            self.saved = {}
        return self.saved

    def __exit__(self, *exc: object) -> None:
        try:
            path = os.path.join(self.directory, FORWARDING_FILE)
            if self.saved:
                tmp = path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(self.saved, fh, sort_keys=True)
                os.replace(tmp, path)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(self.fd)


def enable_forwarding(directory: str, devs: list[str]) -> None:
    """Switch IPv4 forwarding on for `devs` (the uplinks replies come back through),
    remembering each one's value the first time a jail changes it."""
    with _Locked(directory) as saved:
        for dev in devs:
            before = read_forwarding(dev)
            if before is None or before == "1":
                continue  # gone, or already forwarding: nothing of ours to undo
            saved.setdefault(dev, before)
            write_sysctl(_sysctl_path(dev), "1")


def release_forwarding(directory: str, own: int) -> list[str]:
    """Put back the value of every interface no other live jail needs; the names."""
    restored: list[str] = []
    with _Locked(directory) as saved:
        if not saved:
            return restored
        needed: set[str] = set()
        for index in record_indexes(directory):
            if index == own:
                continue
            held = try_hold(directory, index)
            if held is not None:  # its run is gone: its own sweep will not need these
                os.close(held.fd)
                continue
            record = read_record(directory, index) or {}
            needed.update(str(d) for d in record.get("forwarding", []) or [])  # type: ignore[attr-defined]
        for dev in sorted(saved):
            if dev in needed:
                continue
            if read_forwarding(dev) is not None:
                with suppress(OSError):
                    write_sysctl(_sysctl_path(dev), saved[dev])
            del saved[dev]
            restored.append(dev)
    return restored


def live_records(directory: str) -> list[dict[str, object]]:
    """The records of jails whose run is alive, without creating or taking anything (for
    `stockade audit`): a shared lock that cannot be had means a run holds the slot."""
    out = []
    for index in record_indexes(directory):
        try:
            fd = os.open(os.path.join(directory, f"{index}.lock"), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            record = read_record(directory, index)
            if record is not None:
                out.append(record)
        finally:
            os.close(fd)
    return out
