"""The recorder's JSON -> names per arch."""

from __future__ import annotations

from stockade.learn.recording import Recording
from stockade.linux.syscall_table import AUDIT_ARCH, syscall_table


def test_numbers_become_names_per_arch() -> None:
    t = syscall_table()
    data = {
        "started": True,
        "syscalls": [[AUDIT_ARCH["x86_64"], t.number("x86_64", "openat")],
                     [AUDIT_ARCH["x86"], t.number("x86", "socketcall")],
                     [AUDIT_ARCH["x86_64"], 0x40000000 | 1],  # an x32 write
                     [AUDIT_ARCH["x86_64"], 4000]],
        "values": [["socket", 0, 2]], "paths": [["x", "/bin/sh"]],
        "sockaddrs": [["bind", 2, 80, True]], "tasks": 2, "notifications": 9,
    }
    rec = Recording.from_json(data, "x86_64")
    assert ("x86_64", "openat") in rec.syscalls and ("x86", "socketcall") in rec.syscalls
    assert ("x32", "write") in rec.syscalls
    assert rec.unknown == ("x86_64:4000",)
    assert rec.sockaddrs == frozenset({("bind", 2, 80, True)}) and rec.started
