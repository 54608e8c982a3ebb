"""systemd's SystemCallFilter= groups (names and members), shipped as data.

groups.json is generated from `systemd-analyze syscall-filter` by tools/gen_groups.py, so
people who know systemd's sets get exactly those members.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class SyscallGroup:
    name: str
    description: str
    members: tuple[str, ...]  # as systemd lists them: syscalls and nested @groups


@cache
def all_groups() -> dict[str, SyscallGroup]:
    doc = json.loads(resources.files(__package__).joinpath("groups.json").read_text())
    return {
        name: SyscallGroup(name, g["description"], tuple(g["members"]))
        for name, g in sorted(doc["groups"].items())
    }


@cache
def expand_group(name: str) -> frozenset[str]:
    """Every syscall name in a group, nested groups flattened."""
    group = all_groups()[name]
    names: set[str] = set()
    for member in group.members:
        if member.startswith("@"):
            names |= expand_group(member)
        else:
            names.add(member)
    return frozenset(names)
