"""seccomp(2)'s filter flags are defined once, in linux.consts, with the uapi's values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stockade.linux import consts

HEADER = Path("/usr/include/linux/seccomp.h")


def _header_values() -> dict[str, int]:
    values: dict[str, int] = {}
    for name, shift, plain in re.findall(
            r"#define\s+(SECCOMP_(?:FILTER_FLAG|SET_MODE)_\w+)\s+(?:\(1UL << (\d+)\)|(\d+)\b)",
            HEADER.read_text()):
        values[name] = 1 << int(shift) if shift else int(plain)
    return values


def test_filter_flags_have_the_kernels_values() -> None:
    if not HEADER.exists():
        pytest.skip(f"{HEADER} missing (Debian: linux-libc-dev)")
    header = _header_values()
    ours = {n: getattr(consts, n) for n in dir(consts)
            if n.startswith(("SECCOMP_FILTER_FLAG_", "SECCOMP_SET_MODE_"))}
    assert {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"} <= set(ours)
    assert {n: header.get(n) for n in ours} == ours


def test_the_oci_flag_names_are_the_constants_names() -> None:
    """linux.seccomp.flags names the kernel's constants: the table is built from them."""
    assert dict(consts.OCI_SECCOMP_FLAGS) == {n: getattr(consts, n) for n in consts.OCI_SECCOMP_FLAGS}
    assert set(consts.OCI_SECCOMP_FLAGS) == {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                             "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}
