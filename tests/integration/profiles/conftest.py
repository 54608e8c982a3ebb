"""Integration fixtures for the profile backends: real tools, real kernel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "unit" / "profiles"))

from _policies import EXAMPLE_NAMES, example  # noqa: E402

from stockade.linux.hostfacts import HostFacts  # noqa: E402
from stockade.policy.model import Policy  # noqa: E402


@pytest.fixture(params=EXAMPLE_NAMES)
def example_policy(request: pytest.FixtureRequest) -> Policy:
    return example(request.param)


@pytest.fixture(scope="session")
def real_host() -> HostFacts:
    return HostFacts.detect()
