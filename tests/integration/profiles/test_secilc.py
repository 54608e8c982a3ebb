"""Every generated CIL module compiles with the real `secilc`, against the base policy
shipped in the package (src/stockade/profiles/selinux/base/base.cil) plus the container
template the module calls. secilc resolves every type, class, permission and macro call
and checks every neverallow, so a module that does not mean what it says fails here."""

from __future__ import annotations

import subprocess
from pathlib import Path

from _policies import built
from _profiles_env import HOST, require_tool

from stockade.policy.model import Policy
from stockade.profiles import selinux
from stockade.profiles.selinux import cil
from stockade.profiles.selinux.shipped import base_text


def secilc(tmp_path: Path, *texts: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("secilc")
    paths = []
    for i, text in enumerate(texts):
        p = tmp_path / f"{i}.cil"
        p.write_text(text)
        paths.append(str(p))
    return subprocess.run([tool, "-o", str(tmp_path / "policy.bin"), "-f", str(tmp_path / "fc"), *paths],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def _module_and_template(policy: Policy) -> tuple[str, str]:
    files = {f.filename: f.text or "" for f in selinux.compile(policy, HOST).files}
    module = next(t for n, t in files.items() if n.endswith(".cil") and n != "stockade_container.cil")
    return module, files["stockade_container.cil"]


def test_examples_compile(example_policy: Policy, tmp_path: Path) -> None:
    module, template = _module_and_template(example_policy)
    res = secilc(tmp_path, base_text(), template, module)
    assert res.returncode == 0, f"secilc failed:\n{res.stdout}{res.stderr}\n{module}"
    assert (tmp_path / "policy.bin").stat().st_size > 0


def test_neverallow_on_denied_paths_bites(tmp_path: Path) -> None:
    """Granting what filesystem.deny forbids makes the real compiler refuse the policy."""
    module, template = _module_and_template(built("web-api"))
    leak = cil.render(cil.Module("leak", (), (cil.allow("web_api_t", "web_api_deny_file_t", "file", ["read"]),)))
    res = secilc(tmp_path, base_text(), template, module, leak)
    assert res.returncode != 0 and "neverallow" in (res.stdout + res.stderr).lower()


def test_unknown_permission_bites(tmp_path: Path) -> None:
    module, template = _module_and_template(built("web-api"))
    bad = cil.render(cil.Module("bad", (), (cil.allow("web_api_t", "self", "capability", ["no_such_perm"]),)))
    assert secilc(tmp_path, base_text(), template, module, bad).returncode != 0
