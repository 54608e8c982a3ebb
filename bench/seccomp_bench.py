#!/usr/bin/env python3
"""Seccomp benchmark: stockade's `default` preset vs Docker's own profile compiled the way
runc does (libseccomp, binary tree, ENOSYS stub), all measured in the same run.

    .venv/bin/python bench/seccomp_bench.py [--iterations N] [--rounds R]

Prints BPF instruction counts per arch, compile times, and per-syscall cost in ns for a
syscall decided by number alone (getppid), an argument-checked one (personality query)
and a denied one (keyctl), against no filter.
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
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from stockade.linux.hostfacts import HostFacts  # noqa: E402
from stockade.policy.loader import load_policy  # noqa: E402
from stockade.seccomp import filter as sc  # noqa: E402
from stockade.seccomp.runc_build import compile_docker_profile  # noqa: E402

MOBY = HERE.parent / "tests" / "data" / "moby-default-seccomp.json"
ARCHES = ["x86_64", "aarch64", "riscv64", "ppc64le"]


def build_loop(tmp: Path) -> Path:
    exe = tmp / "seccomp_loop"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "seccomp_loop.c")], check=True)
    return exe


def timed(fn, rounds: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    moby = json.loads(MOBY.read_text())
    host = HostFacts.detect()
    policy = load_policy("default")

    print("## BPF instructions (default preset vs Docker's profile the runc way)\n")
    print("| arch | stockade | runc way | ratio |")
    print("|---|---:|---:|---:|")
    for arch in ARCHES:
        h = replace(host, arch=arch)
        p = replace(policy, syscalls=replace(policy.syscalls, arches=(arch,)), digest=policy.digest + arch)
        ours = sc.compile_filter(p, h).instructions
        ref = len(compile_docker_profile(moby, native=arch, kernel=h.kernel, arches=[arch])) // 8
        print(f"| {arch} | {ours} | {ref} | {ours / ref:.2f} |")

    def compile_ours() -> None:
        sc._CACHE.clear()
        sc.compile_filter(load_policy("default"), host)

    def compile_ours_cached_policy() -> None:
        sc._CACHE.clear()
        sc.compile_filter(policy, host)

    def compile_ref() -> None:
        compile_docker_profile(moby, native=host.arch, kernel=host.kernel, arches=[host.arch])

    r = args.rounds * 4
    t_full, t_comp, t_ref = timed(compile_ours, r), timed(compile_ours_cached_policy, r), timed(compile_ref, r)
    print("\n## Compile time (median ms)\n")
    print("| what | ms | vs runc way |")
    print("|---|---:|---:|")
    print(f"| stockade: load YAML + resolve + compile | {t_full:.1f} | {t_full / t_ref:.2f} |")
    print(f"| stockade: compile a loaded policy | {t_comp:.1f} | {t_comp / t_ref:.2f} |")
    print(f"| runc way: Docker JSON -> libseccomp -> BPF | {t_ref:.1f} | 1.00 |")

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build_loop(tmp)
        ours_path, ref_path = tmp / "ours.bpf", tmp / "ref.bpf"
        ours_path.write_bytes(sc.compile_filter(policy, host).program)
        ref_path.write_bytes(compile_docker_profile(moby, native=host.arch, kernel=host.kernel, arches=[host.arch]))
        results: dict[str, list[list[float]]] = {"none": [], "stockade": [], "runc way": []}
        for _ in range(args.rounds):  # interleave so machine noise hits all three alike
            for name, path in (("none", "-"), ("stockade", str(ours_path)), ("runc way", str(ref_path))):
                out = subprocess.run([str(exe), path, str(args.iterations)], capture_output=True, text=True,
                                     check=True, env={**os.environ})
                results[name].append([float(x) for x in out.stdout.split()])
    med = {k: [statistics.median(run[i] for run in v) for i in range(3)] for k, v in results.items()}
    print(f"\n## Per-syscall cost (median ns over {args.rounds} rounds of {args.iterations} calls)\n")
    print("| filter | getppid (by number) | personality (args) | keyctl (denied) |")
    print("|---|---:|---:|---:|")
    for name in ("none", "stockade", "runc way"):
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in med[name]) + " |")
    print("| **overhead stockade** | " + " | ".join(
        f"+{med['stockade'][i] - med['none'][i]:.1f}" for i in range(3)) + " |")
    print("| **overhead runc way** | " + " | ".join(
        f"+{med['runc way'][i] - med['none'][i]:.1f}" for i in range(3)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
