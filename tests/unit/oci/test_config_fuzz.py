"""Hostile config.json: real configs (`runc spec` from tests/data/seeds, podman- and
docker-like ones from tests/data/oci), mutated, through the reader and the translator. The only outcomes allowed
are a Container or a StockadeError with exit status 2 and a one-line message: never a
traceback (TypeError, SystemError from the JSON scanner, ValueError from a NUL...)."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockade.errors import StockadeError
from stockade.oci import config
from stockade.oci.translate import translate

DATA = Path(__file__).resolve().parents[2] / "data"
RUNC_SPEC = DATA / "seeds" / "runc-spec-config.json"  # tests/data/seeds/README.md
SEEDS = [RUNC_SPEC, *sorted((DATA / "oci").glob("*.json"))]
HOSTILE = sorted((DATA / "hostile" / "oci").glob("*.json"))
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

_SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
            | st.text(max_size=12) | st.sampled_from(["", "/", "..", "../..", "\x00", "\ud800",
                                                       "CAP_SYS_ADMIN", "/proc/self/ns/net",
                                                       "RLIMIT_NOFILE", "SCMP_ACT_ERRNO"]))
JSON_VALUES = st.recursive(_SCALARS, lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                           max_leaves=8)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the seeds name: a rootfs with /etc/passwd, the bind sources podman and
    docker give relative to the bundle."""
    d = tmp_path_factory.mktemp("bundle")
    (d / "rootfs" / "etc").mkdir(parents=True)
    (d / "rootfs" / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    for name in ("hostname", "hosts", "containerenv", "resolv.conf"):
        (d / name).write_text("x\n")
    (d / "shm").mkdir()
    return d


def _clean(action: Callable[[], Any]) -> None:
    try:
        action()
    except StockadeError as exc:
        assert exc.exit_code == 2, exc
        assert "\n" not in str(exc) and 0 < len(str(exc)) < 1000, str(exc)


def _translate_file(bundle: Path, text: str | bytes) -> None:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    (bundle / "config.json").write_bytes(data)
    _clean(lambda: translate(config.load(str(bundle)), str(bundle), "c1", last_cap=40,
                             euid=0))


def _slots(doc: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in the document: (path to its container, key or index)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*at, k)
            yield from _slots(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*at, i)
            yield from _slots(v, (*at, i))


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc = json.loads(draw(st.sampled_from(SEEDS)).read_text())
    for _ in range(draw(st.integers(1, 4))):
        slots = list(_slots(doc))
        if not slots:
            break
        where = draw(st.sampled_from(slots))
        parent = doc
        for k in where[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(("replace", "delete", "insert")))
        if action == "replace":
            parent[where[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(JSON_VALUES)
        else:
            parent.insert(where[-1], draw(JSON_VALUES))
    return doc


def test_seeds_translate(bundle: Path) -> None:
    """The seeds themselves are valid: mutations start from configs that work."""
    assert len(SEEDS) >= 3
    for seed in SEEDS:
        (bundle / "config.json").write_bytes(seed.read_bytes())
        c = translate(config.load(str(bundle)), str(bundle), "c1", last_cap=40, euid=0)
        assert c.plan.argv


@FUZZ
@given(doc=mutated())
def test_mutated_configs_end_cleanly(bundle: Path, doc: Any) -> None:
    def run() -> None:
        config.validate(doc)
        translate(config.strip_nulls(copy.deepcopy(doc)), str(bundle), "c1", last_cap=40,
                  euid=0)

    _clean(run)


@FUZZ
@given(seed=st.sampled_from(SEEDS), cut=st.floats(0, 1), junk=st.text(max_size=4))
def test_damaged_files_end_cleanly(bundle: Path, seed: Path, cut: float, junk: str) -> None:
    """A file cut short (the scanner raised SystemError on some), with junk added."""
    text = seed.read_text()
    _translate_file(bundle, text[: int(len(text) * cut)] + junk)


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.name)
def test_hostile_corpus(bundle: Path, path: Path) -> None:
    """tests/data/hostile/oci: each is refused with one line (exit 2) by the reader or
    the translator (the integration suite runs them through `stockade oci create`)."""
    (bundle / "config.json").write_bytes(path.read_bytes())
    with pytest.raises(StockadeError) as info:
        translate(config.load(str(bundle)), str(bundle), "c1", last_cap=40, euid=0)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_hostile_corpus_exists() -> None:
    assert len(HOSTILE) >= 15, HOSTILE


def test_nan_is_not_a_number_here() -> None:
    """NaN passes json but never the integer fields (float is not an int)."""
    doc = json.loads(RUNC_SPEC.read_text())
    doc["linux"]["resources"] = {"memory": {"limit": math.nan}}
    with pytest.raises(config.ConfigError, match="memory.limit"):
        config.validate(doc)
