"""The runner's cheap frozen records behave like frozen dataclasses."""

from __future__ import annotations

import pickle

import pytest

from stockade.runner._record import frozen, replace


@frozen
class Point:
    x: int
    y: int = 2


def test_init_defaults_eq_hash_repr() -> None:
    p = Point(1)
    assert p == Point(x=1, y=2) and hash(p) == hash(Point(1, 2))
    assert repr(p) == "Point(x=1, y=2)"
    assert p != Point(1, 3)


def test_frozen_and_strict_args() -> None:
    p = Point(1)
    with pytest.raises(AttributeError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=3)  # type: ignore[call-arg]


def test_replace_and_pickle() -> None:
    p = Point(1)
    assert replace(p, y=9) == Point(1, 9)
    assert pickle.loads(pickle.dumps(p)) == p
