"""Fuzzing `image load` (issues 13 and 14): generated layers and mutated archives.

Whatever the archive holds, the outcome is clean: the image loads, or one line and exit 2.
The scratch "host" beside the store is never changed, and a refused load leaves no staging.
Bounded (a few hundred examples) so the suite stays fast; the layer builders are the
hostile corpus's (tests/data/hostile/images/corpus.py)."""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _image_data import store_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.data.hostile.images import corpus

from stockade import cli
from stockade.image.fsutil import force_rmtree
from stockade.image.store import Store

# Names that climb, hide, point out of the root or collide: the shapes of the real attacks.
NAMES = st.sampled_from(["d", "d/e", "a", "a/b", "s", "s/evil", "..", "../x", "/abs", "./d",
                         "d/../..", ".wh.d", "s/.wh.victim", "s/.wh..wh..opq", "h", "e/f/g"])


def _targets(host: str) -> st.SearchStrategy[str]:
    return st.sampled_from([host, f"{host}/victim", f"{host}/b", "../" * 8 + host.lstrip("/"),
                            "d", "a", "s", "/", "..", "."])


def _member(host: str) -> st.SearchStrategy[tuple[tarfile.TarInfo, bytes | None]]:
    mode = st.sampled_from([0o755, 0o644, 0o6777, 0o4755, 0o000, 0o1777])
    return st.one_of(
        st.builds(corpus._dir, NAMES, mode),
        st.builds(corpus._file, NAMES, st.binary(max_size=64), mode),
        st.builds(corpus._link, NAMES, _targets(host)),
        st.builds(lambda n, t: corpus._link(n, t, tarfile.LNKTYPE), NAMES, _targets(host)),
    )


def _snapshot(d: Path) -> dict[str, tuple[int, int, int, bytes]]:
    out = {}
    for p in [d, *sorted(d.rglob("*"))]:
        st_ = os.lstat(p)
        body = p.read_bytes() if stat.S_ISREG(st_.st_mode) else b""
        out[str(p.relative_to(d))] = (st_.st_mode, st_.st_uid, st_.st_nlink, body)
    return out


def _load_is_clean(archive: Path, store: Store, host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(host)
    rc = cli.main(["image", "--store", str(store.root), "load", "--max-size", "8Mi",
                   "--max-depth", "32", str(archive)])
    err = capsys.readouterr().err
    assert rc in (0, 2), err
    if rc == 2:
        assert err.startswith("stockade: ") and err.count("\n") == 1, err
        assert store_state(store)["tmp"] == [], "a refused load left staging behind"
    assert "Traceback" not in err
    assert _snapshot(host) == before, "a layer reached the scratch host"


@pytest.fixture()
def scratch() -> Iterator[tuple[Path, Path]]:
    base = Path(tempfile.mkdtemp(prefix="stockade-fuzz-"))
    host = base / "host"
    host.mkdir()
    (host / "victim").write_bytes(b"secret")
    os.chmod(host / "victim", 0o600)
    (host / "b").mkdir()
    yield base, host
    force_rmtree(base)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_layers_load_cleanly(data: st.DataObject, scratch: tuple[Path, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    base, host = scratch
    layers = data.draw(st.lists(st.lists(_member(str(host)), min_size=1, max_size=6),
                                min_size=1, max_size=3))
    work = Path(tempfile.mkdtemp(dir=base))
    try:
        archive = corpus.archive(work / "image.tar", [corpus._tar(m) for m in layers])
        _load_is_clean(archive, Store(work / "store"), host, capsys)
    finally:
        force_rmtree(work)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_archives_load_cleanly(data: st.DataObject, scratch: tuple[Path, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Bytes of a valid two-layer archive overwritten, cut short or extended."""
    base, host = scratch
    work = Path(tempfile.mkdtemp(dir=base))
    try:
        valid = corpus.archive(work / "valid.tar", [
            corpus._tar([corpus._dir("etc"), corpus._file("etc/hostname", b"box\n")]),
            corpus._tar([corpus._link("etc/alias", "hostname"), corpus._file("bin/sh", b"#!", 0o755)]),
        ]).read_bytes()
        blob = bytearray(valid)
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(blob) - 1))
            blob[at] = data.draw(st.integers(0, 255))
        cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
        mutated = bytes(blob[:cut] if cut is not None else blob) + data.draw(st.binary(max_size=32))
        (work / "mutated.tar").write_bytes(mutated)
        _load_is_clean(work / "mutated.tar", Store(work / "store"), host, capsys)
    finally:
        force_rmtree(work)
