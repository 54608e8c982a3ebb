"""Digests as the OCI spec writes them (`sha256:<64 hex>`), and streams that hash as they read."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from stockade.errors import StockadeError

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 1 << 20


def check_digest(value: object, what: str) -> str:
    """Only sha256 is accepted: it is what docker and skopeo write, and a digest string also
    becomes a path in the store, so anything else is refused here, at the edge."""
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise StockadeError(f"{what}: not a sha256 digest: {value!r}")
    return value


def hex_of(digest: str) -> str:
    return digest.split(":", 1)[1]


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Reader(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


class HashingReader:
    """A read-only stream that hashes and counts every byte read through it."""

    def __init__(self, raw: Reader) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        if self.eof:
            return b""
        data = self._raw.read(n)
        self.eof = not data and n != 0
        self._hash.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read to the end: tar stops at its end marker, the digest covers the padding too."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()
