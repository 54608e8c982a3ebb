#!/usr/bin/env python3
"""Start-to-exit latency of `/bin/true` under stockade (API and CLI) vs runc and bwrap,
on the same busybox rootfs, plus the run-time overhead of a syscall-heavy payload.

Run as root:  .venv/bin/python bench/run_bench.py [--rounds 30]
Prints a Markdown table (medians, ratios). Rounds are interleaved (one run of each
contender per round) so that background load affects every column alike.

The "full policy" is the `default` preset: all seven namespaces (user with an unused
id range, pid with the tiny init, mount with pivot_root, net with lo up, ipc, uts,
cgroup), a v1 cgroup with pids=1024, the Docker default capability set, no_new_privs,
Landlock, and the compiled Docker-default seccomp filter (loaded from the cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))


def make_rootfs(dest: Path) -> Path:
    # In a child process: importing the test helpers (pytest) here would make this
    # process, whose memory every fork copies, three times bigger than a lean caller.
    code = ("import os, sys; from pathlib import Path; from tests.conftest import "
            "make_busybox_rootfs as m; d = Path(sys.argv[1]); d.mkdir(parents=True); m(d); "
            "os.chmod(d, 0o755)")
    subprocess.run([sys.executable, "-c", code, str(dest)], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
    return dest


def remove_base(base: Path) -> None:
    """Undo a bench's scratch directory: lazily unmount anything left below, remove it."""
    subprocess.run(["umount", "-R", "-l", str(base)], stderr=subprocess.DEVNULL)
    shutil.rmtree(base, ignore_errors=True)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def runc_bundle(base: Path, rootfs: Path, args: list[str]) -> Path:
    bundle = base / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"] = {"path": str(rootfs), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def sh(cmd: list[str], env: dict[str, str] | None = None) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       env=env)
    return run


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dd-count", type=int, default=200_000)
    # Every contender here creates and leaves a network namespace (and cgroups) whose
    # teardown the kernel finishes asynchronously; without a pause, that work lands in
    # the next contender's time. Pausing (untimed) before each run measures each one alone.
    ap.add_argument("--settle", type=float, default=0.0, metavar="SECONDS",
                    help="untimed pause before each run (try 0.1 on a busy machine)")
    ap.add_argument("--heavy", action="store_true",
                    help="compile the policy in this process first (pydantic, libseccomp: "
                         "what a caller with a cold cache carries), then measure")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (runc, cgroups)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="stockade-bench-"))
    os.chmod(base, 0o755)
    cache = base / "cache"
    os.environ["STOCKADE_CACHE_DIR"] = str(cache)
    try:
        rootfs = make_rootfs(base / "rootfs")
        bundle = runc_bundle(base, rootfs, ["/bin/true"])
        import stockade

        env = {"PATH": "/bin"}
        cli_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        stockade_bin = str(REPO / ".venv" / "bin" / "stockade")
        cli = [stockade_bin, "run", "--policy", "default", "--rootfs", str(rootfs), "-e",
               "PATH=/bin", "--", "/bin/true"]
        if opts.heavy:
            from stockade.policy.loader import load_policy
            from stockade.seccomp.filter import compile_bpf

            compile_bpf(load_policy("default"))
        # The CLI compiles the policy into the cache; this process then loads it from
        # there (as a service does once the cache is warm).
        subprocess.run(cli, check=True, env=cli_env)  # warm the plan cache and .pyc files
        stockade.run(["/bin/true"], policy="default", rootfs=str(rootfs), env=env)  # warm
        counter = [0]

        def runc() -> None:
            counter[0] += 1
            subprocess.run(["runc", "run", "-b", str(bundle), f"stockade-bench-{os.getpid()}-"
                            f"{counter[0]}"], stdout=subprocess.DEVNULL, check=True)

        contenders: dict[str, Callable[[], None]] = {
            "stockade API (in-process)": lambda: stockade.run(
                ["/bin/true"], policy="default", rootfs=str(rootfs), env=env) and None,
            "stockade CLI": sh(cli, cli_env),
            "runc run": runc,
            "bwrap --unshare-all": sh(["bwrap", "--unshare-all", "--ro-bind", str(rootfs), "/",
                                       "--proc", "/proc", "--dev", "/dev", "/bin/true"]),
            "fork+exec /bin/true (floor)": sh([str(rootfs / "bin" / "true")]),
        }
        samples: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(opts.rounds):
            for name, fn in contenders.items():
                time.sleep(opts.settle)
                samples[name].append(timed(fn))
        med = {k: statistics.median(v) for k, v in samples.items()}
        runc_ms = med["runc run"]
        load = os.getloadavg()
        print(f"## /bin/true start-to-exit, {opts.rounds} interleaved rounds, settle "
              f"{opts.settle:g} s (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})\n")
        print(f"API caller: this process, RSS {rss_mb():.1f} MiB"
              + (" (policy compiled in-process first: --heavy)" if opts.heavy else
                 " (policy from the cache)") + "\n")
        print("| contender | median ms | p10 ms | p90 ms | vs runc |")
        print("|---|---:|---:|---:|---:|")
        for name, values in samples.items():
            q = statistics.quantiles(values, n=10)
            print(f"| {name} | {med[name]:.2f} | {q[0]:.2f} | {q[-1]:.2f} | "
                  f"{med[name] / runc_ms:.2f}x |")

        from stockade import entry_script

        fast = entry_script.is_installed(stockade_bin)
        print(f"\nstockade CLI = `{os.path.relpath(stockade_bin, REPO)}`: "
              + ("the fast entry script (`python -m stockade.entry_script`)" if fast else
                 "pip's console script (run `python -m stockade.entry_script` for the fast one)"))

        # Syscall-heavy payload: busybox dd doing 2 syscalls per byte.
        dd = ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={opts.dd_count}"]
        bare: list[float] = []
        boxed: list[float] = []
        for _ in range(max(5, opts.rounds // 3)):
            bare.append(timed(sh([str(rootfs / "bin" / "busybox"), *dd[0:0], "dd",
                                  *dd[1:]])))
            boxed.append(timed(lambda: stockade.run(dd, policy="default", rootfs=str(rootfs),
                                                    env=env) and None))
        b, s = statistics.median(bare), statistics.median(boxed)
        n = 2 * opts.dd_count
        print(f"\n## syscall-heavy payload: dd bs=1 count={opts.dd_count} (~{n} syscalls)\n")
        print("| run | median ms | per syscall |")
        print("|---|---:|---:|")
        print(f"| bare (fork+exec busybox dd) | {b:.1f} | {b * 1e6 / n:.0f} ns |")
        print(f"| under stockade (default policy) | {s:.1f} | {s * 1e6 / n:.0f} ns |")
        print(f"| overhead | {s - b:+.1f} | {(s - b) * 1e6 / n:+.0f} ns "
              f"(includes the ~{med['stockade API (in-process)']:.0f} ms start) |")
    finally:
        remove_base(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
