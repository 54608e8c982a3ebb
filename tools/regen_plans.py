#!/usr/bin/env python3
"""Rewrite the golden plan documents in tests/data/plans/ (one per plan kind of
tests/unit/executor/plan_kinds.py) after an intended change of the plan's content.

Run from the repository: `python tools/regen_plans.py`. Review the diff: every changed
line is a change of what the executor is asked to do.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.unit.executor.plan_kinds import GOLDEN, KINDS, golden_text  # noqa: E402


def main() -> int:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        with tempfile.TemporaryDirectory() as scratch:
            (GOLDEN / f"{kind}.json").write_bytes(golden_text(kind, Path(scratch)))
        print(GOLDEN / f"{kind}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
