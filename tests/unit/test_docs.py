"""The docs teach the whole product and cannot drift silently from the code.

docs/POLICY.md must name every key and value of the policy's JSON Schema and every action
the validator accepts, and its YAML examples must validate; docs/CLI.md must have a
section for every subcommand argparse defines, naming each of its options; every relative
Markdown link must land on a file inside the repository (and on a heading, when it names
one); docs/DEVELOPING.md may only name commands that exist.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from stockade.cli import build_parser
from stockade.errors import Location
from stockade.policy.loader import load_policy
from stockade.policy.merge.syscalls import ACTION_FORMS, ACTIONS, parse_action
from stockade.policy.model import ActionKind
from stockade.policy.schema import json_schema

REPO = Path(__file__).resolve().parents[2]
POLICY_MD = REPO / "docs/POLICY.md"
CLI_MD = REPO / "docs/CLI.md"
DEVELOPING_MD = REPO / "docs/DEVELOPING.md"
EXAMPLES = REPO / "examples"


# ---------------------------------------------------------------- helpers


def schema_keys(schema: dict[str, Any]) -> set[str]:
    """Every property name: the top level and every section ($defs)."""
    keys = set(schema["properties"])
    for definition in schema.get("$defs", {}).values():
        keys |= set(definition.get("properties", {}))
    return keys


def schema_values(node: Any) -> set[str]:
    """Every string an `enum` (a Literal in schema.py) allows, anywhere in the schema."""
    found: set[str] = set()
    if isinstance(node, dict):
        found |= {v for v in node.get("enum", ()) if isinstance(v, str)}
        if isinstance(node.get("const"), str):
            found.add(node["const"])
        for value in node.values():
            found |= schema_values(value)
    elif isinstance(node, list):
        for value in node:
            found |= schema_values(value)
    return found


def missing_words(words: Iterable[str], text: str) -> list[str]:
    """The words that do not occur in `text` as a whole token (`-`, `_` count as letters)."""
    return sorted(w for w in words if not re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text))


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)


def headings(text: str) -> Iterator[tuple[int, str]]:
    """(level, title) of each Markdown heading outside fenced code."""
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^(#{1,6}) (.+?)\s*#*$", line)):
            yield len(m[1]), m[2]


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, title in headings(text):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(text: str) -> list[str]:
    """Link targets of [text](target) outside fenced code, without URLs."""
    body = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    targets = re.findall(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", body)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def broken_links(md: Path, repo: Path) -> list[str]:
    """Why each relative link of `md` does not resolve to a file (and heading) in `repo`."""
    problems = []
    for target in relative_links(md.read_text()):
        path_part, _, fragment = target.partition("#")
        dest = (md.parent / unquote(path_part)).resolve() if path_part else md.resolve()
        if not dest.is_relative_to(repo.resolve()):
            problems.append(f"{md.name}: {target}: leaves the repository")
        elif not dest.exists():
            problems.append(f"{md.name}: {target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest.read_text()):
            problems.append(f"{md.name}: {target}: no heading with that anchor")
    return problems


def command_tree(parser: argparse.ArgumentParser,
                 path: tuple[str, ...] = ("stockade",)) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    tree = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                tree |= command_tree(sub, (*path, name))
    return tree


def long_options(parser: argparse.ArgumentParser) -> set[str]:
    out = set()
    for action in parser._actions:
        names = [o for o in action.option_strings if o.startswith("--")] or action.option_strings
        if names and "--help" not in names:
            out.add(names[0])
    return out


def section(text: str, title: str) -> str | None:
    """The text under the heading `title` up to the next heading, or None."""
    m = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#|\Z)", text, re.M | re.S)
    return m[1] if m else None


# ---------------------------------------------------------------- POLICY.md


def test_every_schema_key_is_documented() -> None:
    keys = schema_keys(json_schema())
    assert {"syscalls", "rules", "uid_map", "min_kernel", "inside"} <= keys
    assert missing_words((f"`{k}`" for k in keys), POLICY_MD.read_text()) == []


def test_every_schema_value_is_documented() -> None:
    values = schema_values(json_schema())
    assert {"read-only", "masked_eq", "best-effort", "nofile", "cgroup"} <= values
    assert missing_words(values, POLICY_MD.read_text()) == []


def test_every_action_is_documented_accepted_and_complete() -> None:
    text = POLICY_MD.read_text()
    documented = re.findall(r"^\| `([\w:-]+)` \| `SCMP_ACT_", text, re.M)
    assert sorted(documented) == sorted(ACTION_FORMS)
    # every kind of the model is reachable from a word, and each documented word parses
    assert {a.kind for a in ACTIONS.values()} == set(ActionKind)
    for form in documented:
        concrete = form.replace("NAME", "EACCES").replace(":N", ":13")
        parse_action(concrete, Location("docs/POLICY.md"))
    # the one-example-each block uses every word
    examples = "\n".join(yaml_blocks(text))
    for word in ACTIONS:
        assert re.search(rf"action: \"?{re.escape(word)}\"?\}}", examples), word


def test_policy_examples_validate(tmp_path: Path) -> None:
    blocks = yaml_blocks(POLICY_MD.read_text())
    assert len(blocks) >= 10
    for i, block in enumerate(blocks):
        doc = block if block.startswith("stockade:") else f"stockade: 1\nname: doc-example\n{block}"
        path = tmp_path / f"example-{i}.yaml"
        path.write_text(doc)
        load_policy(path)  # raises PolicyError with file:line on a wrong example


def test_a_missing_key_is_caught() -> None:
    """The drift check can fail: a doc that lacks a key is reported."""
    assert missing_words(["`bind`", "`mode`"], "network: `mode` only") == ["`bind`"]
    assert missing_words(["host"], "`hostname`") == ["host"]


# ---------------------------------------------------------------- CLI.md


def test_every_subcommand_has_a_section() -> None:
    text = CLI_MD.read_text()
    tree = command_tree(build_parser())
    assert ("stockade", "oci", "create") in tree and ("stockade", "image", "prune") in tree
    missing = [" ".join(p) for p in tree if section(text, f"`{' '.join(p)}`") is None]
    assert missing == []


def test_every_option_is_documented_in_its_section() -> None:
    text = CLI_MD.read_text()
    tree = command_tree(build_parser())
    undocumented = []
    for path, parser in tree.items():
        body = section(text, f"`{' '.join(path)}`") or ""
        inherited = long_options(tree[path[:-1]]) if len(path) > 1 else set()
        for option in sorted(long_options(parser) - inherited):
            if option not in body:
                undocumented.append(f"{' '.join(path)} {option}")
        for action in parser._actions:  # positional choices, e.g. import's kinds
            if not action.option_strings and action.choices and not isinstance(
                    action, argparse._SubParsersAction):
                undocumented += [f"{' '.join(path)} {c}" for c in action.choices if c not in body]
    assert undocumented == []


def test_run_exit_codes_match_the_runner() -> None:
    from stockade.runner.codes import EXIT_CODES

    body = section(CLI_MD.read_text(), "`stockade run`") or ""
    rows = dict((step, int(code)) for code, step in re.findall(r"^\| (\d+) \| ([\w-]+) \|", body, re.M))
    assert rows == EXIT_CODES


# ---------------------------------------------------------------- links


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), EXAMPLES / "README.md"]


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repo(md: Path) -> None:
    assert md.exists()
    assert broken_links(md, REPO) == []


def test_link_check_refuses_escapes_and_dangling_links(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("# Out\n")
    (repo / "docs/A.md").write_text("# Title\n\n## Two words\n")
    md = repo / "docs/B.md"
    md.write_text("[ok](A.md) [ok](A.md#two-words) [web](https://x.org/y.md) [self](#b)\n"
                  "# B\n[esc](../../outside.md) [gone](C.md) [anchor](A.md#nope)\n"
                  "```\n[in code](nowhere.md)\n```\n")
    assert broken_links(md, repo) == [
        "B.md: ../../outside.md: leaves the repository",
        "B.md: C.md: no such file",
        "B.md: A.md#nope: no heading with that anchor",
    ]


# ---------------------------------------------------------------- examples, DEVELOPING.md


def test_every_example_policy_is_described() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    policies = sorted(EXAMPLES.glob("*.yaml"))
    assert policies
    for policy in policies:
        body = section(readme, f"`{policy.name}`")
        assert body is not None, f"examples/README.md has no section for {policy.name}"
        assert f"stockade validate examples/{policy.name}" in body


def test_developing_names_only_commands_that_exist() -> None:
    text = DEVELOPING_MD.read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    dev_verbs = set(re.findall(r"^\s+([a-z]+)\)", (REPO / "scripts/dev").read_text(), re.M))
    made = set(re.findall(r"\bmake ([a-z][\w-]*)", text))
    assert made and made <= targets
    verbs = set(re.findall(r"scripts/dev ([a-z]+)", text))
    assert verbs and verbs <= dev_verbs
    for path in set(re.findall(r"(?<![\w./])((?:scripts|tools|bench|tests|src|docs)/[\w./-]*\w)", text)):
        assert (REPO / path).exists() or any(REPO.glob(path)), path
    assert "shared/" not in text and "../shared" not in text
