"""Option values more than one verb reads."""

from __future__ import annotations

from stockade.errors import StockadeError


def kernel_version(text: str) -> tuple[int, int]:
    """`--kernel X.Y` (X alone means X.0)."""
    try:
        major, minor = (text.split(".") + ["0"])[:2]
        return int(major), int(minor)
    except ValueError:
        raise StockadeError(f"--kernel: {text!r} is not a version like 6.1") from None
