#!/usr/bin/env python3
"""Regenerate src/stockade/policy/vocab/groups.json from systemd's own definition.

Run on a machine with systemd: `python tools/gen_groups.py`. The groups are systemd's
SystemCallFilter= sets (names and members), kept verbatim, nested references included.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src/stockade/policy/vocab/groups.json"


def parse(text: str) -> dict[str, dict[str, object]]:
    groups: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not raw.startswith((" ", "\t")) and line.startswith("@"):
            current = {"description": "", "members": []}
            groups[line] = current
        elif current is not None and line.startswith("#"):
            if not current["description"]:
                current["description"] = line.lstrip("# ").strip()
        elif current is not None:
            members = current["members"]
            assert isinstance(members, list)
            members.append(line)
    return groups


def main() -> int:
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True,
                         text=True, check=True).stdout
    version = subprocess.run(["systemd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    doc = {"source": f"systemd-analyze syscall-filter ({version})", "groups": parse(out)}
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}: {len(doc['groups'])} groups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
