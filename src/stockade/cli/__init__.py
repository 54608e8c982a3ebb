"""The `stockade` command line: one module per verb in this package, each with

    def configure(parser: argparse.ArgumentParser) -> None
    def main(args: argparse.Namespace) -> int

imported only when its verb is used, and each importing the domain modules it calls
inside `main`, so that `stockade run` does not load the compiler, pydantic or rich.
The arrows run downward: this package calls the domain packages, none of them calls it.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

TYPE_CHECKING = False  # not typing's: the fast path imports no more than it needs
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from types import ModuleType

# verb -> (module in this package, one-line help). Order is the order of `stockade --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "check policy files"),
    "show": ("show", "print the merged policy"),
    "groups": ("groups", "list syscall groups and their members"),
    "schema": ("schema", "print the JSON Schema of the policy format"),
    "compile": ("compile", "compile a policy to a target"),
    "explain": ("explain", "what happens to a syscall, and why"),
    "import": ("import_", "turn a Docker/OCI profile or config into a policy"),
    "diff": ("diff", "compare two policies or profiles by meaning"),
    "run": ("run", "run a program under a policy"),
    "oci": ("oci", "OCI runtime commands (create/start/state/kill/delete/...)"),
    "learn": ("learn", "learn a policy from a workload"),
    "audit": ("audit", "audit a running container for escape vectors"),
    "gc": ("gc", "remove what killed runs left (network jails)"),
    "lsm": ("lsm", "load, unload and show AppArmor profiles / SELinux modules"),
    "image": ("image", "load and manage images"),
    "demo": ("demo", "the README's main job: compile, run, audit the default"),
}


# Verbs whose process is done when the command returns: the interpreter's teardown
# (finalising every module and object) is skipped, since it frees only what the kernel
# frees at exit anyway, and the caller of `stockade run` would wait for it.
SKIP_TEARDOWN = frozenset({"run", "oci"})

# Verbs whose module has `parse_fast(argv) -> dict | None`: the plain command lines of
# the hot paths are read from the verb's option table without argparse (cli/optable.py).
FAST_VERBS = frozenset({"run", "oci"})


def _version() -> str:
    """The installed distribution's version (package metadata: one place, pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stockade")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _version_action() -> type[argparse.Action]:
    import argparse

    class VersionAction(argparse.Action):
        """--version, reading the package metadata only when asked (it costs an import of
        importlib.metadata, which every other command would pay for)."""

        def __init__(self, option_strings: Sequence[str], dest: str,
                     help: str | None = None) -> None:
            super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                             help=help)

        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                     values: object, option_string: str | None = None) -> None:
            print(f"stockade {_version()}")
            parser.exit()

    return VersionAction


def _verb_module(verb: str) -> ModuleType:
    name = f"{__name__}.{COMMANDS[verb][0]}"
    __import__(name)  # not importlib.import_module: importlib costs (bench/shim_bench.py)
    return sys.modules[name]


def verb_parser(verb: str) -> argparse.ArgumentParser:
    """`stockade VERB`'s own parser (what `stockade VERB --help` shows)."""
    import argparse

    summary = COMMANDS[verb][1]
    parser = argparse.ArgumentParser(prog=f"stockade {verb}", description=summary)
    _verb_module(verb).configure(parser)
    return parser


def build_parser(*, verbs: bool = True) -> argparse.ArgumentParser:
    """The whole command line: global flags and every verb, each configured (`verbs`)
    or, for `stockade --help` and a mistyped verb, just named."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="stockade",
        description="One policy, many enforcers: seccomp, AppArmor, SELinux, capabilities, "
        "Landlock, a hardened runner and an escape audit.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action=_version_action(), help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for verb, (_, summary) in COMMANDS.items():
        p = sub.add_parser(verb, help=summary, description=summary, add_help=verbs)
        if verbs:
            _verb_module(verb).configure(p)
    return parser


def _verb_at(argv: Sequence[str]) -> int | None:
    """Where the verb is (after the global flags), None if there is none."""
    at = 0
    while at < len(argv) and argv[at] in ("-v", "--verbose"):
        at += 1
    return at if at < len(argv) and argv[at] in COMMANDS else None


def parse(argv: Sequence[str]) -> argparse.Namespace | SimpleNamespace:
    """The parsed command line; argparse's SystemExit for --help and usage errors.
    A command line naming a verb is parsed by that verb's parser alone: the other
    verbs' modules are not imported. `run` and `oci` lines their fast reader takes
    give the same attributes without argparse (anything else still goes to argparse)."""
    at = _verb_at(argv)
    if at is not None and argv[at] in FAST_VERBS:
        values = _verb_module(argv[at]).parse_fast(list(argv[at + 1:]))
        if values is not None:
            return SimpleNamespace(**values, command=argv[at], verbose=at > 0)
    if at is not None:
        args = verb_parser(argv[at]).parse_args(argv[at + 1:])
        args.command, args.verbose = argv[at], at > 0
        return args
    parser = build_parser(verbs=False)
    args, unknown = parser.parse_known_args(argv)
    if args.command is None and not unknown:
        parser.print_help()
        raise SystemExit(2)
    return build_parser().parse_args(argv)  # a usage error, or a verb after flags such as -vv


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process; returns the exit status (tests call this)."""
    from stockade.errors import StockadeError

    try:
        args = parse(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: usage errors are 2, --help is 0
        return int(exc.code or 0)
    try:
        return int(_verb_module(args.command).main(args))
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
    """The console script's entry: `main` as the whole process."""
    status = main()
    at = _verb_at(sys.argv[1:])
    if at is not None and sys.argv[1 + at] in SKIP_TEARDOWN:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
