"""The LSM lab's tests run only inside the lab's guest (scripts/lab/guest.sh sets
STOCKADE_LAB), where AppArmor or SELinux is the active LSM and they run as root."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("STOCKADE_LAB") == "1":
        return
    skip = pytest.mark.skip(reason="runs inside the LSM lab guest: bash scripts/dev lab")
    for item in items:
        if "tests/lab/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)
