"""Second SELinux check: the generated modules install into a private copy of Debian's
selinux-policy-default store with the real `semodule` (-n: no kernel load), which links
them with the full reference policy and rebuilds the kernel policy. This proves the
module and its template also hold against a real distribution policy, not only against
stockade's minimal validation base (test_secilc.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from _policies import EXAMPLE_NAMES, example
from _profiles_env import HOST, require_root, require_tool

from stockade.profiles import selinux
from stockade.profiles.base import write_artifacts

STORE = Path("/var/lib/selinux/default")


def _private_root(tmp_path: Path) -> Path:
    if not (STORE / "active" / "modules").is_dir():
        pytest.skip("Debian's selinux-policy-default store is not installed (apt: selinux-policy-default)")
    root = tmp_path / "root"
    shutil.copytree(STORE, root / "var/lib/selinux/default", symlinks=True)
    shutil.copytree("/etc/selinux", root / "etc/selinux", symlinks=True)
    return root


def _semodule(root: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("semodule")
    return subprocess.run([tool, "-p", str(root), "-s", "default", "-n", "-i", *map(str, files)],
                          capture_output=True, text=True, timeout=180)


def test_examples_install_into_refpolicy(tmp_path: Path) -> None:
    require_root()
    root = _private_root(tmp_path)
    files: list[Path] = []
    for name in EXAMPLE_NAMES:
        out = tmp_path / name
        written = write_artifacts(selinux.compile(example(name), HOST), str(out))
        files += [Path(p) for p in written if p.endswith(".cil") and "stockade_container" not in p]
    template = tmp_path / EXAMPLE_NAMES[0] / "stockade_container.cil"
    res = _semodule(root, template, *files)  # one transaction: one policy rebuild
    assert res.returncode == 0, res.stderr
    kern = (root / "var/lib/selinux/default/active/policy.kern").read_bytes()
    for name in EXAMPLE_NAMES:
        assert example(name).selinux_type.encode() in kern


def test_unresolved_type_is_refused(tmp_path: Path) -> None:
    require_root()
    root = _private_root(tmp_path)
    written = write_artifacts(selinux.compile(example("web-api"), HOST), str(tmp_path / "m"))
    leak = tmp_path / "leak.cil"
    leak.write_text("(allow web_api_t no_such_type_t (file (read)))\n")
    res = _semodule(root, *[Path(p) for p in written if p.endswith(".cil")], leak)
    assert res.returncode != 0 and "Failed to resolve" in res.stderr
