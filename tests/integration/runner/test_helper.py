"""Launch helpers (runner.helper): big or multi-threaded callers start sandboxes from a
lean helper process. Same results, same errors, same stdio as the in-process path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.api import plan as make_plan
from stockade.api import run
from stockade.errors import RunnerError
from stockade.runner import helper, launcher
from tests.conftest import REPO, require_root

pytestmark = pytest.mark.root
ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture
def helper_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    require_root()
    monkeypatch.setenv("STOCKADE_LAUNCHER", "helper")
    yield
    helper.shutdown()  # and reaped: later tests count this process's zombies
    assert not helper._POOL.idle and helper._POOL.spawner is None
    deadline = time.monotonic() + 5
    while launcher._threads() > 1:  # the spawner thread ended: in-process runs stay direct
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _helper_leftovers(pids: set[int]) -> list[str]:
    """cgroup directories named after a helper's runs (ids start with the runner's pid)."""
    found = []
    for base in Path("/sys/fs/cgroup").rglob("stockade"):
        for d in base.iterdir():
            if d.is_dir() and d.name.split("-", 1)[0] in {str(p) for p in pids}:
                found.append(str(d))
    return found


def test_same_result_stdio_and_errors(helper_mode: None, capfd: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    res = run(["/bin/sh", "-c", "echo out; echo err >&2; grep -E '^(NoNewPrivs|Seccomp):' "
               "/proc/self/status; exit 3"], policy="default", env=ENV)
    assert res.exit_code == 3 and res.cgroup in ("v1", "v2") and res.pids_peak
    out, err = capfd.readouterr()
    assert out.split("\n")[0] == "out" and "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out
    assert err == "err\n"
    pids = {h.pid for h in helper._POOL.idle}
    assert pids and os.getpid() not in pids
    assert res.run_id.split("-")[0] in {str(p) for p in pids}  # it ran in the helper
    with pytest.raises(RunnerError) as exc:
        run(["no-such-command-xyz"], policy="default", env=ENV)
    assert exc.value.step == "exec" and exc.value.exit_code == 127
    # a set-up step that fails in the helper's sandbox (a mountpoint missing in the
    # read-only host root) comes back as that step's error
    with pytest.raises(RunnerError) as exc:
        run(["/bin/true"], policy="default", env=ENV, rootfs="/",
            binds=[f"{tmp_path}:/no/such/dir"])
    assert exc.value.step == "rootfs"
    assert {h.pid for h in helper._POOL.idle} == pids  # reused, still serving
    assert not _helper_leftovers(pids)


def test_a_dead_helper_is_replaced(helper_mode: None) -> None:
    assert run(["/bin/true"], policy="default", env=ENV).exit_code == 0
    idle = list(helper._POOL.idle)
    old = {h.pid for h in idle}
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    # SIGKILL is delivered asynchronously: wait until they are dead (a helper dying while
    # a run is on it is another case, reported as such)
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}/stat") and
              Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
              for pid in old):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert run(["/bin/true"], policy="default", env=ENV).exit_code == 0
    new = {h.pid for h in helper._POOL.idle}
    assert new and not new & old


def test_concurrent_runs_from_threads(helper_mode: None) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(run(["/bin/sh", "-c", "sleep 0.3; exit 5"], policy="default",
                               env=ENV).exit_code)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and results == [5, 5, 5]
    assert len(helper._POOL.idle) >= 2  # one helper per concurrent run, kept for reuse
    # Started for threads that have ended, yet alive: the spawner thread started them.
    pids = {h.pid for h in helper._POOL.idle}
    assert all(h.alive() for h in helper._POOL.idle)
    res = run(["/bin/true"], policy="default", env=ENV)
    assert res.run_id.split("-")[0] in {str(p) for p in pids}
    assert not _helper_leftovers(pids)


def test_the_sandbox_dies_with_its_caller(tmp_path: Path) -> None:
    """SIGKILL the caller mid-run: its helper and the sandbox go too (PDEATHSIG chain)."""
    require_root()
    code = (
        "import sys\n"
        "from stockade.api import run\n"
        "from stockade.runner import helper\n"
        "run(['/bin/true'], policy='default', env={'PATH': '/bin'})\n"
        "print(' '.join(str(h.pid) for h in helper._POOL.idle), flush=True)\n"
        "run(['/bin/sleep', '31.4159'], policy='default', env={'PATH': '/bin'})\n"
    )
    env = dict(os.environ, STOCKADE_LAUNCHER="helper", PYTHONPATH=str(REPO / "src"))
    caller = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert caller.stdout is not None
        helper_pid = int(caller.stdout.readline().split()[0])
        deadline = time.monotonic() + 10
        while not _sleepers():
            assert time.monotonic() < deadline, "the payload never started"
            time.sleep(0.02)
    finally:
        caller.kill()
        caller.wait()
    deadline = time.monotonic() + 5
    while _sleepers() or Path(f"/proc/{helper_pid}").exists():
        assert time.monotonic() < deadline, "the helper or its sandbox outlived the caller"
        time.sleep(0.02)
    # A SIGKILLed runner cannot remove its cgroup (a later run sweeps it after 60 s, as
    # for the in-process path); this test removes it now: empty, since the sandbox died.
    for d in _helper_leftovers({helper_pid}):
        os.rmdir(d)


def _sleepers() -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            # the payload itself (the caller's own command line names it too)
            if d.name.isdigit() and (d / "cmdline").read_bytes() == b"/bin/sleep\x0031.4159\x00":
                found.append(d.name)
        except OSError:
            continue
    return found


def test_route(monkeypatch: pytest.MonkeyPatch) -> None:
    p = make_plan(["/bin/true"], policy="default", env=ENV)
    monkeypatch.setenv("STOCKADE_LAUNCHER", "in-process")
    assert launcher.route(p) == "in-process"
    monkeypatch.setenv("STOCKADE_LAUNCHER", "helper")
    assert launcher.route(p) == "helper"
    assert launcher.route(p, forward_signals=True) == "in-process"  # the CLI's signals
    from stockade.runner._record import replace

    assert launcher.route(replace(p, seccomp_listener_sock=5)) == "in-process"  # learn
    monkeypatch.setenv("STOCKADE_LAUNCHER", "sometimes")
    with pytest.raises(RunnerError) as exc:
        launcher.route(p)
    assert exc.value.step == "preflight" and "STOCKADE_LAUNCHER" in exc.value.message


def test_auto_sends_a_big_caller_to_a_helper() -> None:
    """In a fresh process: lean -> in-process; 100 MiB resident -> helper, and it runs."""
    require_root()
    code = (
        "import os, sys\n"
        "from stockade.api import plan, run\n"
        "from stockade.runner import launcher\n"
        "p = plan(['/bin/true'], policy='default', env={'PATH': '/bin'})\n"
        "print(launcher.route(p))\n"
        "ballast = bytearray(100 << 20); ballast[::4096] = b'x' * len(ballast[::4096])\n"
        "print(launcher.route(p))\n"
        "res = run(['/bin/true'], policy='default', env={'PATH': '/bin'})\n"
        "print(res.exit_code, res.run_id.split('-')[0] != str(os.getpid()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "STOCKADE_LAUNCHER"}
    env["PYTHONPATH"] = str(REPO / "src")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["in-process", "helper", "0 True"]


def test_no_helper_means_in_process_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto: a helper that cannot start (no interpreter) falls back to a fork of this
    process; STOCKADE_LAUNCHER=helper: a clear error, and nothing ran."""
    require_root()
    helper.shutdown()
    monkeypatch.setattr(helper.sys, "executable", "/nonexistent/python")
    monkeypatch.setattr(launcher, "_rss_mib", lambda: 1024.0)  # "big": auto picks helper
    monkeypatch.setenv("STOCKADE_LAUNCHER", "auto")
    res = run(["/bin/true"], policy="default", env=ENV)
    assert res.exit_code == 0 and res.run_id.split("-")[0] == str(os.getpid())
    monkeypatch.setenv("STOCKADE_LAUNCHER", "helper")
    with pytest.raises(RunnerError) as exc:
        run(["/bin/true"], policy="default", env=ENV)
    assert exc.value.step == "internal" and "launch helper" in exc.value.message
    helper.shutdown()
