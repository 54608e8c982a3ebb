"""stockade: one policy, many enforcers."""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy: `import stockade` stays free; `stockade.run` loads only the runner's API.
    if name in ("run", "RunResult"):
        from stockade import api

        return getattr(api, name)
    raise AttributeError(f"module 'stockade' has no attribute {name!r}")
