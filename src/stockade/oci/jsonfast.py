"""json.loads for `stockade oci create/run`, without importing the json package.

`json.decoder` compiles regular expressions at import (re -> enum -> functools ->
collections: ~3 ms of every `create` here). CPython's C scanner (`_json`, what json.loads
itself runs) needs none of that. Anything unusual (bad input, trailing data, no `_json`)
goes to the real json.loads, so errors read exactly as json's.

Measured (this machine, fresh interpreter, a `runc spec` config.json): 0.8 ms with the
scanner, 11.9 ms with `json` (the create path imports no `re` otherwise). The scanner is
CPython's private API: whatever it raises, SystemError included (3.11 raises that on
some truncated input instead of a JSONDecodeError), the text goes to json.loads, and
tests/unit/oci/test_config_fuzz.py checks that both agree on arbitrary text.
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
    except Exception:  # noqa: BLE001 - any scanner failure: json.loads decides (see above)
        return _slow(text)
    if text[end:].strip(_WS):
        return _slow(text)  # trailing data: json's "Extra data" error
    return value


def _slow(text: str) -> Any:
    import json

    return json.loads(text)
