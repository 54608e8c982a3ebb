"""The one error type the CLI catches: its message is for the user."""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class Location:
    """Where in a policy file something was written (1-based line/column)."""

    file: str
    line: int = 0
    column: int = 0
    key_path: str = ""

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
