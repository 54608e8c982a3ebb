"""What `stockade run` imports before the sandbox starts: every module costs each run
its import (bench/run_bench.py, "where the CLI's time goes"). ctypes (the syscall
wrappers), libseccomp, contextlib, glob, importlib and warnings are loaded only by the
branches that need them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stockade.runner import prepare

SRC = Path(__file__).resolve().parents[3] / "src"


def _run(code: str, env: dict[str, str] | None = None) -> list[str]:
    out = subprocess.run([sys.executable, "-I", "-c", code, str(SRC)], capture_output=True,
                         text=True, cwd="/", env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_a_cached_policy_part_needs_no_syscall_wrappers(tmp_path: Path) -> None:
    """The cache key used to ask the kernel for its Landlock ABI on every run: ctypes, and
    libseccomp to resolve the syscall's number. A hit now reads files only."""
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from stockade.runner.prepare import load_part\n"
            "part = load_part('default')\n"
            "print(type(part).__name__, *(m in sys.modules for m in "
            "('pydantic', 'ctypes', 'stockade.linux.libseccomp')))\n")
    env = {"PATH": "/usr/bin:/bin", "STOCKADE_CACHE_DIR": str(tmp_path)}
    first = _run(code, env)  # a miss: the policy is loaded and compiled, then stored
    assert first[:2] == ["PolicyPart", "True"]
    assert _run(code, env) == ["PolicyPart", "False", "False", "False"]  # the stored part


def test_the_host_key_changes_with_the_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Landlock ABI is fixed for a boot: the boot id stands for it in the key, and
    the ABI itself when /proc does not say."""
    def key(boot: str) -> str:
        # None: computed afresh; the first setattr records what the undo puts back
        monkeypatch.setattr(prepare._host_key, "value", None, raising=False)
        monkeypatch.setattr(prepare.this_host, "boot_id", lambda: boot)
        return prepare._host_key()

    monkeypatch.setattr(prepare.this_host, "landlock_abi", lambda: 5)
    assert key("boot-a") != key("boot-b")
    assert "\0boot-a\0" in key("boot-a")
    assert "\0landlock 5\0" in key("")


def test_the_run_path_modules_leave_the_rare_branches_imports_out() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from stockade.cli import _verb_module\n"
            "import stockade.runner.cache, stockade.runner.idmap, stockade.runner.idmount\n"
            "import stockade.runner.prepare, stockade.runner.view\n"
            "print(*(m for m in ('ctypes', 'contextlib', 'glob', 'importlib', 'warnings')"
            " if m in sys.modules), 'none')\n"
            "print(_verb_module('validate').__name__)\n")
    assert _run(code) == ["none", "stockade.cli.validate"]


def test_secret_masks_still_expand_patterns(tmp_path: Path) -> None:
    from stockade.runner.view import secret_masks

    ssh = tmp_path / "etc" / "ssh"
    ssh.mkdir(parents=True)
    (ssh / "ssh_host_ed25519_key").write_text("secret")
    (ssh / "ssh_config").write_text("public")
    masked = [op.dst for op in secret_masks(["/etc"], host=str(tmp_path))]
    assert masked == ["/etc/ssh/ssh_host_ed25519_key"]
