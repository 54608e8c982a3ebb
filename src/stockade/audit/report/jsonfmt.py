"""JSON report; its schema ships as stockade/audit/report/schema.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from stockade.audit.model import AuditResult
from stockade.audit.report.document import build
from stockade.linux.hostfacts import HostFacts


def render(results: Sequence[AuditResult], host: HostFacts) -> str:
    return json.dumps(build(results, host), indent=2) + "\n"


def schema() -> dict[str, Any]:
    text = resources.files("stockade.audit.report").joinpath("schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data
