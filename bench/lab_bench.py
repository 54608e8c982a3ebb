#!/usr/bin/env python3
"""The LSM lab's numbers: how long a guest takes to boot, and what loading the compiled
profile costs `stockade run` (the first run, which loads it) against later runs (the
kernel already holds it: a digest check only) and against the same policy without an LSM.

Run as root on the host:  .venv/bin/python bench/lab_bench.py [--runs 5] [--lsm apparmor]
It boots the lab's guest (scripts/lab/run.sh) with itself as the guest's command
(--inside), and prints a Markdown table. Under TCG (no KVM) every number is the
emulated CPU's: compare them with each other, not with native runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STOCKADE = str(REPO / ".venv" / "bin" / "stockade")


def _policy(dest: Path, name: str, lsm: str) -> Path:
    path = dest / f"{name}.yaml"
    path.write_text(f"stockade: 1\nname: {name}\nextends: [default]\n"
                    f"lsm:\n  required: true\n{lsm}")
    return path


def _timed_run(policy: Path, root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([STOCKADE, "run", "--policy", str(policy), "--rootfs", str(root), "--",
                    "/bin/true"], check=True)
    return (time.perf_counter() - start) * 1000


def inside(lsm: str, runs: int) -> None:
    """In the guest: first run (loads), cached runs, runs without an LSM."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import make_busybox_rootfs

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = make_busybox_rootfs(base / "rootfs")
        if lsm == "apparmor":
            confined = _policy(base, "bench-aa", "  apparmor: {mode: enforce}\n")
            from stockade.lsm import apparmor

            apparmor.unload("bench-aa")
        else:
            confined = _policy(base, "bench-se", "  selinux: {type: bench_se_t}\n")
        plain = _policy(base, "bench-plain", "")
        _timed_run(plain, root)  # the plan and seccomp caches, for both policies
        first = _timed_run(confined, root)
        cached = [_timed_run(confined, root) for _ in range(runs)]
        without = [_timed_run(plain, root) for _ in range(runs)]
    print("BENCH " + json.dumps({"first_ms": first, "cached_ms": statistics.median(cached),
                                 "plain_ms": statistics.median(without)}), flush=True)


def outside(lsm: str, runs: int) -> dict[str, float]:
    env = {**os.environ, "LAB_COMMAND": f".venv/bin/python bench/lab_bench.py --inside "
                                        f"--lsm {lsm} --runs {runs}"}
    start = time.perf_counter()
    marks: dict[str, float] = {}
    proc = subprocess.Popen(["bash", str(REPO / "scripts" / "lab" / "run.sh"), lsm],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter() - start
        if line.startswith("lab: booting"):
            marks["qemu_start"] = now
        elif line.startswith("lab: guest ready"):
            marks["ready"] = now
        elif line.startswith("BENCH "):
            marks.update(json.loads(line[6:]))
    if proc.wait() != 0 or "first_ms" not in marks:
        raise SystemExit(f"lab_bench: the guest did not report (exit {proc.returncode})")
    marks["boot_s"] = marks["ready"] - marks["qemu_start"]
    return marks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--lsm", choices=("apparmor", "selinux"), default="apparmor")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        inside(args.lsm, args.runs)
        return
    m = outside(args.lsm, args.runs)
    flags = Path("/proc/cpuinfo").read_text().split()
    kvm = os.access("/dev/kvm", os.W_OK) and ("vmx" in flags or "svm" in flags)
    accel = "KVM" if kvm else "TCG"  # the same test as scripts/lab/run.sh
    print(f"| LSM | accel | boot to ready | first run (loads) | later runs (cached) "
          f"| same policy, no LSM |\n|---|---|---|---|---|---|\n"
          f"| {args.lsm} | {accel} | {m['boot_s']:.1f} s | {m['first_ms']:.0f} ms "
          f"| {m['cached_ms']:.0f} ms | {m['plain_ms']:.0f} ms |")


if __name__ == "__main__":
    main()
