"""The cBPF interpreter's loads: A and X read the same modes (immediate, scratch memory,
packet length); only A reads seccomp_data words, and a mode it does not know fails."""

from __future__ import annotations

import pytest

from stockade.seccomp import bpf as b

DATA = b.seccomp_data(nr=59, arch=0xC000003E, args=(7,))


def _ret_a(*program: b.Insn) -> int:
    return b.run([*program, b.stmt(b.BPF_RET | b.BPF_A, 0)], DATA)


def test_both_registers_load_immediate_memory_and_length() -> None:
    txa = b.stmt(b.BPF_MISC | b.BPF_TXA, 0)
    assert _ret_a(b.stmt(b.BPF_LD | b.BPF_IMM, 5)) == 5
    assert _ret_a(b.stmt(b.BPF_LDX | b.BPF_IMM, 6), txa) == 6
    assert _ret_a(b.stmt(b.BPF_LD | b.BPF_LEN, 0)) == len(DATA) == 64
    assert _ret_a(b.stmt(b.BPF_LDX | b.BPF_LEN, 0), txa) == 64
    store = [b.stmt(b.BPF_LD | b.BPF_IMM, 9), b.stmt(b.BPF_ST, 3), b.stmt(b.BPF_LD | b.BPF_IMM, 0)]
    assert _ret_a(*store, b.stmt(b.BPF_LD | b.BPF_MEM, 3)) == 9
    assert _ret_a(*store, b.stmt(b.BPF_LDX | b.BPF_MEM, 3), txa) == 9
    assert _ret_a(b.stmt(b.BPF_LD | b.BPF_W | b.BPF_ABS, 0)) == 59
    assert _ret_a(b.stmt(b.BPF_LD | b.BPF_W | b.BPF_ABS, 16)) == 7


@pytest.mark.parametrize("code", [b.BPF_LDX | b.BPF_W | b.BPF_ABS, b.BPF_LD | b.BPF_B | b.BPF_ABS,
                                  b.BPF_LD | b.BPF_W | b.BPF_IND])
def test_a_load_seccomp_does_not_allow_is_refused(code: int) -> None:
    with pytest.raises(b.BpfError, match="unsupported"):
        _ret_a(b.stmt(code, 0))
