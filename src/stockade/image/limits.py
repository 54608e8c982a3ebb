"""How much an image may ask of the host: bytes, entries, depth and name length.

An archive is attacker input, and a 1 MB gzip layer can expand to terabytes of zeros or to a
directory chain deeper than any tool can walk. The limits are checked while the layers
stream, so a hostile layer is stopped when it crosses one, not after it has filled the disk.

Defaults (each can be set with `image load --max-...` or the environment):

    STOCKADE_IMAGE_MAX_SIZE     16G        uncompressed layer bytes of one load, all layers
    STOCKADE_IMAGE_MAX_ENTRIES  1000000    tar entries of one load, all layers
    STOCKADE_IMAGE_MAX_DEPTH    128        path components of one entry
    STOCKADE_IMAGE_MAX_PATH     1024       bytes of one entry's path or link target
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from stockade.errors import StockadeError
from stockade.image.digest import CHUNK, Reader

# A pax or GNU long-name header is read into memory whole by tarfile; real ones are bytes
# (a long name, an xattr). Bigger is an attempt on our memory, not metadata.
MAX_HEADER = 1 << 20

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^([0-9]+)([KMGT]?)(?:I?B)?$")


def parse_size(text: str, what: str) -> int:
    """`16G`, `512M`, `1048576`: binary units, as `du -h` prints them."""
    match = _SIZE.match(text.strip().upper())
    if not match or int(match.group(1)) == 0:
        raise StockadeError(f"{what}: found {text!r}, expected a positive size such as 512M or 16G")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_count(text: str, what: str) -> int:
    if not text.strip().isdigit() or int(text) == 0:
        raise StockadeError(f"{what}: found {text!r}, expected a positive whole number")
    return int(text)


@dataclass(frozen=True)
class Limits:
    max_size: int = 16 << 30
    max_entries: int = 1_000_000
    max_depth: int = 128
    max_path: int = 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: int | None) -> Limits:
        """The defaults, then STOCKADE_IMAGE_MAX_* from `env`, then the non-None overrides
        (the command line's options)."""
        env = os.environ if env is None else env
        values: dict[str, int] = {}
        for f in fields(cls):
            var = "STOCKADE_IMAGE_" + f.name.upper()
            if (text := env.get(var)) is not None:
                parse = parse_size if f.name == "max_size" else parse_count
                values[f.name] = parse(text, var)
            if (given := overrides.get(f.name)) is not None:
                values[f.name] = given
        return cls(**values)


_HEADER_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                 tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


class BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads a pax or GNU long-name header into memory whole: refuse a huge one
    before it is read (tarfile has no public hook for this; _proc_member is where it reads)."""

    def _proc_member(self, archive: tarfile.TarFile) -> Any:
        if self.type in _HEADER_TYPES and self.size > MAX_HEADER:
            raise StockadeError(f"tar has a {self.size}-byte extended header; at most "
                                f"{MAX_HEADER} bytes are accepted")
        return super()._proc_member(archive)  # type: ignore[misc]


class LimitError(StockadeError):
    """An image crossed one of the Limits; the message names the limit and how to raise it."""

    def __init__(self, what: str, found: int, limit: int, option: str, where: str = "") -> None:
        env = "STOCKADE_IMAGE_" + option.removeprefix("--").replace("-", "_").upper()
        at = f" at entry {_short(where)}" if where else ""
        super().__init__(f"image exceeds the {what} limit{at}: found {found}, expected at most {limit}; "
                         f"if the image is trusted, raise it with `image load {option}` or ${env}")


class Budget:
    """What one load has used so far of its Limits (all layers together)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bytes = 0
        self.entries = 0

    def charge_bytes(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_size:
            raise LimitError("unpacked size", self.bytes, self.limits.max_size, "--max-size")

    def charge_entry(self, rel: str, linkname: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise LimitError("entry count", self.entries, self.limits.max_entries, "--max-entries")
        depth = rel.count("/") + 1 if rel else 0
        if depth > self.limits.max_depth:
            raise LimitError("directory depth", depth, self.limits.max_depth, "--max-depth", rel)
        for name in (rel, linkname):
            size = len(name.encode("utf-8", "surrogateescape"))
            if size > self.limits.max_path:
                raise LimitError("path length", size, self.limits.max_path, "--max-path", rel)

    def metered(self, stream: Reader) -> Reader:
        return _Metered(stream, self)


def _short(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")


class _Metered:
    """A stream that charges every byte read through it to a Budget, so that a bomb is
    stopped at the limit while it is being decompressed."""

    def __init__(self, raw: Reader, budget: Budget) -> None:
        self._raw = raw
        self._budget = budget

    def read(self, n: int = -1) -> bytes:
        if n >= 0:
            data = self._raw.read(n)
            self._budget.charge_bytes(len(data))
            return data
        pieces = []  # "all": in pieces, so that the limit stops it before memory does
        while piece := self.read(CHUNK):
            pieces.append(piece)
        return b"".join(pieces)

    def readable(self) -> bool:
        return True
