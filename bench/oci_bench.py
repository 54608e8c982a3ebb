#!/usr/bin/env python3
"""OCI runtime latency: `create`+`start`+`delete` and `run` of /bin/true, stockade vs runc.

Run as root:  .venv/bin/python bench/oci_bench.py [--rounds 30]
Every runtime gets the same bundle (Debian's `runc spec` with busybox `true` as the
process, on a busybox rootfs) and their own --root. Each measurement is the wall time of
the CLI invocations, as an engine sees it (interpreter start included for stockade).
Rounds are interleaved (one of each contender per round) so background load affects
every column alike; each --load level (bench/benchlib.py: N busy processes at nice 0,
default 0 and 2) gets its own rounds and tables. Prints Markdown tables of medians,
minimums and stockade/runc ratios (runc measured in the same rounds).

The compiled front end (stockade-oci) runs create/run from the plan `stockade oci` stored
the first time it saw the bundle and config.json (oci/fastplan.py; the first two rounds
are warm-up and not counted). "a new config.json each time" is the other case, an engine
that writes one per container: no stored plan, the front end hands the call to Python.

Where that case's time goes (same rounds): the C part is the front end's lifecycle with a
stored plan; the rest is Python's, split by a probe process that does what `stockade oci
create` does for the front end and times it from inside (imports and argument parsing,
reading and translating the config.json, the build stamp, storing the plan), plus the
interpreter's start (`python -IS -c pass`); what is left is the front end's first call
(which found no plan) and its exec again.

`docker run --rm IMAGE true` end to end (docker CLI, dockerd, containerd, the shim, the
runtime) with `--runtime stockade` (the wrapper `stockade oci wrapper` writes) against
dockerd's default runc, in the same rounds, on a private dockerd
(tests/integration/engines/daemons.py); the row says why when dockerd cannot start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.benchlib import (  # noqa: E402 - after the path set-up above
    ENTRY_PATHS,
    add_load_option,
    busy_load,
    interleave,
    load_levels,
    load_line,
    median,
)

STOCKADE = [str(Path(sys.executable).with_name("stockade")), "oci"]
FRONTEND = Path(sys.executable).with_name("stockade-oci")


def _bundle(base: Path) -> Path:
    from tests.conftest import make_busybox_rootfs

    rootfs = base / "rootfs"
    rootfs.mkdir()
    make_busybox_rootfs(rootfs)
    bundle = base / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    cfg["root"] = {"path": str(rootfs), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def _call(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def lifecycle(base: list[str], root: Path, bundle: Path, cid: str) -> float:
    t = time.perf_counter()
    _call([*base, "--root", str(root), "create", "--bundle", str(bundle), cid])
    _call([*base, "--root", str(root), "start", cid])
    _call([*base, "--root", str(root), "delete", "--force", cid])
    return time.perf_counter() - t


def run(base: list[str], root: Path, bundle: Path, cid: str) -> float:
    t = time.perf_counter()
    _call([*base, "--root", str(root), "run", "--bundle", str(bundle), cid])
    return time.perf_counter() - t


def fresh_bundle(bundle: Path, tag: str) -> Path:
    """A copy of config.json never seen before (as an engine writes one per container)."""
    fresh = bundle.parent / f"{bundle.name}-{tag}"
    fresh.mkdir()
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["env"].append(f"BENCH_ROUND={tag}")
    (fresh / "config.json").write_text(json.dumps(cfg))
    return fresh


def _new_config(how: Callable[[list[str], Path, Path, str], float]) -> Callable[
        [list[str], Path, Path, str], float]:
    """`how` on a config.json never seen before (as an engine writes one per container):
    no stored plan for the front end, which then hands create/run to Python."""
    def measure(base: list[str], root: Path, bundle: Path, cid: str) -> float:
        fresh = fresh_bundle(bundle, f"{cid}-{len(base[0])}-{how.__name__}")
        try:
            return how(base, root, fresh, cid)
        finally:
            shutil.rmtree(fresh)
    return measure


MEASUREMENTS = (("create+start+delete of /bin/true", lifecycle), ("run of /bin/true", run),
                ("create+start+delete, a new config.json each time", _new_config(lifecycle)),
                ("run of /bin/true, a new config.json each time", _new_config(run)))


def docker_rows(base: Path, rounds: int) -> list[str]:
    """`docker run --rm` of /bin/true, stockade vs runc, interleaved rounds."""
    from tests.integration.engines.daemons import IMAGE, EngineUnavailable, dockerd

    wrapper = base / "stockade-runtime"
    subprocess.run([*STOCKADE, "wrapper", str(wrapper)], check=True)
    rootfs = base / "docker-rootfs"
    if not rootfs.exists():  # made once, for the first --load level
        rootfs.mkdir()
        from tests.conftest import make_busybox_rootfs

        make_busybox_rootfs(rootfs)
    times: dict[str, list[float]] = {"stockade": [], "runc": []}
    try:
        with dockerd(rootfs, {"stockade": str(wrapper)}) as docker:
            for i in range(rounds + 2):
                for runtime in times:
                    t = time.perf_counter()
                    r = docker("run", "--rm", "--runtime", runtime, IMAGE, "true")
                    dt = time.perf_counter() - t
                    if r.returncode != 0:
                        return [f"| docker run --rm | {runtime} | failed: "
                                f"{r.stderr.strip()[:200]} | | |"]
                    if i >= 2:
                        times[runtime].append(dt)
    except EngineUnavailable as exc:
        return [f"| docker run --rm | skipped: {exc} | | | |"]
    ref = median(times["runc"]) * 1e3
    rows = []
    for runtime, name in (("stockade", "stockade (--runtime stockade)"),
                          ("runc", "runc (dockerd's default)")):
        med = median(times[runtime]) * 1e3
        rows.append(f"| docker run --rm of /bin/true | {name} | {med:.1f} | "
                    f"{min(times[runtime]) * 1e3:.1f} | {med / ref:.2f}x |")
    return rows


def front_end(base: Path) -> tuple[str | None, str]:
    """A front end built from the sources as they are now (so that its build stamp
    matches and it runs stored plans), else the installed one; and a line saying which."""
    sys.path.insert(0, str(REPO / "src"))
    from stockade.oci import fastplan, frontend

    try:
        return frontend.build(str(base / "stockade-oci"), cli=STOCKADE[0]), (
            "front end: built from the current sources for this run")
    except (OSError, RuntimeError) as exc:
        why = str(exc).strip().splitlines()[-1][:160]
    if not FRONTEND.exists():
        return None, f"front end: none (cannot build: {why})"
    if frontend.built_stamp(str(FRONTEND)) != fastplan.stamp():
        return str(FRONTEND), ("front end: the installed one, **built from other sources "
                               "(stamp mismatch): it stores and runs no plan, every call "
                               f"goes to Python** (cannot build: {why})")
    return str(FRONTEND), "front end: the installed one (its stamp matches the sources)"


PROBE = """
import os, sys, time
t0 = time.perf_counter()
sys.path[:0] = {paths!r}
import stockade.cli, stockade.cli.oci
args = stockade.cli.parse(["oci", "--root", {root!r}, "create", "--bundle", {bundle!r}, "p1"])
from stockade.linux.host import cap_last_cap
from stockade.oci import config
from stockade.oci.translate import translate
t1 = time.perf_counter()
c = translate(config.load(args.bundle), args.bundle, args.id, last_cap=cap_last_cap(),
              home=False)
t2 = time.perf_counter()
t3 = t4 = float("nan")
try:  # what `stockade oci create` does next for the front end (oci/fastplan.py)
    from stockade.oci import fastplan
    os.environ["STOCKADE_FAST_STAMP"] = fastplan.stamp()
    t3 = time.perf_counter()
    os.environ["STOCKADE_FAST_KEY"] = os.urandom(8).hex()
    outcome = fastplan.offer(args.root, c, config.load(args.bundle), cap_last_cap())
    t4 = time.perf_counter() if outcome.startswith("stored") else float("nan")
except Exception as exc:
    print(f"probe: {{exc!r}}", file=sys.stderr)
print((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3)
sys.stdout.flush()
os._exit(0)
"""
NEW_LIFECYCLE = "create+start+delete, a new config.json each time"
NEW_RUN = "run of /bin/true, a new config.json each time"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--docker-rounds", type=int, default=10,
                    help="rounds of `docker run --rm` (each takes ~0.3-1 s; 0: skip)")
    add_load_option(ap)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="oci-bench-"))
    try:
        bundle = _bundle(base)
        runtimes = {"stockade oci (Python)": STOCKADE}
        front, note = front_end(base)
        print(note + "\n")
        if front is not None:
            runtimes["stockade-oci (front end)"] = [front]
        runtimes["runc"] = ["runc"]
        counter = [0]

        def contender(fn: Callable[[list[str], Path, Path, str], float], argv: list[str],
                      root: Path) -> Callable[[], float]:
            def measure() -> float:
                counter[0] += 1
                return fn(argv, root, bundle, f"b{counter[0]}") * 1e3
            return measure

        steps: list[list[float]] = []

        def probe() -> float:
            counter[0] += 1
            fresh = fresh_bundle(bundle, f"probe{counter[0]}")
            code = PROBE.format(paths=ENTRY_PATHS, root=str(base / "probe-root"),
                                bundle=str(fresh))
            try:
                t = time.perf_counter()
                out = subprocess.run([sys.executable, "-IS", "-c", code], text=True,
                                     capture_output=True)
                wall = (time.perf_counter() - t) * 1e3
            finally:
                shutil.rmtree(fresh)
            if out.returncode == 0:
                steps.append([float(x) for x in out.stdout.split()])
            else:
                print(f"oci probe failed: {out.stderr.strip()[-300:]}", file=sys.stderr)
            return wall

        contenders: dict[str, Callable[[], float | None]] = {}
        for name, argv in runtimes.items():
            root = base / f"root-{len(name)}"
            for what, fn in MEASUREMENTS:
                contenders[f"{what} | {name}"] = contender(fn, argv, root)
        contenders["python -IS -c pass"] = lambda: _call(
            [sys.executable, "-IS", "-c", "pass"])
        contenders["create probe (timed steps, below)"] = probe
        for level in load_levels(args.load):
            steps.clear()
            with busy_load(level):
                # the first two rounds warm caches (pages, seccomp, pyc, stored plans)
                samples = interleave(contenders, args.rounds, warmup=2)
                docker = docker_rows(base, args.docker_rounds) if args.docker_rounds else []
                line = load_line(level)
            report(args.rounds, level, line, runtimes, samples, steps, docker)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def report(rounds: int, level: int, line: str, runtimes: dict[str, list[str]],
           samples: dict[str, list[float]], steps: list[list[float]],
           docker: list[str]) -> None:
    print(f"## OCI runtimes, {rounds} interleaved rounds, load {level}\n\n{line}\n")
    print("| measurement | runtime | median | min | median vs runc |")
    print("|---|---|---:|---:|---:|")
    for what, _ in MEASUREMENTS:
        ref = median(samples[f"{what} | runc"])
        for name in runtimes:
            values = samples[f"{what} | {name}"]
            print(f"| {what} | {name} | {median(values):.1f} | {min(values):.1f} | "
                  f"{median(values) / ref:.2f}x |")
    for row in docker:
        print(row)
    front = "stockade-oci (front end)"
    if front not in runtimes:
        return
    print(f"\n### where a new config.json's create+start+delete goes (load {level}, "
          "front end, medians, ms)\n")
    new = median(samples[f"{NEW_LIFECYCLE} | {front}"])
    stored = median(samples[f"create+start+delete of /bin/true | {front}"])
    interp = median(samples["python -IS -c pass"])
    imports = median([s[0] for s in steps]) if steps else float("nan")
    translation = median([s[1] for s in steps]) if steps else float("nan")
    stamp = median([s[2] for s in steps]) if steps else float("nan")
    offer = median([s[3] for s in steps]) if steps else float("nan")
    rest = new - stored - interp - imports - translation - stamp - offer
    print("| part | ms | share |")
    print("|---|---:|---:|")
    for part, ms in (
            ("C: front end + executor + kernel (the lifecycle with a stored plan)", stored),
            ("interpreter start (`python -IS -c pass`)", interp),
            ("imports + argument parsing (the create path up to translate)", imports),
            ("translation: config.json read and translated to a plan", translation),
            ("build stamp (fastplan: a checkout stats every package file; an installed "
             "package reads BUILD_STAMP)", stamp),
            ("plan stored for the front end (fastplan.offer: its imports, the plan "
             "document, the write)", offer),
            ("rest: the front end's first call, its exec again, noise", rest)):
        print(f"| {part} | {ms:.1f} | {ms / new:.0%} |")
    print(f"| total (measured) | {new:.1f} | vs runc "
          f"{new / median(samples[f'{NEW_LIFECYCLE} | runc']):.2f}x |\n")


if __name__ == "__main__":
    raise SystemExit(main())
