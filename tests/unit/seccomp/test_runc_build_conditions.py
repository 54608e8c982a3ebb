"""The runc-way builder's reading of moby's includes/excludes (kept apart from the
importer's, which the tests compare it with; only the version grammar is shared)."""

from __future__ import annotations

import pytest

from stockade.linux.syscall_table import syscall_table
from stockade.policy import model as m
from stockade.seccomp.check import evaluate
from stockade.seccomp.runc_build import compile_docker_profile


def _profile(min_kernel: str) -> dict[str, object]:
    return {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                          "includes": {"minKernel": min_kernel}}]}


def test_min_kernel_is_compared_as_a_version() -> None:
    nr = syscall_table().by_arch["x86_64"]["ptrace"]
    for min_kernel, kernel, expected in [("4.8", (4, 19), m.ALLOW), ("4.20", (4, 19), m.DENY_EPERM),
                                         ("5", (4, 19), m.DENY_EPERM), ("5", (5, 0), m.ALLOW)]:
        program = compile_docker_profile(_profile(min_kernel), native="x86_64", kernel=kernel)
        assert evaluate(program, "x86_64", nr) == expected, (min_kernel, kernel)


def test_a_malformed_min_kernel_names_the_value_and_the_grammar() -> None:
    """It was read with a bare int(): 'invalid literal for int() with base 10', no word of
    which field or what it should look like."""
    with pytest.raises(ValueError, match=r"'five\.1'.*MAJOR\.MINOR"):
        compile_docker_profile(_profile("five.1"), native="x86_64")
