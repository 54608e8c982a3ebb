"""Remove what a jail created: at its end, or later for a runner that was killed.

The order matters: the devices go first, so a sandbox that somehow outlived its runner
loses its link before its rules; a jail is never left connected without them.
"""

from __future__ import annotations

import os

from stockade.runner.network import state
from stockade.runner.network.addressing import DEVICE_PREFIX, Held, slot, try_hold
from stockade.runner.network.nft import delete_script
from stockade.runner.network.tools import run_tool


def cleanup_slot(directory: str, held: Held) -> list[str]:
    """Delete the slot's devices and table, restore forwarding, drop its record. Run
    with the slot's lock held. Returns what it removed (for `stockade gc`)."""
    s = held.slot
    # -force: go on past a device that is already gone (the kernel removes the veth
    # with the sandbox's namespace; the ifb is the host's and stays until deleted).
    run_tool(["ip", "-force", "-batch", "-"], f"link del dev {s.host_if}\nlink del dev {s.ifb}\n",
             check=False)
    run_tool(["nft", "-f", "-"], delete_script(s.table), check=False)
    removed = [f"slot {s.index}: links {s.host_if} {s.ifb}, nft table inet {s.table}"]
    removed += [f"forwarding on {d} restored" for d in
                state.release_forwarding(directory, s.index)]
    state.remove_record(directory, s.index)
    return removed


def sweep(directory: str) -> list[str]:
    """Clean every slot whose record is there but whose run is gone (its lock free)."""
    removed: list[str] = []
    for index in state.record_indexes(directory):
        held = try_hold(directory, index)
        if held is None:
            continue  # a live run
        try:
            removed += cleanup_slot(directory, held)
        finally:
            os.close(held.fd)
    return removed


def collect(directory: str) -> list[str]:
    """`stockade gc`: sweep, then any jail device or table whose slot is free but that
    has no record (a run killed between two of its own steps never leaves that: the
    record comes first; this is for a state directory that was wiped)."""
    removed = sweep(directory)
    names = {int(n[len(DEVICE_PREFIX):].rstrip("i")) for n in _links()
             if n.startswith(DEVICE_PREFIX) and n[len(DEVICE_PREFIX):].rstrip("i").isdigit()}
    names |= {int(t.split("_", 1)[1]) for t in _tables()
              if t.startswith(DEVICE_PREFIX + "_") and t.split("_", 1)[1].isdigit()}
    for index in sorted(names):
        held = try_hold(directory, index)
        if held is None:
            continue
        try:
            if held.slot != slot(index):  # pragma: no cover - same pool, same slot
                continue
            removed += cleanup_slot(directory, held)
        finally:
            os.close(held.fd)
    return removed


def _links() -> set[str]:
    out = run_tool(["ip", "-o", "link", "show"], check=False)
    names = set()
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.add(parts[1].strip().split("@", 1)[0])
    return names


def _tables() -> set[str]:
    out = run_tool(["nft", "list", "tables", "inet"], check=False)
    return {line.split()[-1] for line in out.splitlines() if line.startswith("table inet ")}
