#!/usr/bin/env python3
"""Hostile-size input (issue 14.5): wall time and peak RSS of `stockade validate` and
`stockade import docker-seccomp` on oversized files, alias bombs and inputs at the limits.

Run:  .venv/bin/python bench/hostile_input_bench.py [--runs 5] [--python PY] [--src DIR]
Each case runs the real CLI in a fresh child (`PY -m stockade ...`); the child's peak RSS
is its own ru_maxrss (os.wait4), so the bench process's memory is not counted. Prints a
Markdown table of medians. `--src` runs another checkout's src/ (e.g. an old revision, to
measure a before); a case taking longer than --timeout is reported as such.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAMES = ("read", "write", "openat", "close", "fstat", "mmap", "futex", "brk")


def _policy(path: Path, *, size: int = 1 << 62, items: int = 1 << 62) -> None:
    """A plausible policy: a block list of syscall names, `size` bytes or `items` names
    (the YAML is then items + 9 nodes: the keys and collections around the list)."""
    with path.open("w") as fh:
        fh.write("stockade: 1\nname: big\nsyscalls:\n  allow:\n")
        i = 0
        while fh.tell() < size and i < items:
            fh.write(f"    - {NAMES[i % len(NAMES)]}\n")
            i += 1


def _laughs(path: Path, levels: int) -> None:
    """10 values, then `levels` levels of 10 aliases each: 10^(levels+1) values."""
    lines = ["stockade: 1", "name: laughs", "l0: &l0 [" + ", ".join(["read"] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    lines += ["syscalls:", f"  allow: *l{levels}"]
    path.write_text("\n".join(lines) + "\n")


def _flow_nodes(path: Path, size: int) -> None:
    """The most nodes per byte: a flow list `[a,a,a,...]` (2 bytes a node)."""
    n = (size - 64) // 2
    path.write_text("stockade: 1\nname: flow\nx: [" + "a," * n + "a]\n")


def _big_json(path: Path, size: int) -> None:
    """A seccomp profile of `size` bytes: one syscall entry repeated."""
    entry = '{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": []}'
    count = size // (len(entry) + 1)
    path.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [' + ",".join([entry] * count) + "]}")


def _many_rules(path: Path, size: int) -> None:
    """A seccomp profile of `size` bytes of distinct argument rules (none merge)."""
    rule = '{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": %d, "op": "SCMP_CMP_EQ"}]}'
    parts: list[str] = []
    total = 0
    while total + len(rule) + 16 < size - 64:
        parts.append(rule % len(parts))
        total += len(parts[-1]) + 1
    path.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [' + ",".join(parts) + "]}")


# name -> (what, make the input, the CLI arguments after `stockade`)
CASES: dict[str, tuple[str, Callable[[Path], None], list[str]]] = {
    "example": ("examples/web-api.yaml (baseline)", lambda p: shutil.copy(REPO / "examples" / "web-api.yaml", p),
                ["validate"]),
    "policy-10MB": ("10 MB policy (block list)", lambda p: _policy(p, size=10 << 20), ["validate"]),
    "laughs-1e7": ("billion laughs, 10^7 values", lambda p: _laughs(p, 6), ["validate"]),
    "laughs-1e9": ("billion laughs, 10^9 values", lambda p: _laughs(p, 8), ["validate"]),
    "recursive": ("recursive alias", lambda p: p.write_text("stockade: 1\nname: r\nx: &a [read, *a]\n"),
                  ["validate"]),
    "policy-1MiB": ("policy just under 1 MiB (~87k nodes)",
                    lambda p: _policy(p, size=(1 << 20) - 4096), ["validate"]),
    "policy-20k": ("policy at the node limit (20,000 nodes, accepted)",
                   lambda p: _policy(p, items=20_000 - 9), ["validate"]),
    "flow-1MiB": ("flow list just under 1 MiB (~520k nodes)", lambda p: _flow_nodes(p, (1 << 20) - 4096),
                  ["validate"]),
    "seccomp-moby": ("import docker-seccomp: moby default (baseline)",
                     lambda p: shutil.copy(REPO / "tests" / "data" / "moby-default-seccomp.json", p),
                     ["import", "docker-seccomp"]),
    "seccomp-rules-1MiB": ("import docker-seccomp: 1 MiB of distinct argument rules",
                           lambda p: _many_rules(p, (1 << 20) - 4096), ["import", "docker-seccomp"]),
    "seccomp-10MB": ("import docker-seccomp: 10 MB profile", lambda p: _big_json(p, 10 << 20),
                     ["import", "docker-seccomp"]),
}


def measure(python: str, src: Path, args: list[str], timeout: float,
            limit_gib: float) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, exit status) of one child; seconds = inf past the timeout.
    The child's address space is capped (RLIMIT_AS) so that an unprotected revision
    fails with MemoryError instead of taking the machine's memory."""
    env = dict(os.environ, PYTHONPATH=str(src))
    limit = int(limit_gib * (1 << 30))

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    start = time.perf_counter()
    child = subprocess.Popen([python, "-m", "stockade", *args], env=env, preexec_fn=cap,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            child.kill()
            _, status, usage = os.wait4(child.pid, 0)
            return float("inf"), usage.ru_maxrss / 1024, -9
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, child.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--src", type=Path, default=REPO / "src")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--limit-gib", type=float, default=4.0, help="RLIMIT_AS of each child")
    parser.add_argument("--cases", default=",".join(CASES))
    opts = parser.parse_args()
    print("| input | file size | exit | time (median) | peak RSS (median) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="stockade-hostile-") as tmp:
        for name in opts.cases.split(","):
            what, make, args = CASES[name]
            path = Path(tmp) / (name + (".json" if args[0] == "import" else ".yaml"))
            make(path)
            extra = ["-o", str(Path(tmp) / "out.yaml")] if args[0] == "import" else []
            runs = [measure(opts.python, opts.src, [*args, str(path), *extra], opts.timeout, opts.limit_gib)
                    for _ in range(opts.runs)]
            secs = statistics.median(r[0] for r in runs)
            rss = statistics.median(r[1] for r in runs)
            codes = sorted({r[2] for r in runs})
            shown = f"> {opts.timeout:.0f} s (killed)" if secs == float("inf") else f"{secs:.2f} s"
            print(f"| {what} | {path.stat().st_size / (1 << 20):.2f} MiB | {','.join(map(str, codes))} "
                  f"| {shown} | {rss:.0f} MiB |", flush=True)
            (Path(tmp) / "out.yaml").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
