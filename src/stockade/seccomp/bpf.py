"""Classic BPF for seccomp: the instruction codec, an interpreter, a path analysis and a
tiny assembler.

The interpreter runs an exported filter on a synthetic `struct seccomp_data`, so `explain`
and the tests check the real compiled program, not our idea of it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

# instruction classes and fields (linux/filter.h)
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_RET, BPF_MISC = range(8)
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_LEN = 0x00, 0x20, 0x40, 0x60, 0x80
BPF_K, BPF_X = 0x00, 0x08
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x20, 0x30, 0x40
BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50
BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD, BPF_XOR = 0x60, 0x70, 0x80, 0x90, 0xA0
BPF_A = 0x10
BPF_TAX, BPF_TXA = 0x00, 0x80

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_DATA = 0x0000FFFF

_INSN = struct.Struct("=HBBI")  # code, jt, jf, k (native layout of struct sock_filter)


@dataclass(frozen=True)
class Insn:
    code: int
    jt: int
    jf: int
    k: int


def decode(program: bytes) -> list[Insn]:
    if len(program) % 8:
        raise ValueError("BPF program length is not a multiple of 8")
    return [Insn(*_INSN.unpack_from(program, i)) for i in range(0, len(program), 8)]


def encode(insns: Sequence[Insn]) -> bytes:
    return b"".join(_INSN.pack(i.code, i.jt, i.jf, i.k & 0xFFFFFFFF) for i in insns)


def seccomp_data(nr: int, arch: int, args: Sequence[int] = (), ip: int = 0, big_endian: bool = False) -> bytes:
    """`struct seccomp_data` as the kernel lays it out for a task of that endianness."""
    full = [a & 0xFFFFFFFFFFFFFFFF for a in args] + [0] * (6 - len(args))
    fmt = (">" if big_endian else "<") + "iIQ6Q"
    return struct.pack(fmt, nr, arch, ip, *full[:6])


class BpfError(Exception):
    pass


def run(program: Sequence[Insn], data: bytes, big_endian: bool = False) -> int:
    """Run a seccomp cBPF program on `data`; returns the 32-bit return value."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    order = ">" if big_endian else "<"
    steps = 0
    while pc < len(program):
        steps += 1
        if steps > 100_000:
            raise BpfError("program does not terminate")
        ins = program[pc]
        cls = ins.code & 0x07
        pc += 1
        if cls in (BPF_LD, BPF_LDX):  # the same modes for both registers; ABS only for A
            mode = ins.code & 0xE0
            if mode == BPF_ABS and cls == BPF_LD and (ins.code & 0x18) == BPF_W:
                if ins.k % 4 or ins.k + 4 > len(data):
                    raise BpfError(f"bad load offset {ins.k}")
                (value,) = struct.unpack_from(order + "I", data, ins.k)
            elif mode == BPF_IMM:
                value = ins.k
            elif mode == BPF_MEM:
                value = mem[ins.k]
            elif mode == BPF_LEN:
                value = len(data)
            else:
                raise BpfError(f"unsupported {'load' if cls == BPF_LD else 'ldx'} {ins.code:#x}")
            if cls == BPF_LD:
                a = value
            else:
                x = value
        elif cls == BPF_ST:
            mem[ins.k] = a
        elif cls == BPF_STX:
            mem[ins.k] = x
        elif cls == BPF_ALU:
            op = ins.code & 0xF0
            src = x if ins.code & BPF_X else ins.k
            if op == BPF_ADD:
                a = a + src
            elif op == BPF_SUB:
                a = a - src
            elif op == BPF_MUL:
                a = a * src
            elif op == BPF_DIV:
                if src == 0:
                    return 0
                a = a // src
            elif op == BPF_MOD:
                if src == 0:
                    return 0
                a = a % src
            elif op == BPF_OR:
                a = a | src
            elif op == BPF_AND:
                a = a & src
            elif op == BPF_XOR:
                a = a ^ src
            elif op == BPF_LSH:
                a = a << (src & 31)
            elif op == BPF_RSH:
                a = a >> (src & 31)
            elif op == BPF_NEG:
                a = -a
            else:
                raise BpfError(f"unsupported alu {ins.code:#x}")
            a &= 0xFFFFFFFF
        elif cls == BPF_JMP:
            op = ins.code & 0xF0
            if op == BPF_JA:
                pc += ins.k
                continue
            src = x if ins.code & BPF_X else ins.k
            if op == BPF_JEQ:
                cond = a == src
            elif op == BPF_JGT:
                cond = a > src
            elif op == BPF_JGE:
                cond = a >= src
            elif op == BPF_JSET:
                cond = bool(a & src)
            else:
                raise BpfError(f"unsupported jump {ins.code:#x}")
            pc += ins.jt if cond else ins.jf
        elif cls == BPF_RET:
            return (a if (ins.code & 0x18) == BPF_A else ins.k) & 0xFFFFFFFF
        elif cls == BPF_MISC:
            if ins.code & 0xF8 == BPF_TXA:
                a = x
            else:
                x = a
        else:  # pragma: no cover - all 8 classes handled
            raise BpfError(f"bad class {cls}")
    raise BpfError("fell off the end of the program")


def accumulator_clashes(program: Sequence[Insn], data: bytes, unknown: frozenset[int],
                        big_endian: bool = False) -> list[int]:
    """Conditional jumps that two paths reach with A loaded from different fields.

    Follows every path of the program for `data`, where the 32-bit words at the offsets in
    `unknown` (the arguments) may hold any value: a comparison made on one field by one path
    and on another by a second is a mis-built program, whatever the values are (libseccomp
    2.5.4 skips the reload before a comparison it shares with a path that loaded another
    argument). Sampling argument values misses that unless they happen to fall just so."""
    order = ">" if big_endian else "<"
    # A's state per instruction: (the field it was loaded from and the ALU steps since,
    # its value when known); jumps go forward only, so one pass in order sees every path
    pending: dict[int, set[tuple[tuple[object, ...], int | None]]] = {0: {((), 0)}}
    clashes = []
    for pc, ins in enumerate(program):
        states = pending.pop(pc, None)
        if not states:
            continue
        cls = ins.code & 0x07

        def go(target: int, state: tuple[tuple[object, ...], int | None]) -> None:
            pending.setdefault(target, set()).add(state)

        if cls == BPF_LD and ins.code & 0xE0 == BPF_ABS and (ins.code & 0x18) == BPF_W:
            known = None if ins.k in unknown else struct.unpack_from(order + "I", data, ins.k)[0]
            go(pc + 1, (("ld", ins.k), known))
        elif cls == BPF_LD and ins.code & 0xE0 == BPF_IMM:
            go(pc + 1, (("imm",), ins.k))
        elif cls == BPF_ALU and not ins.code & BPF_X and ins.code & 0xF0 in (BPF_AND, BPF_OR, BPF_XOR):
            for source, value in states:
                op = ins.code & 0xF0
                if value is not None:
                    value = value & ins.k if op == BPF_AND else value | ins.k if op == BPF_OR else value ^ ins.k
                go(pc + 1, ((*source, op, ins.k), value))
        elif cls == BPF_JMP and ins.code & 0xF0 == BPF_JA:
            for state in states:
                go(pc + 1 + ins.k, state)
        elif cls == BPF_JMP and not ins.code & BPF_X:
            if len({source for source, _ in states}) > 1:
                clashes.append(pc)
            op = ins.code & 0xF0
            for state in states:
                value = state[1]
                if value is None:
                    go(pc + 1 + ins.jt, state)
                    go(pc + 1 + ins.jf, state)
                    continue
                taken = {BPF_JEQ: value == ins.k, BPF_JGT: value > ins.k, BPF_JGE: value >= ins.k,
                         BPF_JSET: bool(value & ins.k)}.get(op)
                if taken is None:
                    raise BpfError(f"unsupported jump {ins.code:#x}")
                go(pc + 1 + (ins.jt if taken else ins.jf), state)
        elif cls != BPF_RET:  # libseccomp writes nothing else; neither does seccomp.prologue
            raise BpfError(f"cannot follow instruction {ins.code:#x} at {pc}")
    return clashes


def stmt(code: int, k: int) -> Insn:
    return Insn(code, 0, 0, k)


def jump(code: int, k: int, jt: int, jf: int) -> Insn:
    if not (0 <= jt <= 255 and 0 <= jf <= 255):
        raise BpfError("conditional jump out of range")
    return Insn(code, jt, jf, k)


class Assembler:
    """Tiny two-pass assembler: jumps name labels; None = fall through."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, str | None, str | None, str | None]] = []
        self.labels: dict[str, int] = {}

    def stmt(self, code: int, k: int, target: str | None = None) -> None:
        self.items.append((code, k, None, None, target))

    def jump(self, code: int, k: int, jt: str | None, jf: str | None) -> None:
        self.items.append((code, k, jt, jf, None))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.items)

    def resolve(self) -> list[Insn]:
        out = []
        for pos, (code, k, jt, jf, target) in enumerate(self.items):
            def off(label: str | None, pos: int = pos) -> int:
                return 0 if label is None else self.labels[label] - pos - 1

            if target is not None:
                out.append(Insn(code, 0, 0, off(target)))
            else:
                out.append(jump(code, k, off(jt), off(jf)) if code & 0x07 == BPF_JMP else stmt(code, k))
        return out
