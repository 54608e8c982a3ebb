"""Fixtures of the image integration tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.image.fsutil import force_rmtree


@pytest.fixture()
def nobody_home() -> Iterator[Path]:
    """A directory nobody can reach (pytest's tmp_path is under a 0700 directory); removed
    with the store's own remover, which copes with deep and unreadable trees."""
    home = Path(tempfile.mkdtemp(prefix="stockade-image-rootless-", dir="/tmp"))
    os.chmod(home, 0o755)
    try:
        yield home
    finally:
        force_rmtree(home)
