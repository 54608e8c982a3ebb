"""Pure parsers for /proc files (unit-tested against fake trees)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NS_LINK = re.compile(r"^\w+:\[(\d+)\]$")


@dataclass(frozen=True)
class Mount:
    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str  # the path inside the source filesystem that is mounted
    mountpoint: str
    options: tuple[str, ...]  # per-mount options (ro/rw, nosuid, ...)
    optional: tuple[str, ...]  # shared:N, master:N, ...
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    @property
    def shared(self) -> bool:
        return any(o.startswith("shared:") for o in self.optional)

    def line(self) -> str:
        opt = " ".join(self.optional)
        return (f"{self.mount_id} {self.parent_id} {self.major}:{self.minor} {self.root} "
                f"{self.mountpoint} {','.join(self.options)}{' ' + opt if opt else ''} - "
                f"{self.fstype} {self.source} {','.join(self.super_options)}")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    mounts = []
    for line in text.splitlines():
        if not line.strip():
            continue
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        if len(f) < 6 or len(r) < 2:
            raise ValueError(f"malformed mountinfo line: {line!r}")
        major, _, minor = f[2].partition(":")
        mounts.append(Mount(
            mount_id=int(f[0]), parent_id=int(f[1]), major=int(major), minor=int(minor),
            root=_unescape(f[3]), mountpoint=_unescape(f[4]), options=tuple(f[5].split(",")),
            optional=tuple(f[6:]), fstype=r[0], source=_unescape(r[1]),
            super_options=tuple(r[2].split(",")) if len(r) > 2 else (),
        ))
    return tuple(mounts)


def parse_status(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def hex_field(status: dict[str, str], key: str) -> int:
    return int(status.get(key, "0"), 16)


def int_list(status: dict[str, str], key: str) -> tuple[int, ...]:
    return tuple(int(x) for x in status.get(key, "").split())


@dataclass(frozen=True)
class CgroupEntry:
    hierarchy: int
    controllers: tuple[str, ...]  # empty for the v2 unified entry
    path: str


def parse_cgroup(text: str) -> tuple[CgroupEntry, ...]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        hid, ctrls, path = line.split(":", 2)
        out.append(CgroupEntry(int(hid), tuple(c for c in ctrls.split(",") if c), path))
    return tuple(out)


@dataclass(frozen=True)
class IdRange:
    inside: int
    outside: int
    count: int


def parse_idmap(text: str) -> tuple[IdRange, ...]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append(IdRange(int(parts[0]), int(parts[1]), int(parts[2])))
    return tuple(out)


def map_to_inside(ranges: tuple[IdRange, ...], outside: int) -> int | None:
    """An id as seen from the auditor (outside) translated into the target's user ns."""
    for r in ranges:
        if r.outside <= outside < r.outside + r.count:
            return r.inside + outside - r.outside
    return None


def ns_inode(link: str) -> int:
    m = _NS_LINK.match(link)
    if not m:
        raise ValueError(f"not a namespace link: {link!r}")
    return int(m.group(1))


def mask_of(last_cap: int) -> int:
    """Every capability bit up to cap_last_cap: never hard-code 0x3fffffffff."""
    return (1 << (last_cap + 1)) - 1


def environ_names(raw: bytes) -> tuple[str, ...]:
    names = []
    for item in raw.split(b"\0"):
        if b"=" in item:
            names.append(item.split(b"=", 1)[0].decode(errors="replace"))
    return tuple(names)
