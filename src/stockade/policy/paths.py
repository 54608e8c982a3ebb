"""The policy's path grammar: which paths and globs a policy may name.

Checked for every resolved policy (policy.resolve) and again by the path-aware backends
(AppArmor, SELinux, Landlock, systemd, the container targets). The policy's glob language
is AppArmor's subset: `*` (within one component), `**` (any depth), `?`, `[...]`
character classes and `{a,b}` alternation (not nested).
Everything else that AppArmor would read as syntax is refused here, at the edge, with
the policy location, so a backend never emits a rule that means something else.
"""

from __future__ import annotations

from collections.abc import Iterable

from stockade.errors import Location, PolicyError
from stockade.policy.model import PathEntry, Policy

_GLOB_CHARS = set("*?[]{}")
# Characters AppArmor's parser gives meaning to (variables, quoting, rule separators,
# regex escapes) or that can never be in a path rule.
_FORBIDDEN = {"@": "'@' (AppArmor variable syntax)", '"': "a double quote",
              "\\": "a backslash escape", "\n": "a newline", "\x00": "a NUL byte",
              "^": "'^' (AppArmor hat/negation syntax)", "#": "'#' (starts an AppArmor comment)"}
_SECTIONS = ("read_only", "writable", "exec", "deny", "tmpfs")


def has_glob(path: str) -> bool:
    return any(c in _GLOB_CHARS for c in path)


def validate_path(path: str, origin: Location, *, allow_glob: bool = True) -> None:
    """Raise PolicyError unless `path` is absolute, clean, and a glob AppArmor can express."""
    def bad(problem: str, expected: str) -> PolicyError:
        return PolicyError(origin, problem, found=repr(path), expected=expected)

    if not path.startswith("/"):
        raise bad("path is not absolute", "an absolute path starting with '/'")
    for ch, what in _FORBIDDEN.items():
        if ch in path:
            raise bad(f"path contains {what}", "a plain path or a glob of * ** ? [..] {a,b}")
    parts = path.split("/")
    if any(p in (".", "..") for p in parts):
        raise bad("path contains '.' or '..' components", "a normalized absolute path")
    if "//" in path:
        raise bad("path contains '//'", "a normalized absolute path")
    if not allow_glob and has_glob(path):
        raise bad("globs are not allowed here", "a plain absolute path")
    if "***" in path:
        raise bad("'***' is not a glob AppArmor can express", "'*' or '**'")
    depth_brace = 0
    in_class = False
    for i, ch in enumerate(path):
        if in_class:
            if ch == "]":
                in_class = False
            elif ch == "/":
                raise bad("a '[...]' class spans a '/'", "a character class within one component")
            continue
        if ch == "[":
            if path[i + 1 : i + 2] == "]":
                raise bad("empty '[]' character class", "a non-empty character class")
            in_class = True
        elif ch == "]":
            raise bad("unbalanced ']'", "balanced '[...]'")
        elif ch == "{":
            depth_brace += 1
            if depth_brace > 1:
                raise bad("nested '{...}' alternation", "one level of '{a,b}'")
        elif ch == "}":
            depth_brace -= 1
            if depth_brace < 0:
                raise bad("unbalanced '}'", "balanced '{a,b}'")
        elif ch == "," and depth_brace == 0:
            raise bad("',' outside '{...}'", "',' only inside '{a,b}' alternation")
    if in_class:
        raise bad("unbalanced '['", "balanced '[...]'")
    if depth_brace:
        raise bad("unbalanced '{'", "balanced '{a,b}'")


def policy_paths(policy: Policy) -> Iterable[tuple[str, PathEntry]]:
    for section in _SECTIONS:
        for entry in getattr(policy.filesystem, section):
            yield section, entry


def validate_filesystem(policy: Policy) -> None:
    """Loader hook: every filesystem path of a resolved policy; tmpfs takes no globs."""
    for section, entry in policy_paths(policy):
        origin = entry.origin
        if not origin.key_path:
            origin = Location(origin.file, origin.line, origin.column, f"filesystem.{section}")
        validate_path(entry.path, origin, allow_glob=section != "tmpfs")
    for entry in policy.filesystem.expose:  # the runner binds it: a plain path
        origin = entry.origin
        if not origin.key_path:
            origin = Location(origin.file, origin.line, origin.column, "filesystem.expose")
        validate_path(entry.path, origin, allow_glob=False)


def subtree_prefix(path: str) -> str | None:
    """`/usr/lib/**` → `/usr/lib`; a plain path → itself; other globs → None.

    Backends that work on whole hierarchies (Landlock, systemd) can express exactly
    these two shapes.
    """
    if not has_glob(path):
        return path
    if path.endswith("/**") and not has_glob(path[:-3]):
        return path[:-3] or "/"
    return None
