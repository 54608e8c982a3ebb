"""errno names <-> numbers (Linux generic values, as Python's errno module has them)."""

from __future__ import annotations

import errno as _errno

ERRNO_BY_NAME: dict[str, int] = {
    name: getattr(_errno, name) for name in dir(_errno) if name.startswith("E") and name.isupper()
}


def errno_number(name: str) -> int | None:
    return ERRNO_BY_NAME.get(name.upper())


def errno_name(number: int) -> str:
    return _errno.errorcode.get(number, str(number))
