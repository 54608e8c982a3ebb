"""`resources` and `rlimits`: each key is a scalar, the last layer that sets it wins;
`Resources.origins` keeps which file set each resource (rootless runs treat limits only a
preset set as best-effort)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from stockade.errors import Location, PolicyError
from stockade.policy import model as m
from stockade.policy.layers import Layer

_SIZE_UNITS = {"": 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2, "g": 1000**3, "gi": 1024**3,
               "t": 1000**4, "ti": 1024**4, "b": 1}


SIZE_MAX = 2**63 - 1  # the kernel's page counters and every runtime's limits are int64


def parse_size(value: int | str, loc: Location, *, minimum: int = 0) -> int:
    """Bytes; `minimum` 1 where 0 means nothing usable (a memory limit of 0 bytes)."""
    if isinstance(value, int):
        size = value
    else:
        text = value.strip()
        num = text.rstrip("KMGTkmgtiIbB")
        unit = text[len(num):].lower()
        if unit.endswith("b") and unit != "b":
            unit = unit[:-1]
        try:
            size = int(float(num) * _SIZE_UNITS[unit])
        except (ValueError, KeyError, OverflowError):
            raise PolicyError(loc, "invalid size", found=repr(text),
                              expected="a number with Ki/Mi/Gi/Ti, e.g. 256Mi") from None
    if not minimum <= size <= SIZE_MAX:
        lowest = "more than 0 bytes" if minimum else "0 bytes or more"
        raise PolicyError(loc, "size out of range", found=repr(value),
                          expected=f"{lowest}, at most 8Ei, e.g. 256Mi",
                          suggestion="leave the key out for no limit" if minimum else None)
    return size


_SIZES = ("memory", "swap")
_NUMBERS = ("pids", "cpu", "cpu_weight", "io_weight")


class ResourcesMerger:
    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._origins: dict[str, str] = {}

    def add(self, layer: Layer) -> None:
        r = layer.spec.resources
        if r is None:
            return
        for key in _SIZES:
            value = getattr(r, key)
            if value is not None:
                self._values[key] = parse_size(value, layer.loc("resources", key),
                                               minimum=1 if key == "memory" else 0)
                self._origins[key] = layer.doc.file
        for key in _NUMBERS:
            value = getattr(r, key)
            if value is not None:
                self._values[key] = value
                self._origins[key] = layer.doc.file

    def result(self) -> m.Resources:
        return m.Resources(**self._values, origins=MappingProxyType(dict(self._origins)))


class RlimitsMerger:
    def __init__(self) -> None:
        self._limits: dict[str, int] = {}

    def add(self, layer: Layer) -> None:
        for key, value in (layer.spec.rlimits or {}).items():
            self._limits[key] = -1 if value == "unlimited" else int(value)

    def result(self) -> Mapping[str, int]:
        return MappingProxyType(dict(sorted(self._limits.items())))
