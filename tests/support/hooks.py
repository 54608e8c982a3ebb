"""The tests' `stockade` command: the production CLI with the tests' hooks patched in.

Production code reads no test switch. A test that needs create to stop at a given point,
or a hybrid host to look like a cgroup v2 one, runs the CLI through this launcher
(`ARGV`, or the script `write_script` makes, which the tests' build of the OCI front end
falls back to); the variables below are read here and nowhere in src/:

  STOCKADE_TEST_PAUSE=mkdir|planned|cgroups  create stops itself (SIGSTOP) there, so that
      a test can SIGKILL it exactly at that point: after its state directory is made,
      after the cgroups it is about to make are recorded, after they are made and recorded.
  STOCKADE_TEST_CGROUP_V2=1  a hybrid host's unified mount counts as a pure v2 host (no
      resource controllers there, but cgroups, clone3 into them and device programs work).

The C front end's own stops and v2 view exist only in its tests' build
(-DSTOCKADE_TEST_HOOKS, fastexec.c), under the same names.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

SWITCHES = ("STOCKADE_TEST_PAUSE", "STOCKADE_TEST_CGROUP_V2")
PAUSE_POINTS = ("mkdir", "planned", "cgroups")
_REPO = str(Path(__file__).resolve().parents[2])
# stockade must import from this checkout and the tests' package with it; -I as the real
# entry script (no PYTHON* variables, no user site), with site: the venv's packages.
_MAIN = (f"import sys; sys.path.insert(0, {_REPO!r}); "
         "from tests.support.hooks import main; main()")
ARGV = [sys.executable, "-I", "-c", _MAIN]  # followed by stockade's own arguments


def wanted(env: Mapping[str, str] | None) -> bool:
    """Whether a command run with this environment needs the hooked CLI."""
    return env is not None and any(env.get(name) for name in SWITCHES)


def write_script(path: Path) -> str:
    """An executable `stockade` that is this launcher (for the front end's fallback)."""
    path.write_text(f"#!{sys.executable} -I\n{_MAIN}\n")
    path.chmod(0o755)
    return str(path)


def main() -> None:
    install(os.environ, sys.argv[1:])
    from stockade.cli import entry

    entry()


def install(env: Mapping[str, str], argv: list[str]) -> None:
    """Patch the hooks the environment asks for into this process (before the CLI runs:
    the cloned child imports nothing, it runs what the parent holds)."""
    if env.get("STOCKADE_TEST_CGROUP_V2") == "1":
        _force_cgroup_v2()
    point = env.get("STOCKADE_TEST_PAUSE", "")
    if point:
        if point not in PAUSE_POINTS:
            raise SystemExit(f"STOCKADE_TEST_PAUSE={point!r}: expected one of {PAUSE_POINTS}")
        _pause_create_at(point, container_id=argv[-1])


def _force_cgroup_v2() -> None:
    from stockade.runner import cgroups

    real = cgroups.detect

    def detect_as_v2(*args: Any, **kwargs: Any) -> cgroups.Hierarchy:
        found = real(*args, **kwargs)
        if found.v2_mount is None:
            return found
        return cgroups.Hierarchy("v2", (), found.v2_mount, found.v2_own)

    cgroups.detect = detect_as_v2  # detect_cached (the runner's) calls it by this name


def _stop() -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


def _pause_create_at(point: str, container_id: str) -> None:
    if point == "mkdir":
        # create's state directory, <root>/<id>: stop right after it is made, before any
        # state is written into it
        real_mkdir = os.mkdir

        def mkdir_then_stop(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
            real_mkdir(path, mode, dir_fd=dir_fd)
            if os.path.basename(os.fspath(path)) == container_id:
                _stop()

        os.mkdir = mkdir_then_stop
        return
    from stockade.runner import launcher
    from stockade.runner._record import replace

    real_launch_held = launcher.launch_held
    field = "on_planned" if point == "planned" else "on_cgroup"

    def then_stop(recorded: Callable[[tuple[str, ...]], None] | None,
                  ) -> Callable[[tuple[str, ...]], None]:
        def record_and_stop(dirs: tuple[str, ...]) -> None:
            if recorded is not None:
                recorded(dirs)
            _stop()
        return record_and_stop

    def launch_held_stopping(plan: Any, hold: Any) -> Any:
        return real_launch_held(plan, replace(hold, **{field: then_stop(getattr(hold, field))}))

    launcher.launch_held = launch_held_stopping  # create imports it when it runs
