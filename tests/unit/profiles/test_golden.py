"""Golden files: every shared example × every target of this area, byte for byte.

Update after an intended change with:  STOCKADE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/profiles/test_golden.py
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
from _policies import EXAMPLE_NAMES, example

from stockade.linux.hostfacts import HostFacts

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
HOST = HostFacts(arch="x86_64", kernel=(6, 1), cap_last_cap=40, landlock_abi=7)
TARGETS = {
    "apparmor": "stockade.profiles.apparmor",
    "selinux": "stockade.profiles.selinux",
    "capabilities": "stockade.profiles.capabilities",
    "landlock": "stockade.profiles.landlock",
    "docker": "stockade.profiles.docker",
    "oci": "stockade.profiles.oci",
    "kubernetes": "stockade.profiles.kubernetes",
    "systemd": "stockade.profiles.systemd",
}
UPDATE = os.environ.get("STOCKADE_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_golden(name: str, target: str) -> None:
    arts = importlib.import_module(TARGETS[target]).compile(example(name), HOST)
    again = importlib.import_module(TARGETS[target]).compile(example(name), HOST)
    assert [f.content() for f in arts.files] == [f.content() for f in again.files], "not deterministic"
    base = GOLDEN / name / target
    produced = {f.filename: f.content() for f in arts.files}
    if UPDATE:
        for old in base.rglob("*") if base.exists() else []:
            if old.is_file() and str(old.relative_to(base)) not in produced:
                old.unlink()
        for filename, content in produced.items():
            (base / filename).parent.mkdir(parents=True, exist_ok=True)
            (base / filename).write_bytes(content)
        return
    how = ("golden files differ; if the change is intended, run "
           "STOCKADE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/profiles/test_golden.py "
           "and review the diff under tests/golden/")
    on_disk = {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()} \
        if base.exists() else {}
    assert sorted(on_disk) == sorted(produced), how
    for filename, content in produced.items():
        assert on_disk[filename] == content, f"{name}/{target}/{filename}: {how}"
