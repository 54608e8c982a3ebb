"""Report formats: each module renders the same document (see document.py). Imported on use,
so JSON output in CI does not pay for rich."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from stockade.audit.model import AuditResult
from stockade.linux.hostfacts import HostFacts

Renderer = Callable[[Sequence[AuditResult], HostFacts], str]

MODULES = {"table": "terminal", "json": "jsonfmt", "sarif": "sarif", "markdown": "markdown",
           "html": "html"}


def renderer(fmt: str) -> Renderer:
    module = importlib.import_module(f"stockade.audit.report.{MODULES[fmt]}")
    fn: Renderer = module.render
    return fn


class _Formats(dict[str, Renderer]):
    def __missing__(self, key: str) -> Renderer:
        return renderer(key)


FORMATS: dict[str, Renderer] = _Formats()
