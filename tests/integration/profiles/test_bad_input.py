"""Bad input through the real CLI: a clear error with its location, exit 2, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stockade.cli import main

CASES = {
    "relative path": ("filesystem: {writable: [tmp]}", "apparmor", r"filesystem\.writable\[0\]"),
    "inexpressible glob": ('filesystem: {exec: ["/usr/{a,{b,c}}"]}', "apparmor", r"nested"),
    "unbalanced class": ('filesystem: {deny: ["/a/[b"]}', "docker", r"unbalanced '\['"),
    "unknown capability": ("capabilities: {add: [NET_BIND_SERVIC]}", "oci", r"NET_BIND_SERVICE"),
    "bad SELinux type": ("lsm: {selinux: {type: web-api_t}}", "selinux", r"lsm\.selinux\.type"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_and_writes_nothing(case: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    body, target, expect = CASES[case]
    policy = tmp_path / "bad.yaml"
    policy.write_text(f"stockade: 1\nname: bad\nextends: [default]\n{body}\n")
    out = tmp_path / "out"
    for t in (target, "all"):
        assert main(["compile", str(policy), "--target", t, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert re.search(expect, err), err
        assert re.search(r"bad\.yaml:4:\d+", err), err  # file:line:column
        assert not out.exists()


def test_strict_fails_when_path_rules_have_no_enforcer(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from _policies import EXAMPLES_DIR

    # --strict judges the rules of kinds the target enforces (docs/CLI.md): Landlock only
    # grants, so the policy's deny paths are unenforced there and --strict refuses ...
    out = tmp_path / "out"
    rc = main(["compile", str(EXAMPLES_DIR / "web-api.yaml"), "--target", "landlock", "--strict",
               "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "filesystem.deny[/etc/shadow]" in err and not out.exists()
    # ... while a target that never handles paths is not blamed for them
    assert main(["compile", str(EXAMPLES_DIR / "web-api.yaml"), "--target", "capabilities",
                 "--strict", "-o", str(out)]) == 0
    assert main(["compile", str(EXAMPLES_DIR / "web-api.yaml"), "--target", "all", "-o", str(out)]) == 0
