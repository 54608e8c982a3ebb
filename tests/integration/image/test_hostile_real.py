"""Hostile images loaded by an unprivileged user (the unit tests run as root): the chmod
through a symlink aimed at the user's own file, and trees of 0000 directories that load,
`image rm` and `image prune` must get through without following anything."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.conftest import require_root, require_tool
from tests.data.hostile.images import corpus

from stockade.image import export

STOCKADE = [sys.executable, "-m", "stockade"]
NOBODY = 65534


def _as_nobody(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path), "HOME": str(home)}
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           *STOCKADE, "image", "--store", str(home / "store"), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def _give(home: Path) -> None:
    for p in [home, *home.rglob("*")]:
        os.lchown(p, NOBODY, NOBODY)


def test_rootless_chmod_attack_leaves_the_users_file(nobody_home: Path) -> None:
    require_root()
    require_tool("setpriv")
    victim = nobody_home / "victim"
    victim.write_text("mine")
    os.chmod(victim, 0o600)
    corpus.archive(nobody_home / "plain.tar", [corpus.chmod_through_symlink(str(victim))])
    corpus.archive(nobody_home / "chain.tar", [corpus.chmod_through_chain(str(victim))], "chain:1")
    _give(nobody_home)
    for name in ("plain.tar", "chain.tar"):
        r = _as_nobody(nobody_home, "load", str(nobody_home / name))
        assert r.returncode == 0, r.stderr
        st = os.stat(victim)
        assert (oct(st.st_mode), victim.read_text()) == (oct(0o100600), "mine")
    assert list((nobody_home / "store/tmp").iterdir()) == []


def test_rootless_unreadable_directories_load_and_go(nobody_home: Path) -> None:
    """0000 and 0555 directories (kept as the image says, set-id bits dropped), nested 300
    deep: loaded, removed by `rm`, and a crashed load's copy of them removed by `prune`."""
    require_root()
    require_tool("setpriv")
    deep = "/".join(["d"] * 300)
    layer = export.layer_tar([
        ("locked", "dir"), ("locked/f", "file", "x"),
        ("ro", "dir"), ("ro/sub", "dir"), ("ro/sub/f", "file", "y"),
    ])
    locked = corpus.archive(nobody_home / "locked.tar", [_with_modes(layer), corpus.deep_tree(300)], "locked:1")
    _give(nobody_home)
    r = _as_nobody(nobody_home, "load", "--max-depth", "300", str(locked))
    assert r.returncode == 0, r.stderr
    roots = list((nobody_home / "store/layers").glob("*/root"))
    [base] = [p for p in roots if (p / "locked").exists()]
    assert [os.stat(base / d).st_mode & 0o7777 for d in ("locked", "ro", "ro/sub")] == [0, 0o555, 0o555]
    assert any((p / deep).is_dir() for p in roots)
    # what a crashed load leaves: a copy of those layers in tmp/, no lock held
    leftover = nobody_home / "store/tmp/load-crashed"
    subprocess.run(["cp", "-a", str(nobody_home / "store/layers"), str(leftover)], check=True)
    _give(nobody_home)
    assert _as_nobody(nobody_home, "rm", "locked:1").returncode == 0
    r = _as_nobody(nobody_home, "prune")
    assert r.returncode == 0 and "1 leftover loads" in r.stdout, r.stdout + r.stderr
    assert list((nobody_home / "store/layers").iterdir()) == []
    assert list((nobody_home / "store/tmp").iterdir()) == []


def _with_modes(layer: bytes) -> bytes:
    """`layer` with `locked` as 0000 and `ro`, `ro/sub` as 0555 (and a setuid bit asked)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(layer)) as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for m in src:
            if m.name == "locked":
                m.mode = 0o000
            elif m.name in ("ro", "ro/sub"):
                m.mode = 0o4555
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    return out.getvalue()
