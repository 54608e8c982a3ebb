"""Each set-up step of the compiled executor exists once, in src/stockade/executor/: the
front end (oci/frontend.c) and the runtime side of its create (oci/fastexec.c) call those
steps and make none of the set-up calls themselves (docs/EXECUTOR.md, "Where the steps
are")."""

from __future__ import annotations

import re
from pathlib import Path

import stockade

PACKAGE = Path(stockade.__file__).parent
EXECUTOR = PACKAGE / "executor"
FRONT_END = (PACKAGE / "oci" / "frontend.c", PACKAGE / "oci" / "fastexec.c")

# The calls that are set-up steps: clone, id maps, cgroup directories, mounts, pivot_root,
# capabilities, rlimits, no_new_privs, seccomp, the cwd, execve of the payload.
SETUP_CALLS = {
    "clone": r"\bSYS_clone3?\b",
    "id maps": r'"(uid|gid)_map"',
    "cgroup directories": r"\bmkdir_below\s*\(|cgroup\.subtree_control|\bBPF_PROG_LOAD\b|SYS_bpf\b",
    "mounts": r"\bSYS_(open_tree|move_mount|fsopen|fsmount|fsconfig|mount_setattr)\b",
    "pivot_root": r"\bSYS_pivot_root\b",
    "capabilities": r"\bSYS_capset\b|\bPR_CAPBSET_DROP\b|\bPR_CAP_AMBIENT\b",
    "rlimits": r"\bsetrlimit\s*\(",
    "no_new_privs": r"\bPR_SET_NO_NEW_PRIVS\b",
    "seccomp": r"\bSYS_seccomp\b|\bSECCOMP_SET_MODE_FILTER\b",
    "execve": r"\bexecve\s*\(",
}


def _code(path: Path) -> str:
    """The C source without its comments (a comment may name a step)."""
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", path.read_text(), flags=re.S)


def test_the_front_end_makes_no_set_up_call_of_its_own() -> None:
    for source in FRONT_END:
        code = _code(source)
        found = {step: m.group(0) for step, pattern in SETUP_CALLS.items()
                 if (m := re.search(pattern, code))}
        assert not found, f"{source.name} sets a container up itself: {found} " \
                          "(the step belongs in src/stockade/executor/)"


def test_each_set_up_call_is_made_by_the_executor() -> None:
    code = "\n".join(_code(p) for p in sorted(EXECUTOR.glob("*.c")))
    missing = [step for step, pattern in SETUP_CALLS.items() if not re.search(pattern, code)]
    assert not missing, f"no executor step makes these calls: {missing}"


def test_the_front_end_build_compiles_every_executor_source() -> None:
    from stockade.oci import frontend

    assert EXECUTOR.resolve() == frontend.EXECUTOR
    assert EXECUTOR.resolve() / "steps" == frontend.STEPS
