"""Device rules on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program (runc's devicefilter).

cgroup v2 has no devices.allow file: the kernel asks an eBPF program attached to the
cgroup for every open/mknod of a device node. The program here is built from the same
rule strings the v1 path writes ("c 1:3 rwm", "b *:* m", "a"), after an implicit deny-all:
the first matching allow returns 1, the end returns 0 (EPERM). It is attached with
BPF_F_ALLOW_MULTI, so a program on an ancestor (systemd's, the engine's) still applies:
the kernel allows only what every one of them allows.
"""

from __future__ import annotations

import struct

from stockade.linux.consts import (
    BPF_CGROUP_DEVICE,
    BPF_F_ALLOW_MULTI,
    BPF_PROG_ATTACH,
    BPF_PROG_LOAD,
    BPF_PROG_TYPE_CGROUP_DEVICE,
)

_PROLOGUE_LEN = 6
# struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major, minor; }
_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACC = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
LICENSE = b"Apache-2.0\0"  # the verifier only asks; no GPL-only helper is called


class DeviceRuleError(ValueError):
    pass


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: opcode, dst/src registers, 16-bit offset, 32-bit immediate."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


_LDXW = 0x61  # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
_AND32 = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RSH32 = 0x74  # BPF_ALU | BPF_RSH | BPF_K
_MOV32X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
_MOV64 = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
_JNE = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_JNEX = 0x5D  # BPF_JMP | BPF_JNE | BPF_X
_EXIT = 0x95


def parse_rule(rule: str) -> tuple[int, int, int | None, int | None]:
    """"c 1:3 rwm" -> (type or 0 for any, access bits, major or None, minor or None)."""
    if rule == "a":
        return 0, 7, None, None
    try:
        kind, nums, access = rule.split(" ")
        major, minor = nums.split(":")
    except ValueError as exc:
        raise DeviceRuleError(f"device rule {rule!r}: expected 'TYPE MAJOR:MINOR ACCESS'") from exc
    if kind not in ("a", "b", "c") or not access or not set(access) <= set(_ACC):
        raise DeviceRuleError(f"device rule {rule!r}: type a/b/c, access a subset of rwm")
    bits = 0
    for ch in access:
        bits |= _ACC[ch]

    def num(text: str) -> int | None:
        if text == "*":
            return None
        if not text.isdigit() or int(text) > 0xFFFFFFFF:
            raise DeviceRuleError(f"device rule {rule!r}: bad number {text!r}")
        return int(text)

    return {"a": 0, "b": _DEV_BLOCK, "c": _DEV_CHAR}[kind], bits, num(major), num(minor)


def program(rules: tuple[str, ...]) -> bytes:
    """The eBPF program for these allow rules (deny everything else), as bytes."""
    out = [
        _insn(_LDXW, dst=2, src=1, off=0),  # r2 = access_type
        _insn(_AND32, dst=2, imm=0xFFFF),  # r2 = type
        _insn(_LDXW, dst=3, src=1, off=0),
        _insn(_RSH32, dst=3, imm=16),  # r3 = requested access
        _insn(_LDXW, dst=4, src=1, off=4),  # r4 = major
        _insn(_LDXW, dst=5, src=1, off=8),  # r5 = minor
    ]
    assert len(out) == _PROLOGUE_LEN
    for rule in rules:
        kind, bits, major, minor = parse_rule(rule)
        checks: list[tuple[int, int, int, int]] = []  # (code, dst, src, imm), each a jump
        pre: list[bytes] = []
        if kind:
            checks.append((_JNE, 2, 0, kind))
        if bits != 7:
            # requested must be a subset of the rule's access: (r3 & bits) == r3
            pre_at = len(checks)
            checks.append((_JNEX, 1, 3, 0))
            pre = [_insn(_MOV32X, dst=1, src=3), _insn(_AND32, dst=1, imm=bits)]
        else:
            pre_at = -1
        if major is not None:
            checks.append((_JNE, 4, 0, major))
        if minor is not None:
            checks.append((_JNE, 5, 0, minor))
        block: list[bytes] = []
        # each jump skips to after this block's "r0 = 1; exit"
        total = len(checks) + len(pre) + 2
        for i, (code, dst, src, imm) in enumerate(checks):
            if i == pre_at:
                block += pre
            remaining = total - len(block) - 1
            block.append(_insn(code, dst=dst, src=src, off=remaining, imm=imm))
        block += [_insn(_MOV64, dst=0, imm=1), _insn(_EXIT)]
        out += block
        if not checks:
            # Allows everything: what follows could never run, and the verifier refuses
            # unreachable instructions.
            return b"".join(out)
    out += [_insn(_MOV64, dst=0, imm=0), _insn(_EXIT)]
    return b"".join(out)


def attach(cgroup_dir: str, prog: bytes) -> None:
    """Load the program and attach it to the cgroup (it stays with the cgroup once our
    fds are closed, and goes with it when it is removed). Raises OSError."""
    import ctypes
    import os

    from stockade.linux import syscalls as L

    insns = ctypes.create_string_buffer(prog, len(prog))
    lic = ctypes.create_string_buffer(LICENSE, len(LICENSE))
    attr = ctypes.create_string_buffer(struct.pack(
        "<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_DEVICE, len(prog) // 8,
        ctypes.addressof(insns), ctypes.addressof(lic), 0, 0, 0, 0, 0, b"stockade_dev", 0, 0),
        128)
    prog_fd = L.syscall("bpf", BPF_PROG_LOAD, attr, 128)
    try:
        cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            at = ctypes.create_string_buffer(struct.pack(
                "<IIIII", cg_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0), 32)
            L.syscall("bpf", BPF_PROG_ATTACH, at, 32)
        finally:
            os.close(cg_fd)
    finally:
        os.close(prog_fd)
