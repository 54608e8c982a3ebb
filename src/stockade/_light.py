"""Stand-ins for stdlib helpers on the latency-critical paths (`stockade run`, `stockade oci
create/start/kill/delete`).

`contextlib` imports `collections` and `functools` (~2 ms per process start here); these
paths need only its `suppress` and one generator-based context manager.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType


class suppress:  # noqa: N801 - a drop-in for contextlib.suppress
    """`with suppress(OSError): ...` ignores those exceptions, like contextlib.suppress."""

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self._exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        return exc_type is not None and issubclass(exc_type, self._exceptions)
