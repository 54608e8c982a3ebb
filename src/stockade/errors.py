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

    Immutable and hashable, compared by value like the frozen dataclass it replaces: a
    plain class because `dataclasses` pulls in `inspect` and `ast` (~5 ms), and every CLI
    start, `stockade run` included, imports this module.
    """

    __slots__ = ("file", "line", "column", "key_path")
    __match_args__ = ("file", "line", "column", "key_path")

    file: str
    line: int
    column: int
    key_path: str

    def __init__(self, file: str, line: int = 0, column: int = 0, key_path: str = "") -> None:
        setattr_ = object.__setattr__  # our __setattr__ refuses, as a frozen dataclass does
        setattr_(self, "file", file)
        setattr_(self, "line", line)
        setattr_(self, "column", column)
        setattr_(self, "key_path", key_path)

    def _key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.key_path)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Location)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Location(file={self.file!r}, line={self.line!r}, column={self.column!r}, "
                f"key_path={self.key_path!r})")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[Location], tuple[str, int, int, str]]:
        # pickle/copy: rebuild through __init__ (the default would setattr the slots)
        return (Location, self._key())

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column}"
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
        super().__init__(f"stockade run: step '{step}' failed: {message}", exit_code=exit_code)
        self.step = step
