"""Benchmark `stockade audit`: one container, 20 containers (--all), and --self.

Root only. Starts a private dockerd (like the test fixture), 20 busybox containers with
Docker's defaults, measures medians, removes everything, prints a Markdown table and, with
--write, replaces the `## audit` section of bench/RESULTS.md.

    sudo .venv/bin/python bench/audit_bench.py --runs 7 --write
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
sys.path.insert(0, str(REPO))

from tests.conftest import _start_dockerd, make_busybox_rootfs  # noqa: E402
from tests.integration.audit.conftest import SELF_CMD, SELF_ENV, python_binds  # noqa: E402

from stockade.audit import engine, targets  # noqa: E402
from stockade.audit.docker_api import DockerClient  # noqa: E402
from stockade.linux.hostfacts import HostFacts  # noqa: E402


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="stockade-dockerd-", dir="/tmp"))
    rootfs = make_busybox_rootfs(Path(tempfile.mkdtemp(prefix="stockade-bench-root-")))
    proc, daemon = _start_dockerd(base, rootfs)
    env = {**os.environ, "DOCKER_HOST": daemon.host}
    names = [f"stockade-bench-{i}" for i in range(opts.containers)]
    rows: list[tuple[str, str, str]] = []
    try:
        binds = [a for s, d in python_binds() for a in ("-v", f"{s}:{d}:ro")]
        for n in names:
            daemon.docker("run", "-d", "--name", n, *binds, daemon.image, "sleep", "3600")
        host = HostFacts.detect(runtimes=True)
        client = DockerClient(daemon.socket)
        one = targets.from_docker(names[0], client)
        rows.append(("1 container, in-process (view + probes + 53 checks)",
                     f"{median_ms(lambda: engine.audit(one, host), opts.runs * 4):.1f} ms", "engine.audit"))
        cli = [sys.executable, "-m", "stockade", "audit", "--format", "json"]
        rows.append(("1 container, CLI wall time (interpreter start included)",
                     f"{median_ms(lambda: subprocess.run([*cli, '--docker', names[0]], env=env, capture_output=True), opts.runs):.0f} ms",
                     "`stockade audit --docker NAME`"))
        everyone = [targets.from_docker(n, client) for n in names]
        rows.append((f"{len(names)} containers, in-process, 8 workers",
                     f"{median_ms(lambda: engine.audit_many(everyone, host), opts.runs):.0f} ms", "engine.audit_many"))
        rows.append((f"{len(names)} containers, CLI `--all` wall time",
                     f"{median_ms(lambda: subprocess.run([*cli, '--all', '--progress', 'never'], env=env, capture_output=True), opts.runs):.0f} ms",
                     "`stockade audit --all`"))
        exec_env = [a for k, v in SELF_ENV.items() for a in ("-e", f"{k}={v}")]
        inner: list[float] = []

        def self_run() -> None:
            out = daemon.docker("exec", *exec_env, names[1], *SELF_CMD, check=False).stdout
            inner.append(json.loads(out)["audits"][0]["duration_s"] * 1000)
        wall = median_ms(self_run, opts.runs)
        rows.append(("--self inside a container: the audit itself", f"{statistics.median(inner):.1f} ms",
                     "duration_s in the report"))
        rows.append(("--self via `docker exec` wall time", f"{wall:.0f} ms",
                     "docker exec + Python start + audit"))
        found = engine.audit(one, host)
        rows.append(("open findings on each default container (host view)",
                     ", ".join(f"{f.id} ({f.status.value})" for f in found.findings if f.status.is_open),
                     "what stockade reports"))
        rows.append(("--self, open findings agree with the host view",
                     str(_agree(daemon, names[1], exec_env, env)), "same IDs and statuses"))
    finally:
        daemon.docker("rm", "-f", *names, check=False, timeout=120)
        proc.terminate()
        proc.wait(timeout=30)
        for sub in ("exec/netns/default",):
            subprocess.run(["umount", "-l", str(base / sub)], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "data")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(rootfs, ignore_errors=True)
    table = ["| measurement | median | how |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    text = "\n".join(table)
    print(text)
    if opts.write:
        _write_section(text, opts.runs, len(names))
    return 0


def _agree(daemon: object, name: str, exec_env: list[str], env: dict[str, str]) -> bool:
    from tests.integration.audit._helpers import HOST_ONLY
    inside = json.loads(daemon.docker("exec", *exec_env, name, *SELF_CMD, check=False).stdout)  # type: ignore[attr-defined]
    host = json.loads(subprocess.run([sys.executable, "-m", "stockade", "audit", "--format", "json",
                                      "--docker", name], env=env, capture_output=True, text=True).stdout)

    def opened(doc: dict[str, object]) -> dict[str, str]:
        return {f["id"]: f["status"] for f in doc["audits"][0]["findings"]  # type: ignore[index]
                if f["status"] in ("exploitable", "present") and f["id"] not in HOST_ONLY}
    return opened(inside) == opened(host)


ANCHORS = """
Anchors: deepce, amicontained, CDK, BOtB, docker-bench-security and linPEAS are not
published on PyPI, npm or Debian (checked with the package lists and `apt-cache search`),
the only registries this machine reaches, so no side-by-side run could be fetched; their
numbers and findings are left out rather than guessed.
"""


def _write_section(table: str, runs: int, n: int) -> None:
    path = REPO / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    stamp = time.strftime("%Y-%m-%d")
    section = (f"## audit\n\n`sudo .venv/bin/python bench/audit_bench.py --runs {runs} --write` ({stamp}, "
               f"{n} busybox containers with Docker's defaults on a private dockerd, vfs driver; other "
               "work was running on the 2 cores, so treat absolute numbers as noisy).\n\n"
               f"{table}\n{ANCHORS}")
    start = text.find("\n## audit\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + section + (text[end:] if end != -1 else "")
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
