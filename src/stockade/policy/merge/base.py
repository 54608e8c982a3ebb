"""What every section merger offers policy.resolve, and the one for a plain scalar."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from stockade.policy.layers import Layer
from stockade.policy.schema import PolicySpec

T = TypeVar("T")


class SectionMerger(Protocol):
    def add(self, layer: Layer) -> None:
        """Fold in `layer`'s own section (if it has one), after all earlier layers."""


class LatestValue(Generic[T]):
    """A scalar key: the last layer that sets it wins (no_new_privileges, hostname)."""

    def __init__(self, read: Callable[[PolicySpec], T | None], default: T) -> None:
        self._read = read
        self.value = default

    def add(self, layer: Layer) -> None:
        value = self._read(layer.spec)
        if value is not None:
            self.value = value
