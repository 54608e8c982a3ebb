"""json.loads for `stockade oci create/run`, without importing the json package.

`json.decoder` compiles regular expressions at import (re -> enum -> functools ->
collections: ~3 ms of every `create` here). CPython's C scanner (`_json`, what json.loads
itself runs) needs none of that. Anything unusual (bad input, trailing data, no `_json`)
goes to the real json.loads, so errors read exactly as json's.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class _Context:
    """The attributes _json.make_scanner reads (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def loads(text: str) -> Any:
    try:
        from _json import make_scanner
    except ImportError:  # pragma: no cover - every CPython build has it
        return _slow(text)
    start = len(text) - len(text.lstrip(_WS))
    try:
        # typeshed types the context as a scanner; the C code reads these attributes
        value, end = make_scanner(_Context())(text, start)  # type: ignore[arg-type]
    except (StopIteration, ValueError):
        return _slow(text)
    if text[end:].strip(_WS):
        return _slow(text)  # trailing data: json's "Extra data" error
    return value


def _slow(text: str) -> Any:
    import json

    return json.loads(text)
