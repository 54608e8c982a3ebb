"""Read a YAML policy file into plain data, keeping the line/column of every key and value."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from stockade.errors import Location, PolicyError

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceDocument:
    """Plain data (dict/list/scalars) plus a position for each key path."""

    file: str
    data: Any
    positions: Mapping[KeyPath, tuple[int, int]]

    def location(self, path: KeyPath) -> Location:
        """The closest recorded position for `path` (walks up to the nearest parent)."""
        probe = tuple(path)
        while probe and probe not in self.positions:
            probe = probe[:-1]
        line, col = self.positions.get(probe, (1, 1))
        return Location(self.file, line, col, format_path(path))


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}

# Hostile-input limits. A real policy is a few KiB, at most ~900 nodes (the `default`
# preset, Docker's profile), ~6 levels deep; the limits are far above that and far below
# what costs a second or a hundred MB (bench/hostile_input_bench.py, bench/RESULTS.md).
MAX_POLICY_BYTES = 1 << 20
# Counted while composing, an alias counting its whole target again: a "billion laughs"
# file is a few hundred bytes but expands to millions of values, and is refused after
# MAX_YAML_NODES, before any of them is built.
MAX_YAML_NODES = 20_000
MAX_YAML_DEPTH = 64


def node_count(data: Any) -> int:
    """How many YAML nodes `data` becomes when written out (keys count), as the composer
    counts them: for refusing a document before the time spent dumping it."""
    count, todo = 0, [data]
    while todo:
        item = todo.pop()
        count += 1
        if isinstance(item, dict):
            count += len(item)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return count


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Refused(Exception):
    """Input over a limit, raised while composing (where the file name is not known)."""

    def __init__(self, mark: Any, problem: str, found: str, expected: str) -> None:
        super().__init__(problem)
        self.mark, self.problem, self.found, self.expected = mark, problem, found, expected


class _CountingComposer(yaml.composer.Composer):
    """PyYAML's composer, counting nodes as it goes (an alias adds the size of what it
    names) and refusing an alias to a node still being composed (a recursive alias)."""

    peek_event: Callable[[], Any]  # the parser's, later in the MRO

    def __init__(self) -> None:
        super().__init__()
        self.nodes_seen = 0
        self.anchor_sizes: dict[str, int] = {}

    def _count(self, n: int, mark: Any) -> None:
        self.nodes_seen += n
        if self.nodes_seen > MAX_YAML_NODES:
            raise _Refused(mark, "too many YAML nodes",
                           found=f"more than {MAX_YAML_NODES} (aliases expanded)",
                           expected=f"at most {MAX_YAML_NODES} (the limit for a policy)")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent):
            if anchor in self.anchors and anchor not in self.anchor_sizes:
                raise _Refused(event.start_mark, "recursive YAML alias",
                               found=f"*{anchor} inside the node &{anchor} names",
                               expected="aliases to finished nodes only")
            self._count(self.anchor_sizes.get(str(anchor), 1), event.start_mark)
            return super().compose_node(parent, index)
        before = self.nodes_seen
        self._count(1, event.start_mark)
        node = super().compose_node(parent, index)
        if anchor is not None:
            self.anchor_sizes[anchor] = self.nodes_seen - before
        return node


def _loader_class() -> type:
    """The counting composer over libyaml's parser (events several times faster), or
    over PyYAML's pure-Python parser where libyaml is missing."""
    try:
        from yaml._yaml import CParser
    except ImportError:
        class PyLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,
                       _CountingComposer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
            def __init__(self, text: str) -> None:
                yaml.reader.Reader.__init__(self, text)
                yaml.scanner.Scanner.__init__(self)
                yaml.parser.Parser.__init__(self)
                _CountingComposer.__init__(self)
                yaml.constructor.SafeConstructor.__init__(self)
                yaml.resolver.Resolver.__init__(self)

        return PyLoader

    class CLoader(_CountingComposer, CParser, yaml.constructor.SafeConstructor,
                  yaml.resolver.Resolver):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _CountingComposer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    return CLoader


_Loader = _loader_class()


class _Builder:
    """Composed nodes -> plain data, recording the position of every key path."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[KeyPath, tuple[int, int]] = {}
        self.constructor = yaml.constructor.SafeConstructor()

    def where(self, node: yaml.Node, path: KeyPath) -> Location:
        return Location(self.file, *_mark(node), format_path(path))

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        if len(path) > MAX_YAML_DEPTH:  # aliases can nest deeper than the text does
            shown = Location(self.file, *_mark(node), format_path(path[:8]) + "...")
            raise PolicyError(shown, "YAML nested too deeply",
                              found=f"more than {MAX_YAML_DEPTH} levels",
                              expected=f"at most {MAX_YAML_DEPTH} (the limit for a policy)")
        self.positions[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise PolicyError(self.where(key_node, path), "a key must be a plain name",
                                  found="a collection", expected="a string key")
            key = str(key_node.value)
            if key in out:
                raise PolicyError(self.where(key_node, (*path, key)), "duplicate key",
                                  found=repr(key), expected="each key once",
                                  suggestion="merge the two entries")
            out[key] = self.build(value_node, (*path, key))
            self.positions[(*path, key)] = _mark(key_node)
        return out

    def scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise PolicyError(self.where(node, path), "unsupported YAML tag", found=node.tag,
                              expected="plain scalars, lists and maps")
        return self.constructor.yaml_constructors[node.tag](self.constructor, node)


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> PolicyError:
    """libyaml's problem ("did not find expected ','") at its mark, and the construct it
    was reading ("while parsing a flow sequence") at where that construct started; a
    context that is half the sentence ("expected a single document in the stream" + "but
    found another document") is put in front of the problem."""
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = " ".join((exc.problem or str(exc)).split())
    context = " ".join((exc.context or "").split())
    if context and problem.startswith("but "):
        return PolicyError(Location(file, line, col), f"malformed YAML: {context}, {problem}")
    if problem == "second occurrence":  # "found duplicate anchor 'x'; first occurrence"
        problem, _, context = context.partition("; ")
    if context and exc.context_mark is not None and exc.context_mark is not mark:
        context += " started" if context.startswith("while") else ""
        context += f" at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
    return PolicyError(Location(file, line, col), f"malformed YAML: {problem}",
                       suggestion=context or None)


def parse_text(text: str, file: str) -> SourceDocument:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except _Refused as exc:
        raise PolicyError(Location(file, exc.mark.line + 1, exc.mark.column + 1), exc.problem,
                          found=exc.found, expected=exc.expected) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from None
    except yaml.reader.ReaderError as exc:  # a character YAML forbids, e.g. NUL
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)  # C / Python
        raise PolicyError(Location(file), "not YAML text",
                          found=f"character U+{char:04X} at offset {exc.position}",
                          expected="printable text (no control characters)") from None
    except yaml.YAMLError as exc:
        raise PolicyError(Location(file, 1, 1), "malformed YAML", found=" ".join(str(exc).split())) from None
    if node is None:
        raise PolicyError(Location(file, 1, 1), "empty policy",
                          expected="a mapping with at least `stockade: 1` and `name`")
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise PolicyError(Location(file, 1, 1), "unreadable YAML value", found=str(exc)) from None
    if not isinstance(data, dict):
        raise PolicyError(Location(file, 1, 1), "a policy must be a mapping",
                          found=type(data).__name__, expected="keys such as `stockade`, `name`")
    return SourceDocument(file=file, data=data, positions=builder.positions)


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"


def read_capped(path: str, limit: int, what: str) -> str:
    """The UTF-8 text of the file at `path`, at most `limit` bytes: a larger file, a
    directory, a device or binary data is a one-line PolicyError naming what was wanted."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)  # never more, whatever the file (or /dev/zero) holds
    except FileNotFoundError:
        raise PolicyError(Location(path), "no such file", expected=what) from None
    except IsADirectoryError:
        raise PolicyError(Location(path), "is a directory", expected=what) from None
    except OSError as exc:
        raise PolicyError(Location(path), f"cannot read: {exc.strerror}", expected=what) from None
    if len(raw) > limit:
        raise PolicyError(Location(path), "file too large", found=f"more than {_size(limit)}",
                          expected=f"{what} of at most {_size(limit)}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(Location(path), "not UTF-8 text",
                          found=f"byte 0x{raw[exc.start]:02x} at offset {exc.start}",
                          expected=what) from None


def read_file(path: str) -> SourceDocument:
    try:
        text = read_capped(path, MAX_POLICY_BYTES, "a YAML policy file")
    except PolicyError as exc:
        if exc.problem == "no such file":
            raise PolicyError(exc.location, exc.problem, suggestion="check the path, or name a "
                              "preset: default, strict, unconfined") from None
        raise
    return parse_text(text, path)
