"""The shared root/tool guards of tests/conftest.py, importable from these modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "stockade_tests_conftest", Path(__file__).resolve().parents[2] / "conftest.py")
assert _spec is not None and _spec.loader is not None
_mod = importlib.util.module_from_spec(_spec)
sys.modules["stockade_tests_conftest"] = _mod  # dataclasses look their module up
_spec.loader.exec_module(_mod)

require_root = _mod.require_root
require_tool = _mod.require_tool
make_busybox_rootfs = _mod.make_busybox_rootfs

# Fixed host facts for generated output (the real host is asked only where a test runs
# something on it).
from stockade.linux.hostfacts import HostFacts  # noqa: E402

HOST = HostFacts(arch="x86_64", kernel=(6, 1), cap_last_cap=40, landlock_abi=7)
