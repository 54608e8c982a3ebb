#!/usr/bin/env python3
"""stockade.run() latency by the caller's size and threads: `/bin/true` under the
`default` policy on a busybox rootfs. The executor is posix_spawn()ed (no fork of the
caller), so a big or multi-threaded caller should pay nothing extra: this measures it.

Run as root:  .venv/bin/python bench/api_size_bench.py [--rounds 20] [--sizes 0,128,480]
Each size runs in a fresh worker process that first makes that many MiB resident (a
service's heap), then measures runs from its main thread alone, then with 4 idle threads.
Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _measure(rootfs: str, rounds: int, settle: float) -> float:
    import stockade

    env = {"PATH": "/bin"}
    stockade.run(["/bin/true"], policy="default", rootfs=rootfs, env=env)  # warm
    samples = []
    for _ in range(rounds):
        time.sleep(settle)
        t = time.perf_counter()
        stockade.run(["/bin/true"], policy="default", rootfs=rootfs, env=env)
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)


def worker(size_mib: int, rounds: int, settle: float, rootfs: str) -> None:
    sys.path.insert(0, str(REPO / "src"))
    ballast = bytearray(size_mib << 20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # resident, like a service's heap
    alone = _measure(rootfs, rounds, settle)
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        threaded = _measure(rootfs, rounds, settle)
    finally:
        stop.set()
        for t in threads:
            t.join()
    with open("/proc/self/status") as fh:
        rss = next(int(line.split()[1]) // 1024 for line in fh if line.startswith("VmRSS:"))
    print(json.dumps({"rss": rss, "alone": alone, "threaded": threaded}))
    del ballast


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--sizes", default="0,128,480", help="MiB to make resident, comma-separated")
    ap.add_argument("--settle", type=float, default=0.1, help="untimed pause before each run")
    ap.add_argument("--worker", nargs=2, metavar=("MIB", "ROOTFS"), help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.worker:
        worker(int(opts.worker[0]), opts.rounds, opts.settle, opts.worker[1])
        return 0
    if os.geteuid() != 0:
        print("run as root (namespaces, cgroups)", file=sys.stderr)
        return 2
    from run_bench import make_rootfs, remove_base  # this directory: the same helpers

    base = Path(tempfile.mkdtemp(prefix="stockade-apisize-"))
    os.chmod(base, 0o755)
    try:
        rootfs = make_rootfs(base / "rootfs")
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"),
               "STOCKADE_CACHE_DIR": str(base / "cache")}
        # Warm the plan cache once, so no worker compiles the policy (and grows).
        subprocess.run([sys.executable, "-c", "import stockade, sys; stockade.run(['/bin/true'],"
                        f" policy='default', rootfs={str(rootfs)!r}, env={{'PATH': '/bin'}})"],
                       check=True, env=env)
        print(f"## stockade.run() by caller size, {opts.rounds} rounds each, settle "
              f"{opts.settle:g} s (medians, ms)\n")
        print("| caller RSS | main thread alone | with 4 more threads | size cost vs 0 MiB |")
        print("|---:|---:|---:|---:|")
        first = None
        for size in (int(x) for x in opts.sizes.split(",")):
            out = subprocess.run([sys.executable, __file__, "--rounds", str(opts.rounds),
                                  "--settle", str(opts.settle), "--worker", str(size),
                                  str(rootfs)], check=True, env=env, capture_output=True,
                                 text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            first = first or r["alone"]
            print(f"| {r['rss']} MiB | {r['alone']:.2f} | {r['threaded']:.2f} | "
                  f"{r['alone'] / first:.2f}x |")
    finally:
        remove_base(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
