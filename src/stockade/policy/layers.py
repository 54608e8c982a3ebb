"""The files a policy is made of: the policy itself and, through `extends`, its bases.

`load_layers` follows `extends` depth-first and returns the chain deepest base first, each
file validated against the schema; policy.resolve merges the chain section by section.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from importlib import resources

from stockade.errors import Location, PolicyError
from stockade.policy.schema import PolicySpec, validate_document
from stockade.policy.source import SourceDocument, parse_text, read_file

PRESETS = ("default", "strict", "unconfined")

# A real chain is 1-3 files deep; each file is read with the loader's size and node limits,
# and this bounds how many such files one policy can pull in through a chain.
MAX_EXTENDS_DEPTH = 16


@dataclass(frozen=True)
class Layer:
    """One file of the chain: its text (for locations) and its validated spec."""

    doc: SourceDocument
    spec: PolicySpec

    def loc(self, *path: str | int) -> Location:
        return self.doc.location(tuple(path))


def preset_text(name: str) -> str:
    return resources.files("stockade.policy.presets").joinpath(f"{name}.yaml").read_text()


def _is_path(ref: str) -> bool:
    return "/" in ref or ref.endswith((".yaml", ".yml")) or os.path.exists(ref)


def _read(ref: str, base_dir: str | None) -> SourceDocument:
    if _is_path(ref):
        path = ref if base_dir is None or os.path.isabs(ref) else os.path.join(base_dir, ref)
        return read_file(os.path.normpath(path))
    if ref in PRESETS:
        return parse_text(preset_text(ref), f"<preset:{ref}>")
    close = difflib.get_close_matches(ref, PRESETS, n=1)
    raise PolicyError(Location(ref), "unknown preset or missing file", found=repr(ref),
                      expected="a preset (" + ", ".join(PRESETS) + ") or a path to a .yaml file",
                      suggestion=f"did you mean '{close[0]}'?" if close else None)


def _layers(ref: str, base_dir: str | None, stack: tuple[str, ...], seen: set[str],
            via: Location | None) -> list[Layer]:
    if len(stack) >= MAX_EXTENDS_DEPTH:
        raise PolicyError(via or Location(ref), "extends chain too deep",
                          found=f"more than {MAX_EXTENDS_DEPTH} files",
                          expected=f"at most {MAX_EXTENDS_DEPTH} (the limit for a policy)")
    try:
        doc = _read(ref, base_dir)
    except PolicyError as exc:
        if via is None:
            raise
        raise PolicyError(via, f"extends: cannot load {ref!r}: {exc.problem}", found=exc.found,
                          expected=exc.expected, suggestion=exc.suggestion) from None
    key = doc.file if doc.file.startswith("<") else os.path.realpath(doc.file)
    if key in stack:
        chain = " -> ".join([*stack, key])
        raise PolicyError(via or Location(doc.file), "cycle in extends", found=chain,
                          expected="a chain without loops")
    if key in seen:  # a diamond: the shared base is applied once, at its first place
        return []
    seen.add(key)
    spec = validate_document(doc)
    here = None if doc.file.startswith("<") else os.path.dirname(doc.file)
    out: list[Layer] = []
    for i, parent in enumerate(spec.extends):
        out += _layers(parent, here, (*stack, key), seen, doc.location(("extends", i)))
    out.append(Layer(doc, spec))
    return out


def load_layers(ref: str) -> list[Layer]:
    return _layers(ref, None, (), set(), None)
