"""Fuzzing the policy loader (issue 14.6): real policies (the examples and presets),
mutated as text and as structure, only ever load or fail with one PolicyError (exit 2).
Any other exception fails the test with the input that caused it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stockade.errors import PolicyError
from stockade.policy.layers import PRESETS, preset_text
from stockade.policy.loader import load_policy
from tests.conftest import EXAMPLES
from tests.unit._mutations import mutated, mutated_text

SEED_TEXTS = [p.read_text() for p in EXAMPLES] + [preset_text(name) for name in PRESETS]
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _loads_or_refuses_cleanly(path: Path) -> None:
    try:
        load_policy(str(path))
    except PolicyError as exc:
        assert exc.exit_code == 2
        assert "\n" not in str(exc), str(exc)
        event(f"refused: {exc.problem}")
    else:
        event("loaded")


def test_seed_corpus_is_there() -> None:
    assert len(EXAMPLES) >= 3 and all(yaml.safe_load(t)["stockade"] == 1 for t in SEED_TEXTS)


@FUZZ
@given(st.sampled_from(SEED_TEXTS).flatmap(mutated_text))
def test_mutated_policy_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _loads_or_refuses_cleanly(path)


@FUZZ
@given(st.sampled_from([yaml.safe_load(t) for t in SEED_TEXTS]).flatmap(mutated))
def test_mutated_policy_structure(tmp_path: Path, data: object) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    _loads_or_refuses_cleanly(path)


@pytest.mark.parametrize("extends", ["policy.yaml", "sparse.yaml", "."])
def test_hostile_extends_is_refused(tmp_path: Path, extends: str) -> None:
    # extends: names another file, read with the same limits (itself: a cycle; a 64 MiB
    # sparse file: too large, refused without reading it; a directory)
    with (tmp_path / "sparse.yaml").open("wb") as fh:
        fh.truncate(64 << 20)
    path = tmp_path / "policy.yaml"
    path.write_text(f"stockade: 1\nname: x\nextends: [{extends!r}]\n")
    with pytest.raises(PolicyError) as info:
        load_policy(str(path))
    assert info.value.location.file == str(path) and info.value.location.line == 3


def test_extends_chain_depth_is_capped(tmp_path: Path) -> None:
    # a chain of 40 files, each extending the next: refused at MAX_EXTENDS_DEPTH, where
    # the layer that would go one deeper names its `extends`
    from stockade.policy.layers import MAX_EXTENDS_DEPTH

    for i in range(40):
        (tmp_path / f"p{i}.yaml").write_text(f"stockade: 1\nname: p{i}\nextends: [p{i + 1}.yaml]\n")
    (tmp_path / "p40.yaml").write_text("stockade: 1\nname: p40\n")
    with pytest.raises(PolicyError, match="extends chain too deep") as info:
        load_policy(str(tmp_path / "p0.yaml"))
    assert info.value.location.file == str(tmp_path / f"p{MAX_EXTENDS_DEPTH - 1}.yaml")
    assert load_policy(str(tmp_path / f"p{40 - MAX_EXTENDS_DEPTH + 1}.yaml")).name == f"p{40 - MAX_EXTENDS_DEPTH + 1}"
