"""The one error type the CLI catches: its message is for the user."""

from __future__ import annotations


class StockadeError(Exception):
    """A failure the user can act on. `exit_code` follows CLI.md (2 = bad input)."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class Location:
    """Where in a policy file something was written (1-based line/column).

    Immutable (read-only properties), hashable and compared by value, like the frozen
    dataclass it replaces: a plain class because `dataclasses` pulls in `inspect` and
    `ast`, and every CLI start, `stockade run` included, imports this module (the cost:
    bench/shim_bench.py, records).
    """

    __slots__ = ("_file", "_line", "_column", "_key_path")
    __match_args__ = ("file", "line", "column", "key_path")

    def __init__(self, file: str, line: int = 0, column: int = 0, key_path: str = "") -> None:
        self._file = file
        self._line = line
        self._column = column
        self._key_path = key_path

    @property
    def file(self) -> str:
        return self._file

    @property
    def line(self) -> int:
        return self._line

    @property
    def column(self) -> int:
        return self._column

    @property
    def key_path(self) -> str:
        return self._key_path

    def _key(self) -> tuple[str, int, int, str]:
        return (self._file, self._line, self._column, self._key_path)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Location) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Location(file={self._file!r}, line={self._line!r}, "
                f"column={self._column!r}, key_path={self._key_path!r})")

    def __str__(self) -> str:
        where = self._file
        if self._line:
            where += f":{self._line}:{self._column}"
        return where


class PolicyError(StockadeError):
    """A policy that does not load: file:line:col, key path, found, expected, suggestion."""

    def __init__(
        self,
        location: Location,
        problem: str,
        *,
        found: str | None = None,
        expected: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        parts = [f"{location}: "]
        if location.key_path:
            parts.append(f"{location.key_path}: ")
        parts.append(problem)
        if found is not None:
            parts.append(f"; found {found}")
        if expected is not None:
            parts.append(f"; expected {expected}")
        if suggestion:
            parts.append(f" ({suggestion})")
        super().__init__("".join(parts), exit_code=2)
        self.location = location
        self.problem = problem
        self.found = found
        self.expected = expected
        self.suggestion = suggestion


class RunnerError(StockadeError):
    """A runner step failed before the payload ran; `step` names it."""

    def __init__(self, step: str, message: str, *, exit_code: int) -> None:
        # No command name: the CLI prefixes "stockade: ", and `oci create` raises these too.
        super().__init__(f"step '{step}' failed: {message}", exit_code=exit_code)
        self.step = step
