"""A private store per test (never the host's /var/lib/stockade)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.image.store import Store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")
