"""Fixtures for the profile backend tests (pure: no root, no tools)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _policies import EXAMPLE_NAMES, built, example  # noqa: E402

from stockade.linux.hostfacts import HostFacts  # noqa: E402
from stockade.policy.model import Policy  # noqa: E402

# Fixed host facts: golden files and assertions must not depend on the machine.
HOST = HostFacts(arch="x86_64", kernel=(6, 1), cap_last_cap=40, landlock_abi=7)


@pytest.fixture
def host() -> HostFacts:
    return HOST


@pytest.fixture(params=EXAMPLE_NAMES)
def example_policy(request: pytest.FixtureRequest) -> Policy:
    return example(request.param)


@pytest.fixture
def web_api() -> Policy:
    return example("web-api")


@pytest.fixture
def legacy() -> Policy:
    return example("legacy-daemon")


@pytest.fixture
def batch() -> Policy:
    return example("batch-job")


@pytest.fixture
def web_api_built() -> Policy:
    return built("web-api")
