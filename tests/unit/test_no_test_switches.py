"""Production code reads no test switch (issue 18). The tests' hooks live in tests/support/
(patched into the tests' own CLI launcher, or by monkeypatch in-process), and the C front
end's only in its tests' build (-DSTOCKADE_TEST_HOOKS; tests/unit/executor/test_build.py
checks the binaries)."""

from __future__ import annotations

import re
from pathlib import Path

import stockade

SRC = Path(stockade.__file__).parent
PY_READ = re.compile(r"""(?:environ(?:\.get)?\s*[\[(]|getenv\()\s*["'](STOCKADE_TEST_\w+)""")
C_READ = re.compile(r'getenv\("(STOCKADE_TEST_\w+)"\)')


def python_reads(text: str) -> list[str]:
    return [m.group(1) for m in PY_READ.finditer(text)]


def c_reads_outside_test_build(text: str) -> list[str]:
    """getenv("STOCKADE_TEST_...") calls not inside `#ifdef STOCKADE_TEST_HOOKS` (the
    `#else` branch of such a block is the installed build's)."""
    stack: list[bool] = []  # per open #if: does it compile only in the tests' build?
    found = []
    for line in text.splitlines():
        directive = line.strip()
        if directive.startswith("#if"):
            stack.append(directive.split()[:2] == ["#ifdef", "STOCKADE_TEST_HOOKS"])
        elif directive.startswith(("#else", "#elif")) and stack:
            stack[-1] = False
        elif directive.startswith("#endif") and stack:
            stack.pop()
        elif not any(stack):
            found += C_READ.findall(line)
    return found


def test_the_checks_find_a_switch() -> None:
    # what src/ held before: the checks below can fail
    assert python_reads('fault=os.environ.get("STOCKADE_TEST_FAULT", "")') == \
        ["STOCKADE_TEST_FAULT"]
    assert python_reads('os.environ["STOCKADE_TEST_PAUSE"]') == ["STOCKADE_TEST_PAUSE"]
    fault = 'const char *fault = getenv("STOCKADE_TEST_FAULT");\n'
    assert c_reads_outside_test_build(fault) == ["STOCKADE_TEST_FAULT"]
    hooked = f"#ifdef STOCKADE_TEST_HOOKS\n{fault}#else\n#endif\n"
    assert c_reads_outside_test_build(hooked) == []
    assert c_reads_outside_test_build(f"#ifdef STOCKADE_TEST_HOOKS\n#else\n{fault}#endif\n") \
        == ["STOCKADE_TEST_FAULT"]


def test_no_python_source_reads_a_test_switch() -> None:
    found = {str(p.relative_to(SRC)): python_reads(p.read_text())
             for p in sorted(SRC.rglob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}


def test_c_sources_read_test_switches_only_in_the_tests_build() -> None:
    sources = sorted([*SRC.rglob("*.c"), *SRC.rglob("*.h")])
    assert sources
    found = {str(p.relative_to(SRC)): c_reads_outside_test_build(p.read_text())
             for p in sources}
    assert {k: v for k, v in found.items() if v} == {}
