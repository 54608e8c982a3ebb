#!/usr/bin/env python3
"""Start-to-exit latency of `/bin/true` under stockade (API and CLI) vs runc and bwrap,
on the same busybox rootfs, at idle and under load, with where the CLI's time goes.

Run as root:  .venv/bin/python bench/run_bench.py [--rounds 30] [--load 0 --load 2]
Prints Markdown tables (medians, p10/p90, ratios against the peer of the issue's targets:
API vs `bwrap --unshare-all`, CLI vs `runc run`). Rounds are interleaved (one run of each
contender per round) so that background load affects every column alike; each --load
level (bench/benchlib.py: N busy processes at nice 0) gets its own rounds and tables.

The "full policy" is the `default` preset: all seven namespaces (user with an unused
id range, pid with the tiny init, mount with pivot_root, net with lo up, ipc, uts,
cgroup), a v1 cgroup with pids=1024, the Docker default capability set, no_new_privs,
Landlock, and the compiled Docker-default seccomp filter (loaded from the cache).

Breakdown of the CLI (same rounds): the interpreter started as the entry script starts it
(`python -IS -c pass`), then a probe process that does what `stockade run` does and
times each part from inside: the run path's imports, argument parsing, planning (the
policy part from the cache, the plan built: the first in that process) and the launch
(`stockade.run` with that plan: executor + kernel + the Python supervision, to the
payload's exit). Also the `-X importtime` self-time sum of the modules one `stockade run`
imports beyond the bare interpreter (inflated by the tracing itself: the probe's wall
time is the real figure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from bench.benchlib import (  # noqa: E402 - after the path set-up above
    ENTRY_PATHS,
    add_load_option,
    busy_load,
    importtime_ms,
    interleave,
    load_levels,
    load_line,
    median,
    table,
    timed_ms,
)


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


def sh(cmd: list[str], env: dict[str, str] | None = None) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       env=env)
    return run


PROBE = """
import os, sys, time
t0 = time.perf_counter()
sys.path[:0] = {paths!r}
import stockade.cli, stockade.cli.run
t1 = time.perf_counter()
args = stockade.cli.parse({argv!r})
t2 = time.perf_counter()
from stockade import api
cmd, kw = args.cmd[1:], dict(policy=args.policy, rootfs=args.rootfs, env={{"PATH": "/bin"}})
api.plan(cmd, **kw)
t3 = time.perf_counter()
api.run(cmd, forward_signals=True, **kw)
t4 = time.perf_counter()
print(*((b - a) * 1e3 for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4))))
sys.stdout.flush()
os._exit(0)
"""
STEPS = ("imports of the run path (stockade.cli, cli.run -> api -> runner)",
         "argument parsing (the run verb's fast reader; argparse when it declines)",
         "planning: policy part from the cache + plan, first in the process",
         "launch: executor + kernel + supervision, to the payload's exit")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dd-count", type=int, default=200_000,
                    help="syscall-heavy payload (0: skip it)")
    # Every contender here creates and leaves a network namespace (and cgroups) whose
    # teardown the kernel finishes asynchronously; without a pause, that work lands in
    # the next contender's time. Pausing (untimed) before each run measures each one alone.
    ap.add_argument("--settle", type=float, default=0.0, metavar="SECONDS",
                    help="untimed pause before each run (try 0.1 on a busy machine)")
    ap.add_argument("--heavy", action="store_true",
                    help="compile the policy in this process first (pydantic, libseccomp: "
                         "what a caller with a cold cache carries), then measure")
    add_load_option(ap)
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
        from stockade import api

        env = {"PATH": "/bin"}
        cli_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        stockade_bin = str(REPO / ".venv" / "bin" / "stockade")
        run_args = ["run", "--policy", "default", "--rootfs", str(rootfs), "-e", "PATH=/bin",
                    "--", "/bin/true"]
        cli = [stockade_bin, *run_args]
        if opts.heavy:
            from stockade.policy.loader import load_policy
            from stockade.seccomp.filter import compile_bpf

            compile_bpf(load_policy("default"))
        # The CLI compiles the policy into the cache; this process then loads it from
        # there (as a service does once the cache is warm).
        subprocess.run(cli, check=True, env=cli_env)  # warm the plan cache and .pyc files
        api.run(["/bin/true"], policy="default", rootfs=str(rootfs), env=env)  # warm
        counter = [0]

        def runc() -> None:
            counter[0] += 1
            subprocess.run(["runc", "run", "-b", str(bundle), f"stockade-bench-{os.getpid()}-"
                            f"{counter[0]}"], stdout=subprocess.DEVNULL, check=True)

        probe_code = PROBE.format(paths=ENTRY_PATHS, argv=run_args)
        steps: list[list[float]] = []

        def probe() -> float:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-IS", "-c", probe_code], env=cli_env,
                                 check=True, stdout=subprocess.PIPE, text=True).stdout
            wall = (time.perf_counter() - t0) * 1e3
            steps.append([float(x) for x in out.split()])
            return wall

        def api_run() -> None:
            api.run(["/bin/true"], policy="default", rootfs=str(rootfs), env=env)

        contenders: dict[str, Callable[[], float | None]] = {
            "stockade API (in-process)": api_run,
            "stockade CLI": sh(cli, cli_env),
            "runc run": runc,
            "bwrap --unshare-all": sh(["bwrap", "--unshare-all", "--ro-bind", str(rootfs), "/",
                                       "--proc", "/proc", "--dev", "/dev", "/bin/true"]),
            "fork+exec /bin/true (floor)": sh([str(rootfs / "bin" / "true")]),
            "python -IS -c pass (the entry script's interpreter)":
                sh([sys.executable, "-IS", "-c", "pass"]),
            "python -c pass": sh([sys.executable, "-c", "pass"]),
            "CLI probe (timed steps, below)": probe,
        }
        ratios = {"stockade API (in-process)": "bwrap --unshare-all",
                  "stockade CLI": "runc run"}
        for level in load_levels(opts.load):
            steps.clear()
            with busy_load(level):
                samples = interleave({k: _settled(fn, opts.settle) for k, fn in
                                      contenders.items()}, opts.rounds)
                imports, top = importtime_ms([sys.executable, "-IS", *cli],
                                             [sys.executable, "-IS", "-c", "pass"], cli_env)
                line = load_line(level)
            print(f"## /bin/true start-to-exit, {opts.rounds} interleaved rounds, settle "
                  f"{opts.settle:g} s, load {level}\n\n{line}\n")
            print(f"API caller: this process, RSS {rss_mb():.1f} MiB"
                  + (" (policy compiled in-process first: --heavy)" if opts.heavy else
                     " (policy from the cache)") + "\n")
            print("\n".join(table(samples, ratios)))
            interp = median(samples["python -IS -c pass (the entry script's interpreter)"])
            parts = [median([s[i] for s in steps]) for i in range(len(STEPS))]
            cli_ms = median(samples["stockade CLI"])
            print(f"\n### where the CLI's time goes (load {level}, medians)\n")
            print("| part | ms | share of the CLI median |")
            print("|---|---:|---:|")
            for name, ms in (("interpreter start (`python -IS -c pass`)", interp),
                             *zip(STEPS, parts, strict=True)):
                print(f"| {name} | {ms:.2f} | {ms / cli_ms:.0%} |")
            rest = cli_ms - interp - sum(parts)
            print(f"| rest (exit, the entry script, noise) | {rest:.2f} | {rest / cli_ms:.0%} |")
            print(f"\n`-X importtime` of one `stockade run`: {imports:.1f} ms of self time in "
                  "modules beyond the bare interpreter; the biggest: "
                  + ", ".join(f"{m} {ms:.1f}" for ms, m in top) + "\n")

        from stockade import entry_script

        fast = entry_script.is_installed(stockade_bin)
        print(f"stockade CLI = `{os.path.relpath(stockade_bin, REPO)}`: "
              + ("the fast entry script (`python -m stockade.entry_script`)" if fast else
                 "pip's console script (run `python -m stockade.entry_script` for the fast one)"))
        if opts.dd_count:
            dd_overhead(rootfs, env, opts)
    finally:
        remove_base(base)
    return 0


def _settled(fn: Callable[[], float | None], settle: float) -> Callable[[], float | None]:
    if not settle:
        return fn

    def run() -> float | None:
        time.sleep(settle)  # untimed: fn times itself below
        return timed_ms(fn)
    return run


def dd_overhead(rootfs: Path, env: dict[str, str], opts: argparse.Namespace) -> None:
    """Syscall-heavy payload: busybox dd doing 2 syscalls per byte, bare and boxed."""
    from stockade import api

    dd = ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={opts.dd_count}"]
    bare: list[float] = []
    boxed: list[float] = []
    for _ in range(max(5, opts.rounds // 3)):
        bare.append(timed_ms(sh([str(rootfs / "bin" / "busybox"), "dd", *dd[1:]])))
        boxed.append(timed_ms(lambda: api.run(dd, policy="default", rootfs=str(rootfs),
                                                   env=env)))
    b, s = median(bare), median(boxed)
    n = 2 * opts.dd_count
    print(f"\n## syscall-heavy payload: dd bs=1 count={opts.dd_count} (~{n} syscalls), idle\n")
    print("| run | median ms | per syscall |")
    print("|---|---:|---:|")
    print(f"| bare (fork+exec busybox dd) | {b:.1f} | {b * 1e6 / n:.0f} ns |")
    print(f"| under stockade (default policy) | {s:.1f} | {s * 1e6 / n:.0f} ns |")
    print(f"| overhead | {s - b:+.1f} | {(s - b) * 1e6 / n:+.0f} ns (includes the start) |")


if __name__ == "__main__":
    sys.exit(main())
