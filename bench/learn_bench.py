"""Slowdown of a syscall-heavy workload while `stockade learn` records it, against the
same workload bare, under `strace -f`, and under `stockade run` (the sandbox alone).

    sudo .venv/bin/python bench/learn_bench.py [--rounds 7] [--count 100000]

The workload is busybox `dd bs=1` from /dev/zero to /dev/null: two syscalls per byte,
nothing else, so the per-syscall cost of each recorder dominates. Rounds are
interleaved so that machine load hits every contender alike. "per syscall" subtracts
the fixed cost: strace against bare, learn against `stockade run` (same sandbox setup).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PY = sys.executable


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    res = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{argv[:4]}... failed ({res.returncode}): {res.stderr.decode()[-400:]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--count", type=int, default=100_000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (learn needs it)")
    busybox = shutil.which("busybox") or "/bin/busybox"
    work = [busybox, "dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={args.count}"]
    syscalls = 2 * args.count
    tmp = tempfile.mkdtemp(prefix="learn-bench-")
    appended = os.path.join(tmp, "appended.yaml")
    subprocess.run([PY, "-m", "stockade", "learn", "-o", appended, "--", *work],
                   check=True, stderr=subprocess.DEVNULL)
    contenders = {
        "bare": lambda i: work,
        "strace -f -o /dev/null": lambda i: ["strace", "-f", "-o", "/dev/null", *work],
        "stockade run (sandbox only)": lambda i: [PY, "-m", "stockade", "run", "--", *work],
        "stockade learn (first run)": lambda i: [PY, "-m", "stockade", "learn", "-o",
                                                 os.path.join(tmp, f"first-{i}.yaml"), "--", *work],
        "stockade learn --append (seen syscalls pass)": lambda i: [
            PY, "-m", "stockade", "learn", "--append", "-o", appended, "--", *work],
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for i in range(args.rounds):
        for name, make in contenders.items():
            times[name].append(_time(make(i)))
    med = {k: statistics.median(v) for k, v in times.items()}
    bare, run = med["bare"], med["stockade run (sandbox only)"]
    print(f"workload: {' '.join(work)} ({syscalls} syscalls), {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| contender | median ms | min ms | max ms | vs bare | extra per syscall |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in times.items():
        base = run if name.startswith("stockade learn") else bare
        extra = "" if name in ("bare", "stockade run (sandbox only)") else \
            f"{(med[name] - base) / syscalls * 1e9:.0f} ns"
        print(f"| {name} | {med[name] * 1e3:.1f} | {min(values) * 1e3:.1f} | "
              f"{max(values) * 1e3:.1f} | {med[name] / bare:.1f}x | {extra} |")
    strace_extra = med["strace -f -o /dev/null"] - bare
    learn_extra = med["stockade learn (first run)"] - run
    print(f"\nrecording cost, learn vs strace -f: {learn_extra / strace_extra:.2f} "
          f"({learn_extra * 1e3:.0f} ms vs {strace_extra * 1e3:.0f} ms over the fixed costs)")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
