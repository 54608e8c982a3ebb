#!/usr/bin/env python3
"""OCI runtime latency: `create`+`start`+`delete` and `run` of /bin/true, stockade vs runc.

Run as root:  .venv/bin/python bench/oci_bench.py [--rounds 30]
Every runtime gets the same bundle (Debian's `runc spec` with busybox `true` as the
process, on a busybox rootfs) and their own --root. Each measurement is the wall time of
the CLI invocations, as an engine sees it (interpreter start included for stockade).
Rounds are interleaved (one of each contender per round) so background load affects
every column alike. Prints a Markdown table of medians, minimums and stockade/runc ratios.

The compiled front end (stockade-oci) runs create/run from the plan `stockade oci` stored
the first time it saw the bundle and config.json (oci/fastplan.py; the first two rounds
are warm-up and not counted). "a new config.json each time" is the other case, an engine
that writes one per container: no stored plan, the front end hands the call to Python.

`docker run --rm IMAGE true` end to end (docker CLI, dockerd, containerd, the shim, the
runtime) with `--runtime stockade` (the wrapper `stockade oci wrapper` writes) against
dockerd's default runc, in the same rounds, on a private dockerd
(tests/integration/engines/daemons.py); the row says why when dockerd cannot start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
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


def _new_config(how: Callable[[list[str], Path, Path, str], float]) -> Callable[
        [list[str], Path, Path, str], float]:
    """`how` on a config.json never seen before (as an engine writes one per container):
    no stored plan for the front end, which then hands create/run to Python."""
    def measure(base: list[str], root: Path, bundle: Path, cid: str) -> float:
        fresh = bundle.parent / f"{bundle.name}-{cid}-{len(base[0])}-{how.__name__}"
        fresh.mkdir()
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["process"]["env"].append(f"BENCH_ROUND={cid}")
        (fresh / "config.json").write_text(json.dumps(cfg))
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
    ref = statistics.median(times["runc"]) * 1e3
    rows = []
    for runtime, name in (("stockade", "stockade (--runtime stockade)"),
                          ("runc", "runc (dockerd's default)")):
        med = statistics.median(times[runtime]) * 1e3
        rows.append(f"| docker run --rm of /bin/true | {name} | {med:.1f} | "
                    f"{min(times[runtime]) * 1e3:.1f} | {med / ref:.2f}x |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--docker-rounds", type=int, default=10,
                    help="rounds of `docker run --rm` (each takes ~0.3-1 s)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="oci-bench-"))
    try:
        bundle = _bundle(base)
        runtimes = {"stockade oci (Python)": STOCKADE}
        if FRONTEND.exists():  # built by scripts/dev setup (python -m stockade.oci.frontend)
            runtimes["stockade-oci (front end)"] = [str(FRONTEND)]
        runtimes["runc"] = ["runc"]
        times: dict[tuple[str, str], list[float]] = {}
        for i in range(args.rounds + 2):
            for name, argv in runtimes.items():
                root = base / f"root-{len(name)}"
                for what, fn in MEASUREMENTS:
                    dt = fn(argv, root, bundle, f"b{i}")
                    if i >= 2:  # the first two rounds warm caches (pages, seccomp, pyc)
                        times.setdefault((what, name), []).append(dt)
        print(f"rounds: {args.rounds} (ms; the minimum shows the floor on a loaded host)\n")
        print("| measurement | runtime | median | min | median vs runc |")
        print("|---|---|---:|---:|---:|")
        for what, _ in MEASUREMENTS:
            r = statistics.median(times[(what, "runc")]) * 1e3
            for name in runtimes:
                med = statistics.median(times[(what, name)]) * 1e3
                low = min(times[(what, name)]) * 1e3
                print(f"| {what} | {name} | {med:.1f} | {low:.1f} | "
                      f"{med / r:.2f}x |")
        for row in docker_rows(base, args.docker_rounds):
            print(row)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
