"""What run_bench.py and oci_bench.py share: interleaved rounds, a background load of
busy processes, medians with ratios against a peer measured in the same rounds, and
the `-X importtime` sum of a command's imports.

Load: `--load N` (repeatable; default 0 and 2) runs every round set once per N, with N
CPU-bound processes (`while True: pass`, at nice 0) running for its duration and stopped
afterwards. Nothing on the host is tuned or changed (no governor, no affinity, no sysctl).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

# Where the CLI's entry script finds stockade (`python -IS`: no site, so the same paths
# it lists): the probes run in an interpreter started the same way.
ENTRY_PATHS = [p for p in sys.path if p.endswith(("site-packages", "/src"))]


def add_load_option(ap: object) -> None:
    ap.add_argument("--load", type=int, action="append", metavar="N",  # type: ignore[attr-defined]
                    help="busy processes running during the rounds (repeatable; default: "
                         "--load 0 --load 2, the idle and the loaded figures)")


def load_levels(given: list[int] | None) -> list[int]:
    return given if given else [0, 2]


def _nice_zero() -> None:
    os.setpriority(os.PRIO_PROCESS, 0, 0)  # this busy process only, whatever the bench's


@contextmanager
def busy_load(n: int) -> Iterator[None]:
    """`n` CPU-bound processes at nice 0 for the duration of the block, then stopped."""
    procs = [subprocess.Popen([sys.executable, "-S", "-c", "while True: pass"],
                              preexec_fn=_nice_zero, stdin=subprocess.DEVNULL)
             for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)  # let them reach the run queue
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def timed_ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def interleave(contenders: dict[str, Callable[[], float | None]], rounds: int,
               warmup: int = 1) -> dict[str, list[float]]:
    """One call of each contender per round, in turn, so that load changes hit every
    contender alike. A contender returns its own ms, or None to be timed from outside."""
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    for i in range(warmup + rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            own = fn()
            ms = own if own is not None else (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                samples[name].append(ms)
    return samples


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load_line(n: int) -> str:
    avg = os.getloadavg()
    return (f"background: {n} busy process{'es' if n != 1 else ''} at nice 0; load average "
            f"{avg[0]:.2f} {avg[1]:.2f} {avg[2]:.2f} at the end")


def table(samples: dict[str, list[float]], ratios: dict[str, str]) -> list[str]:
    """Markdown rows: median, p10, p90 (ms), and median / the peer's median for each
    contender named in `ratios` (contender -> peer, both from the same rounds)."""
    rows = ["| contender | median ms | p10 ms | p90 ms | vs peer |", "|---|---:|---:|---:|---|"]
    for name, values in samples.items():
        q = (statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1
             else [values[0]] * 9)
        peer = ratios.get(name)
        vs = f"{median(values) / median(samples[peer]):.2f}x {peer}" if peer else ""
        rows.append(f"| {name} | {median(values):.2f} | {q[0]:.2f} | {q[-1]:.2f} | {vs} |")
    return rows


def importtime_ms(argv: list[str], baseline: list[str], env: dict[str, str] | None = None
                  ) -> tuple[float, list[tuple[float, str]]]:
    """The `-X importtime` self-time sum (ms) of the modules `argv` imports beyond what
    `baseline` (the bare interpreter, started the same way) imports, and the five
    biggest. argv[0] must be a Python interpreter; -X importtime is inserted after it."""
    def modules(cmd: list[str]) -> dict[str, float]:
        out = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        found: dict[str, float] = {}
        for line in out.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                self_us, _, name = line[len("import time:"):].split("|")
                if self_us.strip().isdigit():
                    found[name.strip()] = int(self_us) / 1e3
        return found

    base = modules(baseline)
    extra = {m: ms for m, ms in modules(argv).items() if m not in base}
    top = sorted(((ms, m) for m, ms in extra.items()), reverse=True)[:5]
    return sum(extra.values()), top
