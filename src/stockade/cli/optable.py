"""A verb's options as one declarative table, read twice: by `add_to` for its argparse
parser (what --help shows, every error message) and by `parse_fast`, which parses the
plain command lines engines and scripts send without importing argparse.

"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the fast path imports no more than it needs
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

# kind: "flag" (store_true) | "value" | "int" (type=int) | "append" (default [])
FLAG, VALUE, INT, APPEND = "flag", "value", "int", "append"
# default: set only when given (argparse.SUPPRESS, which argparse compares by identity)
SUPPRESS = object()


class Option:
    """One option of the table (a plain class: dataclasses would import inspect on every start)."""

    __slots__ = ("flags", "dest", "kind", "default", "help", "metavar", "choices")

    def __init__(self, flags: tuple[str, ...], dest: str, kind: str, default: object, help: str,
                 *, metavar: str | None = None, choices: tuple[str, ...] | None = None) -> None:
        self.flags, self.dest, self.kind, self.default = flags, dest, kind, default
        self.help, self.metavar, self.choices = help, metavar, choices


# A positional: (dest, help, default); default None means required, else nargs="?".
Positional = tuple[str, str, "str | None"]


def add_to(parser: argparse.ArgumentParser, options: Sequence[Option],
           positionals: Sequence[Positional] = ()) -> None:
    """The table's options and positionals on an argparse parser."""
    import argparse

    for o in options:
        default = argparse.SUPPRESS if o.default is SUPPRESS else o.default
        if o.kind == FLAG:
            parser.add_argument(*o.flags, dest=o.dest, action="store_true", help=o.help)
        elif o.kind == APPEND:
            parser.add_argument(*o.flags, dest=o.dest, action="append", default=o.default,
                                metavar=o.metavar, help=o.help)
        elif o.kind == INT:
            parser.add_argument(*o.flags, dest=o.dest, default=default, metavar=o.metavar,
                                type=int, help=o.help)
        else:
            parser.add_argument(*o.flags, dest=o.dest, default=default, metavar=o.metavar,
                                choices=o.choices, help=o.help)
    for dest, help_, default in positionals:
        if default is None:
            parser.add_argument(dest, help=help_)
        else:
            parser.add_argument(dest, nargs="?", default=default, help=help_)


def defaults(options: Sequence[Option]) -> dict[str, object]:
    return {o.dest: ([] if o.kind == APPEND else False if o.kind == FLAG else o.default)
            for o in options if o.default is not SUPPRESS}


def _option_like(word: str) -> bool:
    """What argparse may read as an option ("-" alone is a plain word to it)."""
    return len(word) > 1 and word[0] == "-"


# Kept by issue #18's rule: no argparse saves ~14 ms a start (bench CLI 73.7 -> 59.9 ms).
def parse_fast(argv: Sequence[str], options: Sequence[Option], *,
               positionals: Sequence[Positional] = (), rest: str | None = None,
               stop: frozenset[str] = frozenset()) -> tuple[dict[str, object], int] | None:
    """argv's options (exact flags only, values not starting with "-") into a dict
    of dest -> value, as argparse would set them, and where parsing stopped: at the first
    word of `stop` (a subcommand), else at the end. `rest`: the first other word and
    everything after it is that dest's list (argparse.REMAINDER); else `positionals`,
    after every option. None for anything else: the caller asks argparse."""
    by_flag = {f: o for o in options for f in o.flags}
    values = defaults(options)
    at, n = 0, len(argv)
    while at < n:
        word = argv[at]
        if word in stop:
            return values, at
        if not _option_like(word) or word == "--":
            break
        flag, eq, inline = word.partition("=")
        o = by_flag.get(flag)
        if o is None or (eq and (o.kind == FLAG or not flag.startswith("--"))):
            return None  # unknown, abbreviated, grouped, -xVALUE, --flag=: argparse's
        at += 1
        if o.kind == FLAG:
            values[o.dest] = True
            continue
        if eq:
            value = inline
        elif at < n and not _option_like(argv[at]):
            value, at = argv[at], at + 1
        else:
            return None  # a missing value (or one argparse reads differently)
        if o.choices is not None and value not in o.choices:
            return None
        if o.kind == INT:
            try:
                values[o.dest] = int(value)
            except ValueError:
                return None
        elif o.kind == APPEND:
            values[o.dest].append(value)  # type: ignore[attr-defined]
        else:
            values[o.dest] = value
    if stop:
        return None  # no subcommand
    if rest is not None:
        values[rest] = list(argv[at:])
        return values, n
    words = argv[at:]
    required = sum(1 for p in positionals if p[2] is None)
    if not required <= len(words) <= len(positionals) or any(map(_option_like, words)):
        return None
    for i, (dest, _, default) in enumerate(positionals):
        values[dest] = words[i] if i < len(words) else default
    return values, n
