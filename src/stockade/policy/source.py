"""Read a YAML policy file into plain data, keeping the line/column of every key and value."""

from __future__ import annotations

from collections.abc import Mapping
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


def _convert(node: yaml.Node, path: KeyPath, file: str, positions: dict[KeyPath, tuple[int, int]]) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise PolicyError(
                    Location(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                             format_path(path)),
                    "a key must be a plain name", found="a collection", expected="a string key")
            key = str(key_node.value)
            if key in out:
                raise PolicyError(
                    Location(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                             format_path((*path, key))),
                    "duplicate key", found=repr(key), expected="each key once",
                    suggestion="merge the two entries")
            out[key] = _convert(value_node, (*path, key), file, positions)
            positions[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), file, positions) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag not in _SCALAR_TAGS:
        raise PolicyError(
            Location(file, node.start_mark.line + 1, node.start_mark.column + 1, format_path(path)),
            "unsupported YAML tag", found=node.tag, expected="plain scalars, lists and maps")
    return yaml.SafeLoader.construct_object(_LOADER_SINGLETON, node)


# libyaml's composer when present: same nodes and marks, several times faster
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(yaml.SafeLoader):
    pass


_LOADER_SINGLETON = _Loader("")


def parse_text(text: str, file: str) -> SourceDocument:
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyError(Location(file, line, col), "malformed YAML",
                          found=str(exc.problem or exc).strip(),
                          expected="a YAML mapping (see `stockade schema`)") from None
    except yaml.YAMLError as exc:
        raise PolicyError(Location(file, 1, 1), "malformed YAML", found=str(exc).strip()) from None
    positions: dict[KeyPath, tuple[int, int]] = {}
    if node is None:
        raise PolicyError(Location(file, 1, 1), "empty policy",
                          expected="a mapping with at least `stockade: 1` and `name`")
    try:
        data = _convert(node, (), file, positions)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise PolicyError(Location(file, 1, 1), "unreadable YAML value", found=str(exc)) from None
    if not isinstance(data, dict):
        raise PolicyError(Location(file, 1, 1), "a policy must be a mapping",
                          found=type(data).__name__, expected="keys such as `stockade`, `name`")
    return SourceDocument(file=file, data=data, positions=positions)


def read_file(path: str) -> SourceDocument:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise PolicyError(Location(path), "no such file",
                          suggestion="check the path, or name a preset: default, strict, unconfined") from None
    except IsADirectoryError:
        raise PolicyError(Location(path), "is a directory", expected="a YAML policy file") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(Location(path), "not UTF-8 text", found=str(exc)) from None
    except OSError as exc:
        raise PolicyError(Location(path), f"cannot read: {exc.strerror}") from None
    return parse_text(text, path)
