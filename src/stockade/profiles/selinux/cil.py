"""Typed CIL nodes and one printer. Modules are built as data and printed, never
assembled by string concatenation; every identifier is checked when its node is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from stockade.errors import StockadeError

# CIL identifiers: start with a letter, then letters, digits, '_' (we refuse '.' so a
# generated name can never reach into another block's namespace).
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

SExpr = str | int | tuple["SExpr", ...]


class CilError(StockadeError):
    pass


def ident(name: str, what: str = "identifier") -> str:
    if not _IDENT.match(name):
        raise CilError(f"invalid SELinux {what}: {name!r} (expected [A-Za-z][A-Za-z0-9_]*)")
    return name


def _idents(names: Iterable[str], what: str) -> tuple[str, ...]:
    return tuple(ident(n, what) for n in names)


@dataclass(frozen=True)
class Comment:
    text: str

    def __post_init__(self) -> None:
        if "\n" in self.text:
            raise CilError("a CIL comment is one line")


@dataclass(frozen=True)
class TypeDecl:
    name: str

    def __post_init__(self) -> None:
        ident(self.name, "type name")

    def sexpr(self) -> SExpr:
        return ("type", self.name)


@dataclass(frozen=True)
class RoleType:
    role: str
    type: str

    def __post_init__(self) -> None:
        ident(self.role, "role")
        ident(self.type, "type name")

    def sexpr(self) -> SExpr:
        return ("roletype", self.role, self.type)


@dataclass(frozen=True)
class TypeAttributeSet:
    attribute: str
    types: tuple[str, ...]

    def __post_init__(self) -> None:
        ident(self.attribute, "attribute")
        _idents(self.types, "type name")

    def sexpr(self) -> SExpr:
        return ("typeattributeset", self.attribute, tuple(self.types))


@dataclass(frozen=True)
class Call:
    macro: str
    args: tuple[str, ...]

    def __post_init__(self) -> None:
        ident(self.macro, "macro")
        _idents(self.args, "macro argument")

    def sexpr(self) -> SExpr:
        return ("call", self.macro, tuple(self.args))


@dataclass(frozen=True)
class AccessVector:
    """`allow` / `neverallow` / `auditallow` / `dontaudit` of one class and its perms."""

    kind: str
    source: str
    target: str
    cls: str
    perms: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in ("allow", "neverallow", "auditallow", "dontaudit"):
            raise CilError(f"unknown access vector rule {self.kind!r}")
        ident(self.source, "type name")
        if self.target != "self":
            ident(self.target, "type name")
        ident(self.cls, "class")
        if not self.perms:
            raise CilError(f"{self.kind} {self.source} {self.target} {self.cls}: no permissions")
        _idents(self.perms, "permission")

    def sexpr(self) -> SExpr:
        return (self.kind, self.source, self.target, (self.cls, tuple(self.perms)))


def allow(source: str, target: str, cls: str, perms: Iterable[str]) -> AccessVector:
    return AccessVector("allow", source, target, cls, tuple(perms))


def neverallow(source: str, target: str, cls: str, perms: Iterable[str]) -> AccessVector:
    return AccessVector("neverallow", source, target, cls, tuple(perms))


@dataclass(frozen=True)
class Context:
    user: str
    role: str
    type: str
    low: str = "s0"
    high: str = "s0"

    def sexpr(self) -> SExpr:
        return (self.user, self.role, self.type, ((self.low,), (self.high,)))


@dataclass(frozen=True)
class PortCon:
    protocol: str  # tcp | udp
    port: int
    context: Context

    def __post_init__(self) -> None:
        if self.protocol not in ("tcp", "udp", "dccp", "sctp"):
            raise CilError(f"unknown portcon protocol {self.protocol!r}")
        if not 1 <= self.port <= 65535:
            raise CilError(f"port out of range: {self.port}")

    def sexpr(self) -> SExpr:
        return ("portcon", self.protocol, self.port, self.context.sexpr())


Statement = Comment | TypeDecl | RoleType | TypeAttributeSet | Call | AccessVector | PortCon


@dataclass(frozen=True)
class Module:
    name: str
    header: tuple[str, ...]
    statements: tuple[Statement, ...]

    def __post_init__(self) -> None:
        ident(self.name, "module name")


def _atom(value: SExpr) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    return "(" + " ".join(_atom(v) for v in value) + ")"


def render(module: Module) -> str:
    """The printer: one statement per line, comments as `;` lines, trailing newline."""
    lines = [f"; {h}" if h else ";" for h in module.header]
    for st in module.statements:
        if isinstance(st, Comment):
            lines.append("" if not st.text else f"; {st.text}")
        else:
            lines.append(_atom(st.sexpr()))
    return "\n".join(lines) + "\n"
