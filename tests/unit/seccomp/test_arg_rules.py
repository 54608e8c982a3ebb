"""Argument rules that could never match are refused at validation (issue 13.5): a
`masked_eq` whose value has bits outside its mask used to reach the compiler and end in
"internal error: the compiled filter disagrees with the policy"."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.cli import main
from stockade.policy import model as m
from stockade.policy.loader import load_policy
from stockade.policy.semantics import decide

POLICY = """\
stockade: 1
name: masked
syscalls:
  default: allow
  rules:
    - syscalls: [personality]
      action: errno:EPERM
      args: [{{index: 2, op: masked_eq, mask: {mask}, value: {value}}}]
"""


@pytest.mark.parametrize("command", [["validate"], ["compile", "-t", "seccomp-bpf", "-o", "OUT"]])
def test_unsatisfiable_masked_eq_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     command: list[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(mask=1, value=2))
    out = tmp_path / "out"
    argv = [str(out) if a == "OUT" else a for a in command]
    assert main([*argv, str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{path}:8:" in err and "masked_eq can never match" in err  # the args line
    assert "mask: 0x3, or value: 0x0" in err  # the fix, spelled out
    assert "internal error" not in err and not out.exists()


def test_a_value_within_the_mask_still_loads_and_means_what_it_says(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(mask=3, value=2))
    policy = load_policy(str(path))
    assert decide(policy, "personality", "x86_64", (0, 0, 2, 0, 0, 0)).action == m.DENY_EPERM
    assert decide(policy, "personality", "x86_64", (0, 0, 3, 0, 0, 0)).action == m.ALLOW
    assert main(["compile", "-t", "seccomp-bpf", "-o", str(tmp_path / "out"), str(path)]) == 0
