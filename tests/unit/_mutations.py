"""Hypothesis strategies that mutate real input files (the seed corpus, tests/data/seeds/
README.md): structural mutations of parsed JSON/YAML data (type confusion, missing keys,
wrong values, subtrees moved elsewhere) and byte-level mutations of YAML text."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]

# Values of the wrong type, or of the right type and a wrong value, that real files hold
CONFUSED: st.SearchStrategy[Any] = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 5, 6, 38, 4095, 4096, 2**32 - 1, 2**64, 1.5, float("inf")]),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_CMP_MASKED_EQ", "CAP_SYS_ADMIN",
                     "SCMP_ARCH_X86_64", "x86_64", "4.8", "read", "allow", "errno:EPERM", "@mount",
                     "/tmp", "..", "", "ALL", "default", "container"]),
    st.just([]), st.just({}), st.lists(st.integers(-1, 7), max_size=2),
    st.dictionaries(st.sampled_from(["index", "value", "op", "names", "action", "caps"]),
                    st.integers(-1, 7), max_size=2),
)


def _paths(node: Any, here: Path = ()) -> Iterator[Path]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*here, key)
            yield from _paths(value, (*here, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*here, i)
            yield from _paths(value, (*here, i))


def _at(node: Any, path: Path) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated(draw: st.DrawFn, seed: Any) -> Any:
    """`seed` with 1-4 of: a value replaced by a confused one, a key or item deleted,
    a value wrapped in a list, a subtree copied over another."""
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["replace", "replace", "delete", "wrap", "graft"]))
        if op == "replace":
            parent[key] = draw(CONFUSED)
        elif op == "delete":
            del parent[key]
        elif op == "wrap":
            parent[key] = [parent[key]]
        else:
            parent[key] = copy.deepcopy(_at(doc, draw(st.sampled_from(paths))))
    return doc


SNIPPETS = st.one_of(
    st.sampled_from(["[", "]", "{", "}", ":", ": ", "- ", ",", "&a ", "*a", "&a [x, *a]", "\t", "\x00",
                     "\n", "  ", "'", '"', "#", "? ", "|", ">", "---\n", "...\n", "%YAML 1.1\n",
                     "!!python/object/apply:os.system ['true'] ", "!!binary aGk= ", "<<: *a\n",
                     "\ufeff", "\u2028", "0x", "1e999", "~", "null", "yes"]),
    st.text(max_size=5),
)


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """`text` with 1-4 snippets inserted, ranges deleted or replaced."""
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = min(len(text), start + draw(st.integers(0, 12)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert":
            text = text[:start] + draw(SNIPPETS) + text[start:]
        elif op == "delete":
            text = text[:start] + text[end:]
        else:
            text = text[:start] + draw(SNIPPETS) + text[end:]
    return text
