"""The one entry point. Subcommands live in `<area>/command.py` modules, imported lazily
so that `stockade run` does not pay for the compiler, pydantic or rich.

Each command module provides:
    def configure(parser: argparse.ArgumentParser) -> None
    def main(args: argparse.Namespace) -> int
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

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
    "image": ("stockade.image.command", "load and manage images"),
    "demo": ("stockade.demo", "the README's main job: compile, run, audit the default"),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stockade",
        description="One policy, many enforcers: seccomp, AppArmor, SELinux, capabilities, "
        "Landlock, a hardened runner and an escape audit.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process; returns the exit status (tests call this)."""
    from stockade.errors import StockadeError

    args_list = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(args_list)
    parser = build_parser(only=command)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: usage errors are 2, --help is 0
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
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


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
