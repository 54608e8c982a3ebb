#!/usr/bin/env python3
"""Do the start-up shims still pay? Each one against the ordinary stdlib way, in the same run.

Run:  .venv/bin/python bench/shim_bench.py [--rounds 15]
Every sample is a fresh `python -IS` (what the fast `stockade` entry script runs) that
first imports the modules of the path in question, then times only the step under test;
rounds are interleaved (one sample of each variant per round), medians are reported.

- records: the runner's modules imported with `runner._record.frozen` vs with
  `dataclasses.dataclass(frozen=True, slots=True)` patched in (import of dataclasses
  included: nothing else on the `stockade run` path needs it).
- typing / contextlib / importlib: what importing the module adds on top of the other
  stdlib modules the `stockade run` path loads (the cost of `from typing import
  TYPE_CHECKING`, `contextlib.suppress` or `importlib.import_module` there).
- json: the private-scanner reader that oci/jsonfast.py was vs `json.loads`, import
  included, on one engine config of tests/data/engines per sample (round i reads the
  i-th), alone and after the `stockade oci create` path's own imports (one config.json
  per process, as a create). It paid only while that path imported no json otherwise.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
CONFIGS = sorted(glob.glob(str(REPO / "tests/data/engines/*/*.json")))

# The modules `stockade run` imports before it starts the sandbox (and the API's).
RUN_PATH = ("stockade.api", "stockade.runner.prepare", "stockade.runner.preflight",
            "stockade.runner.launcher")
# The modules `stockade oci create` imports before it reads config.json.
CREATE_PATH = ("stockade.oci.config", "stockade.oci.lifecycle", "stockade.oci.state",
               "stockade.oci.translate", "stockade.oci.fastplan")

PRELUDE = f"""
import sys, time
sys.path.insert(0, {str(SRC)!r})
def ms(t0): return (time.perf_counter() - t0) * 1000
"""

VARIANTS: dict[str, str] = {
    "records: runner._record.frozen": f"""
t0 = time.perf_counter()
for m in {RUN_PATH!r}: __import__(m)
print(ms(t0))
""",
    "records: dataclass(frozen, slots)": f"""
t0 = time.perf_counter()
import dataclasses
import stockade.runner._record as r
r.frozen = dataclasses.dataclass(frozen=True, slots=True)
for m in {RUN_PATH!r}: __import__(m)
print(ms(t0))
""",
}

# What importing one stdlib module adds on top of the other stdlib modules the run path
# loads (the module under test left out, so that this works whether it is used or not).
ADDED_IMPORT = """
for m in {others!r}: __import__(m)
t0 = time.perf_counter()
import {module}
print(ms(t0))
"""


def run_path_stdlib() -> list[str]:
    code = (f"for m in {RUN_PATH!r}: __import__(m)\n"
            "print(' '.join(sorted(m for m in sys.modules if not m.startswith('stockade'))))")
    out = subprocess.run([sys.executable, "-IS", "-c", PRELUDE + code], cwd="/",
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def added_import_variants() -> dict[str, str]:
    loaded = run_path_stdlib()
    out = {}
    for module in ("typing", "contextlib", "importlib"):
        others = [m for m in loaded if m != module and not m.startswith(module + ".")]
        out[f"{module} on the run path"] = ADDED_IMPORT.format(others=others, module=module)
    return out

JSON_VARIANT = """
{imports}
with open({paths!r}[int(sys.argv[1]) % {n}]) as fh: text = fh.read()
t0 = time.perf_counter()
{load}
loads(text)
print(ms(t0))
"""
# What oci/jsonfast.py was (removed: the create path imports json anyway): CPython's C
# scanner without the json package, falling back to json.loads on anything unusual.
JSONFAST = """
from _json import make_scanner
class _Context:
    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    parse_constant = None
def loads(text):
    value, end = make_scanner(_Context())(text, len(text) - len(text.lstrip()))
    if text[end:].strip():
        import json
        return json.loads(text)
    return value
"""
JSON = "from json import loads"


def json_variants() -> dict[str, str]:
    out = {}
    for where, imports in (("alone", ""),
                           ("after the create path's imports",
                            f"for m in {CREATE_PATH!r}: __import__(m)")):
        for name, load in (("private _json scanner", JSONFAST), ("json.loads", JSON)):
            out[f"json {where}: {name}"] = JSON_VARIANT.format(
                imports=imports, load=load, paths=CONFIGS, n=len(CONFIGS))
    return out


def sample(code: str, index: int = 0) -> float:
    out = subprocess.run([sys.executable, "-IS", "-c", PRELUDE + code, str(index)], cwd="/",
                         capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    if out.returncode != 0:
        raise SystemExit(f"a bench variant failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    opts = ap.parse_args()
    variants = {**VARIANTS, **added_import_variants(), **json_variants()}
    for code in variants.values():
        sample(code)  # warm the .pyc files
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(opts.rounds):  # round i reads engine config i (mod their number)
        for name, code in variants.items():
            samples[name].append(sample(code, i))
    med = {k: statistics.median(v) for k, v in samples.items()}
    load = os.getloadavg()
    print(f"## start-up shims vs the stdlib, {opts.rounds} interleaved rounds of fresh "
          f"`python -IS` (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})\n")
    print("| step | median ms | p10 ms | p90 ms |")
    print("|---|---:|---:|---:|")
    for name, values in samples.items():
        q = statistics.quantiles(values, n=10)
        print(f"| {name} | {med[name]:.2f} | {q[0]:.2f} | {q[-1]:.2f} |")
    rec = med["records: dataclass(frozen, slots)"] / med["records: runner._record.frozen"]
    print(f"\nrecords: dataclasses take {rec:.2f}x the shim's import time "
          f"(+{med['records: dataclass(frozen, slots)'] - med['records: runner._record.frozen']:.1f} ms)")
    check = f"for m in {CREATE_PATH!r}: __import__(m)\nprint(int('json' in sys.modules))"
    print(f"the create path imports json before config.json is read: "
          f"{bool(sample(check))}")
    for where in ("alone", "after the create path's imports"):
        fast = med[f"json {where}: private _json scanner"]
        slow = med[f"json {where}: json.loads"]
        print(f"json {where} (import + one load of an engine config, as a create does): "
              f"scanner {fast:.2f} ms, json {slow:.2f} ms ({fast / slow:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
