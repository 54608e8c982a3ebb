"""The one entry point. Subcommands live in `<area>/command.py` modules, imported lazily
so that `stockade run` does not pay for the compiler, pydantic or rich.

Each command module provides:
    def configure(parser: argparse.ArgumentParser) -> None
    def main(args: argparse.Namespace) -> int
and may provide `parse_fast(argv) -> namespace | None` (see FAST): the hot `stockade run`
path then starts without argparse (~6 ms of a start that has to beat runc's ~25 ms);
argparse still handles --help, usage errors and everything parse_fast declines.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

# name -> (module, one-line help). Order is the order of `stockade --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("stockade.policy.command_validate", "check policy files"),
    "show": ("stockade.policy.command_show", "print the merged policy"),
    "groups": ("stockade.policy.command_groups", "list syscall groups and their members"),
    "schema": ("stockade.policy.command_schema", "print the JSON Schema of the policy format"),
    "compile": ("stockade.profiles.command", "compile a policy to a target"),
    "explain": ("stockade.profiles.command_explain", "what happens to a syscall, and why"),
    "import": ("stockade.importers.command", "turn a Docker/OCI profile or config into a policy"),
    "diff": ("stockade.learn.command_diff", "compare two policies or profiles by meaning"),
    "run": ("stockade.runner.command", "run a program under a policy"),
    "oci": ("stockade.oci.command", "OCI runtime commands (create/start/state/kill/delete/...)"),
    "learn": ("stockade.learn.command", "learn a policy from a workload"),
    "audit": ("stockade.audit.command", "audit a running container for escape vectors"),
    "gc": ("stockade.runner.network.command", "remove what killed runs left (network jails)"),
    "lsm": ("stockade.lsm.command", "load, unload and show AppArmor profiles / SELinux modules"),
    "image": ("stockade.image.command", "load and manage images"),
    "demo": ("stockade.demo", "the README's main job: compile, run, audit the default"),
}
# Commands whose module has `parse_fast`: latency matters for them (a sandbox start).
FAST = frozenset({"run", "oci"})
# Commands started with the cyclic GC off (see entry()); each must turn it back on
# (stockade.runner.command.gc_back_on) before it starts anything long-lived.
GC_PAUSED = frozenset({"run"})


def _available(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _version() -> str:
    """The installed distribution's version (package metadata: one place, pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stockade")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    import argparse
    import importlib

    parser = argparse.ArgumentParser(
        prog="stockade",
        description="One policy, many enforcers: seccomp, AppArmor, SELinux, capabilities, "
        "Landlock, a hardened runner and an escape audit.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"stockade {_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=summary, add_help=False)
            continue
        if not _available(module):
            continue
        p = sub.add_parser(name, help=summary, description=summary)
        importlib.import_module(module).configure(p)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg in ("-v", "--verbose"):
            continue
        return arg if arg in COMMANDS else None
    return None


def _module(name: str) -> Any:
    # __import__ with a fromlist returns the leaf module; `importlib` itself would be one
    # more import (~0.3 ms) on the `run` path
    return __import__(name, fromlist=("main",))


def _fast_args(argv: list[str]) -> Any | None:
    """The parsed arguments without argparse, or None (then argparse parses)."""
    verbose = False
    i = 0
    while i < len(argv) and argv[i] in ("-v", "--verbose"):
        verbose = True
        i += 1
    if i >= len(argv) or argv[i] not in FAST:
        return None
    args = _module(COMMANDS[argv[i]][0]).parse_fast(argv[i + 1:])
    if args is not None:
        args.command = argv[i]
        args.verbose = verbose
    return args


def _parse(argv: list[str]) -> argparse.Namespace | int:
    """argparse's namespace, or the exit status when argparse is done (usage, --help)."""
    parser = build_parser(only=_command_of(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors are 2, --help is 0
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process; returns the exit status (tests call this)."""
    from stockade.errors import StockadeError

    args_list = list(sys.argv[1:] if argv is None else argv)
    args: Any = _fast_args(args_list)
    if args is None:
        parsed = _parse(args_list)
        if isinstance(parsed, int):
            return parsed
        args = parsed
    module = _module(COMMANDS[args.command][0])
    try:
        return int(module.main(args))
    except StockadeError as exc:
        if args.verbose or os.environ.get("STOCKADE_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"stockade: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


class _SiteOnDemand:
    """A last-resort import finder for an interpreter started with -S (the fast entry
    script, stockade.entry_script). That script already puts the paths `site` would add
    on sys.path; what it cannot replay are the import lines of .pth files (import hooks
    of some editable installs). So the first import that nothing else can serve runs
    site.main() and is retried, unless the standard library is the importer: its
    optional imports (pickle tries `org.python.core`) must not cost a `site` (~2-6 ms)."""

    @classmethod
    def find_spec(cls, name: str, path: Sequence[str] | None = None,
                  target: object = None) -> object:
        if _imported_by_stdlib():
            return None
        import site

        sys.meta_path.remove(cls)  # type: ignore[arg-type]
        site.main()
        for finder in sys.meta_path:  # .pth files may have added finders of their own
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                return spec
        return None


def _imported_by_stdlib() -> bool:
    stdlib = os.path.dirname(os.__file__) + os.sep
    frame = sys._getframe(2)
    while str(frame.f_globals.get("__name__", "")).startswith(("importlib", "_frozen_importlib")):
        if frame.f_back is None:  # the import machinery itself: look at who called it
            return False
        frame = frame.f_back
    file = str(frame.f_globals.get("__file__") or "")
    return file.startswith(stdlib) and "-packages" + os.sep not in file


def entry() -> None:
    """The console script's entry: `main` as the whole process."""
    if sys.flags.no_site and _SiteOnDemand not in sys.meta_path:
        sys.meta_path.append(_SiteOnDemand)  # type: ignore[arg-type]
    if _command_of(sys.argv[1:]) in GC_PAUSED:
        # A sandbox start allocates little but imports much: the cyclic GC's passes over
        # the new module objects are pure start-up cost (~1 ms). The command turns it on
        # again before the launch (the supervisor and the tiny init live as long as the
        # payload).
        import gc

        gc.disable()
    sys.exit(main())


if __name__ == "__main__":
    entry()
