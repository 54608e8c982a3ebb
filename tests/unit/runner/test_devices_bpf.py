"""The cgroup v2 device program: rule parsing, and its verdicts checked by a small
interpreter of the instructions it uses against a direct reading of the rules (the
kernel runs the same program in tests/integration/runner/test_devices_bpf.py)."""

from __future__ import annotations

import itertools
import struct

import pytest

from stockade.oci.translate import DEFAULT_DEVICE_RULES
from stockade.runner.cgroups.devices_bpf import DeviceRuleError, parse_rule, program


def run(prog: bytes, kind: int, access: int, major: int, minor: int) -> int:
    """Evaluate the program on struct bpf_cgroup_dev_ctx (only the opcodes it emits)."""
    ctx = struct.pack("<III", access << 16 | kind, major, minor)
    regs = [0] * 11
    pc = 0
    insns = [struct.unpack_from("<BBhi", prog, i) for i in range(0, len(prog), 8)]
    for _ in range(10_000):
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == 0x61:  # r_dst = *(u32 *)(ctx + off), src is the ctx register
            assert src == 1
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0x54:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0x55:
            if regs[dst] != imm & 0xFFFFFFFF:
                pc += off
        elif code == 0x5D:
            if regs[dst] != regs[src]:
                pc += off
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("no exit")


def allowed(rules: tuple[str, ...], kind: int, access: int, major: int, minor: int) -> bool:
    for rule in rules:
        rkind, bits, rmaj, rmin = parse_rule(rule)
        if ((rkind == 0 or rkind == kind) and access & bits == access
                and rmaj in (None, major) and rmin in (None, minor)):
            return True
    return False


RULE_SETS = [
    DEFAULT_DEVICE_RULES,
    (),
    ("a",),
    ("c 1:3 r", "b 8:* rw", "c *:9 m", "c 10:229 rwm"),
    ("b *:* m", "c 136:* rwm", "c 5:2 w"),
    ("c 1:3 r", "a", "b 8:1 rw"),
]


@pytest.mark.parametrize("rules", RULE_SETS, ids=[str(i) for i in range(len(RULE_SETS))])
def test_verdicts_match_the_rules(rules: tuple[str, ...]) -> None:
    prog = program(rules)
    assert len(prog) % 8 == 0
    for kind, access, major, minor in itertools.product(
            (1, 2), range(1, 8), (1, 5, 8, 10, 136, 300), (0, 2, 3, 9, 229, 1000)):
        want = allowed(rules, kind, access, major, minor)
        assert run(prog, kind, access, major, minor) == int(want), (rules, kind, access,
                                                                     major, minor)


def test_parse() -> None:
    assert parse_rule("a") == (0, 7, None, None)
    assert parse_rule("c 1:3 rwm") == (2, 7, 1, 3)
    assert parse_rule("b *:* m") == (1, 1, None, None)
    assert parse_rule("c 136:* rw") == (2, 6, 136, None)
    for bad in ("c 1:3", "x 1:3 r", "c 1:3 q", "c a:3 r", "c 1:3 ", "c 1-3 r"):
        with pytest.raises(DeviceRuleError):
            parse_rule(bad)
