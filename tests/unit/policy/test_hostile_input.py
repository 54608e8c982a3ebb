"""Hostile policy files (issues 13.8, 14.4, 14.5): each used to crash with a traceback, or
to take tens of seconds and GBs before being refused. Each is now one PolicyError (exit 2)
naming the file, the place and the limit, and nothing is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.cli import main
from stockade.errors import PolicyError, StockadeError
from stockade.policy.loader import load_policy
from stockade.policy.source import MAX_POLICY_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, parse_text
from stockade.profiles.base import Artifact, Artifacts, write_artifacts

HOSTILE = Path(__file__).resolve().parents[2] / "data" / "hostile" / "policy"


def _refused(path: str | Path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(str(path))
    err = info.value
    assert err.exit_code == 2
    assert "\n" not in str(err)
    assert str(err).startswith(str(path))
    return err


def test_recursive_alias_is_refused_not_a_recursion_error() -> None:
    # `allow: &a [read, *a]` is a list containing itself: it used to recurse until
    # RecursionError while being turned into data.
    err = _refused(HOSTILE / "recursive-alias.yaml")
    assert err.problem == "recursive YAML alias"
    assert (err.location.line, err.location.column) == (4, 20)  # the *a


def test_billion_laughs_is_refused_at_the_node_limit() -> None:
    # ~700 bytes expanding to 10^9 values: refused while composing, after MAX_YAML_NODES
    # counted nodes, before any value is built (it used to take ~1 min and 3 GB).
    err = _refused(HOSTILE / "billion-laughs.yaml")
    assert err.problem == "too many YAML nodes"
    assert str(MAX_YAML_NODES) in str(err) and "aliases expanded" in str(err)


def test_aliases_nesting_deeper_than_the_text_are_refused() -> None:
    err = _refused(HOSTILE / "deep-alias.yaml")
    assert err.problem == "YAML nested too deeply"
    assert str(MAX_YAML_DEPTH) in str(err)


@pytest.mark.parametrize("extra,refused", [(0, False), (1, True)])
def test_node_limit_is_exact(extra: int, refused: bool) -> None:
    # 9 nodes around the list: the mapping, 3 keys + 2 values, `syscalls`' mapping, `allow`, the list
    items = MAX_YAML_NODES - 9 + extra
    text = "stockade: 1\nname: big\nsyscalls:\n  allow:\n" + "    - read\n" * items
    if not refused:
        assert len(parse_text(text, "big.yaml").data["syscalls"]["allow"]) == items
        return
    with pytest.raises(PolicyError, match="too many YAML nodes"):
        parse_text(text, "big.yaml")


def test_a_policy_below_the_limits_still_loads_with_aliases() -> None:
    text = ("stockade: 1\nname: shared\nx-io: &io [read, write]\n"
            "syscalls:\n  allow: *io\n  deny: [ptrace]\n")
    doc = parse_text(text, "aliases.yaml")
    assert doc.data["syscalls"]["allow"] == ["read", "write"]


def test_oversized_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    # 10 MB of plausible policy used to take ~33 s and 800 MB; now only the first
    # MAX_POLICY_BYTES + 1 bytes are ever read.
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:
        fh.write("stockade: 1\nname: big\nsyscalls:\n  allow:\n")
        fh.write("    - read\n" * (10 * MAX_POLICY_BYTES // 11))
    err = _refused(big)
    assert err.problem == "file too large"
    assert "1 MiB" in str(err)


def test_huge_sparse_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    # A stand-in for /dev/zero or a multi-GB file (the loader used to read it all): 64 MiB
    # of holes, so a regression costs 64 MiB, not the machine.
    sparse = tmp_path / "sparse.yaml"
    with sparse.open("wb") as fh:
        fh.truncate(64 << 20)
    assert _refused(sparse).problem == "file too large"


@pytest.mark.parametrize("content,problem", [
    (b"\x7fELF\x02\x01\x01\x00\xff\xfe", "not UTF-8 text"),
    (b"stockade: 1\nname: x\x00\n", "not YAML text"),
], ids=["binary", "nul"])
def test_binary_content_is_refused(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    assert _refused(path).problem == problem


def test_directory_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "policy.yaml"
    d.mkdir()
    assert _refused(d).problem == "is a directory"


def test_yaml_syntax_error_reads_problem_and_context() -> None:
    # It read "found did not find expected ',' or ']'".
    err = _refused(HOSTILE / "unclosed-flow.yaml")
    assert "found did not" not in str(err)
    assert str(err) == (f"{HOSTILE / 'unclosed-flow.yaml'}:5:7: malformed YAML: did not find "
                        "expected ',' or ']' (while parsing a flow sequence started at line 4, "
                        "column 10)")


@pytest.mark.parametrize("text,message", [
    ("a: 1\n---\nb: 2\n", "2:1: malformed YAML: expected a single document in the stream, but found "
     "another document"),
    ("a: &x 1\nb: &x 2\n", "2:4: malformed YAML: found duplicate anchor 'x' (first occurrence at line 1, "
     "column 4)"),
    ('a: "x\n', "2:1: malformed YAML: found unexpected end of stream (while scanning a quoted scalar "
     "started at line 1, column 4)"),
    ("a: *nope\n", "1:4: malformed YAML: found undefined alias 'nope'"),
], ids=["two-documents", "duplicate-anchor", "unclosed-quote", "undefined-alias"])
def test_yaml_syntax_errors_read_as_one_sentence(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_text(text, "p.yaml")
    assert str(info.value) == f"p.yaml:{message}"


@pytest.mark.parametrize(("entry", "shown"), [
    ("resources:\n  pids: true", "found true (a boolean)"),  # was "found True (true or false)"
    ("syscalls:\n  allow: null", "found null (nothing)"),    # was "found None (nothing)"
    ("resources:\n  pids: '12'", "found '12' (a string)"),
])
def test_wrong_type_is_shown_as_the_user_wrote_it(tmp_path: Path, entry: str, shown: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"stockade: 1\nname: x\n{entry}\n")
    err = _refused(path)
    assert err.location.line == 4
    assert shown in str(err)


def test_cli_reports_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("recursive-alias", "billion-laughs", "deep-alias", "unclosed-flow"):
        assert main(["validate", str(HOSTILE / f"{name}.yaml")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(HOSTILE / name) in err and "Traceback" not in err


# ------------------------------------------------- SELinux: names clashing with the template


def test_selinux_name_clashing_with_the_template_is_refused(tmp_path: Path) -> None:
    # `name: container` gave module stockade_container, the template's own name: two
    # output files of one name, a half-written directory and a stray .tmp file.
    policy = tmp_path / "container.yaml"
    policy.write_text("stockade: 1\nname: container\nlsm:\n  selinux: {}\n")
    out = tmp_path / "out"
    assert main(["compile", str(policy), "--target", "selinux", "-o", str(out)]) == 2
    assert not out.exists() or list(out.iterdir()) == []
    err = _refused(policy)
    assert "clashes with stockade's template" in str(err) and "stockade_container" in str(err)


def test_selinux_type_declared_by_the_template_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("stockade: 1\nname: x\nlsm:\n  selinux: {type: stockade_container_file_t}\n")
    assert "declared by stockade_container" in str(_refused(policy))


def test_selinux_names_near_the_template_still_load(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("stockade: 1\nname: container-app\nlsm:\n  selinux: {}\n")
    assert load_policy(str(policy)).selinux_type == "container_app_t"


def test_write_artifacts_refuses_two_files_of_one_name(tmp_path: Path) -> None:
    arts = Artifacts(target="t", files=(Artifact("a.cil", text="1"), Artifact("a.cil", text="2")))
    with pytest.raises(StockadeError, match="two output files named a.cil"):
        write_artifacts(arts, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
