"""Every shared example compiles to every registered target (the issue's first proof)."""

from __future__ import annotations

import pytest

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy

registry = pytest.importorskip("stockade.profiles.registry")


@pytest.mark.parametrize("target", sorted(registry.TARGETS))
def test_example_compiles_to_target(example_policy: Policy, host: HostFacts, target: str) -> None:
    arts = registry.target(target).compile(example_policy, host)
    assert arts.files, f"{target} produced no files"
    assert all(f.content() for f in arts.files)
    assert len({f.filename for f in arts.files}) == len(arts.files)
