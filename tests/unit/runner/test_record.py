"""The runner's cheap frozen records behave like frozen dataclasses."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

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


def test_replace_of_a_record_imports_no_dataclasses() -> None:
    """A record's replace must not load dataclasses (and inspect, ast, dis...): it sits on
    every `stockade run` (runner.idalloc.placed), and avoiding that load is why the
    records are not dataclasses (bench/shim_bench.py). A real dataclass still works."""
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from stockade.runner._record import frozen, replace\n"
        "@frozen\n"
        "class P:\n"
        "    x: int\n"
        "    y: int = 2\n"
        "assert replace(P(1), y=3) == P(1, 3)\n"
        "assert 'dataclasses' not in sys.modules, 'a record replace imported dataclasses'\n"
        "import dataclasses\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class D:\n"
        "    x: int\n"
        "assert replace(D(1), x=2) == D(2)\n"
    )
    src = Path(__file__).resolve().parents[3] / "src"
    out = subprocess.run([sys.executable, "-I", "-c", code, str(src)], capture_output=True,
                         text=True, cwd="/")
    assert out.returncode == 0, out.stderr
