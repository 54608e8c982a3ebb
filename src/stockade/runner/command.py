"""`stockade run`: argument parsing only; the work is stockade.api.run.

The options are one table, read twice: by `configure()` for argparse (help, usage errors)
and by `parse_fast()`, which parses the common, well-formed command lines without
importing argparse (~6 ms of a ~40 ms start; see stockade.cli). Anything the fast parser
is not sure about (help, abbreviations, a missing value, an unknown option) is left to
argparse, so messages and exit codes are argparse's.
"""

from __future__ import annotations

import os
import sys

from stockade.runner.codes import describe_codes

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from stockade.runner.launcher import RunResult

EPILOG = (
    "exit status: the payload's, or 128+signal when a signal ended it. Runner failures "
    "(the payload never ran) use these codes, with a one-line message naming the step:\n"
    + describe_codes()
)

# (flags, dest, kind, metavar, help); kind: "value" | "append" | "flag". Defaults: None for
# values, [] for append, False for flags.
OPTIONS: tuple[tuple[tuple[str, ...], str, str, str | None, str], ...] = (
    (("--policy",), "policy", "value", None,
     "policy file or preset name (default: the 'default' preset)"),
    (("--rootfs",), "rootfs", "value", None,
     "directory to use as / (default: a jail: the host's /usr and an /etc allow-list "
     "read-only, fresh /proc /dev /tmp, nothing else of the host; `--rootfs /`: the "
     "host's whole tree read-only)"),
    (("--bundle",), "bundle", "value", "DIR",
     "OCI bundle: rootfs, args, env, cwd and hostname from its config.json (confinement "
     "still comes from --policy)"),
    (("--image",), "image", "value", "NAME[:TAG]|ID",
     "image from the store (`stockade image load`): its layers are the root (overlayfs, "
     "writable layer per container) and its Entrypoint/Cmd, Env, WorkingDir and User apply "
     "unless `-- CMD`, --env, --cwd override them; the policy still decides"),
    (("--entrypoint",), "entrypoint", "value", "CMD",
     "--image: replaces the image's Entrypoint, as Docker's (the image's Cmd is then not "
     "used; `-- ARGS` follow it); \"\" clears it"),
    (("--keep",), "keep", "flag", None,
     "--image: keep the container's writable layer (under STORE/containers/ID)"),
    (("--store",), "store", "value", "DIR",
     "--image: store root (default: $STOCKADE_STORE, /var/lib/stockade as root, "
     "$XDG_DATA_HOME/stockade rootless)"),
    (("--bind",), "bind", "append", "SRC:DST[:ro]", "bind SRC (host) on DST (inside); repeatable"),
    (("--env", "-e"), "env", "append", "KEY[=VALUE]",
     "environment for the payload (nothing else is passed); KEY alone copies the runner's "
     "value"),
    (("--cwd",), "cwd", "value", None,
     "working directory inside (default: the image's WorkingDir, else /)"),
    (("--hostname",), "hostname", "value", None, "hostname inside (default: the policy's)"),
    (("--tty", "-t"), "tty", "flag", None, "allocate a pty"),
    (("--no-init",), "no_init", "flag", None,
     "no tiny init: the payload is PID 1 of its pid namespace"),
    (("--dry-run",), "dry_run", "flag", None, "print the frozen plan and run nothing"),
    (("--json-report",), "json_report", "value", "FILE",
     "write the usage report (exit, peak memory, cpu, pids, oom) as JSON"),
)
DEFAULT_POLICY = "default"
_BY_FLAG = {flag: (dest, kind) for flags, dest, kind, _, _ in OPTIONS for flag in flags}


class Args:
    """What parse_fast returns: the attributes argparse's Namespace would have."""

    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)

    def __getattr__(self, name: str) -> Any:  # for mypy: the attributes are dynamic
        raise AttributeError(name)


def configure(parser: argparse.ArgumentParser) -> None:
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    for flags, dest, kind, metavar, help_ in OPTIONS:
        if kind == "flag":
            parser.add_argument(*flags, dest=dest, action="store_true", help=help_)
        elif kind == "append":
            parser.add_argument(*flags, dest=dest, action="append", default=[],
                                metavar=metavar, help=help_)
        else:
            parser.add_argument(*flags, dest=dest, metavar=metavar, help=help_,
                                default=DEFAULT_POLICY if dest == "policy" else None)
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")


def parse_fast(argv: list[str]) -> Args | None:
    """argparse's result for `argv` (what follows `run`), or None when argparse must decide.

    Mirrors argparse for well-formed input: options in any order until the first
    positional or `--`, which starts CMD (REMAINDER: everything from there on, `--`
    included, as argparse keeps it); `--opt=value`; a later value replaces an earlier one.
    """
    ns: dict[str, object] = {dest: ([] if kind == "append" else False if kind == "flag" else None)
                             for _, dest, kind, _, _ in OPTIONS}
    ns["policy"] = DEFAULT_POLICY
    i, n = 0, len(argv)
    while i < n:
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        flag, eq, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        known = _BY_FLAG.get(flag)
        if known is None:
            return None  # -h, an abbreviation, grouped short flags, a typo: argparse's call
        dest, kind = known
        if kind == "flag":
            if eq:
                return None
            ns[dest] = True
            i += 1
            continue
        if eq:
            value = attached
            i += 1
        else:
            if i + 1 >= n or argv[i + 1].startswith("-"):
                return None  # missing value, or one argparse would take for an option
            value = argv[i + 1]
            i += 2
        if kind == "append":
            ns[dest].append(value)  # type: ignore[attr-defined]
        else:
            ns[dest] = value
    ns["cmd"] = argv[i:]
    return Args(**ns)


def _env(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if key not in os.environ:
                continue
            value = os.environ[key]
        env[key] = value
    return env


def _write_report(path: str, data: dict[str, object]) -> None:
    import json  # not at the top: json imports re (~4 ms) and only reports need it

    with open(path, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")


def main(args: argparse.Namespace | Args) -> int:
    from stockade import api
    from stockade.runner.codes import runner_error

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    rootfs, env, cwd, hostname = args.rootfs, _env(args.env), args.cwd, args.hostname
    if args.image:
        if args.rootfs or args.bundle:
            raise runner_error("preflight", "--image excludes --rootfs and --bundle")
        return _run_image(args, cmd, env)
    if args.keep or args.store or args.entrypoint is not None:
        raise runner_error("preflight", "--keep, --store and --entrypoint go with --image")
    if args.bundle:
        from stockade.runner.bundle import read_bundle

        if args.rootfs:
            raise runner_error("preflight", "--rootfs and --bundle exclude each other")
        b = read_bundle(args.bundle)
        rootfs = b.rootfs
        cmd = cmd or list(b.args)
        env = {**dict(b.env), **env}
        cwd = cwd or b.cwd
        hostname = hostname or b.hostname
    if not cmd:
        raise runner_error("preflight", "no command given (stockade run [OPTIONS] -- CMD ...)")
    kwargs = dict(policy=args.policy, rootfs=rootfs, binds=args.bind, env=env, cwd=cwd or "/",
                  tty=args.tty, hostname=hostname, init=not args.no_init)
    if args.dry_run:
        from stockade.runner.plan import describe

        print(describe(api.plan(cmd, **kwargs)))
        return 0
    return _exit_fast(_finish(args, lambda: api.run(cmd, forward_signals=True, **kwargs)))


def _run_image(args: argparse.Namespace | Args, cmd: list[str], env: dict[str, str]) -> int:
    from stockade import api
    from stockade.runner import image_source
    from stockade.runner.plan import Bind

    part = api._part(args.policy, None)
    binds = [Bind.parse(b) for b in args.bind]
    opts = dict(binds=binds, cwd=args.cwd, tty=args.tty, hostname=args.hostname,
                init=not args.no_init)
    entrypoint = None if args.entrypoint is None else [args.entrypoint] if args.entrypoint else []
    with image_source.open_image(args.image, cmd, part, env=env, keep=args.keep,
                                 dry_run=args.dry_run, store=args.store,
                                 entrypoint=entrypoint) as img:
        if args.dry_run:
            from stockade.runner.plan import describe

            plan = image_source.dry_run_plan(img, part, store=args.store, **opts)
            print(describe(plan))
            for line in img.lines:  # the image, how its root is built, what was refused
                print(f"image       {line.removeprefix('image ')}")
            return 0
        status = _finish(args, lambda: image_source.run_image(img, part, forward_signals=True,
                                                             **opts))
    return _exit_fast(status)  # the root is unmounted and removed (or kept) by now


def _notes(notes: tuple[str, ...]) -> None:
    from stockade.runner.image_source import FILE_REFUSAL

    files = [n for n in notes if n.startswith("image: refused: " + FILE_REFUSAL)]
    for note in notes:
        if note not in files:
            print(f"stockade: note: {note}", file=sys.stderr)
    if files:
        print(f"stockade: note: image: {len(files)} set-id or file-capability files are "
              "neutralised by the policy (listed by --dry-run and --json-report)",
              file=sys.stderr)


def gc_back_on() -> None:
    """stockade.cli.entry() starts `run` with the cyclic GC off, for the imports. The
    supervisor and the tiny init (a fork of this process) live as long as the payload:
    collect again from here, with everything imported so far frozen (never scanned again,
    and no copy-on-write faults from the collector in the forked init)."""
    import gc

    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _finish(args: argparse.Namespace | Args, start: Callable[[], RunResult]) -> int:
    from stockade.errors import RunnerError

    gc_back_on()
    try:
        result = start()
    except RunnerError as exc:
        if args.json_report:  # the report says the payload never ran, and why
            _write_report(args.json_report, {"exit_code": exc.exit_code, "ran": False,
                                             "error": {"step": exc.step, "message": exc.message}})
        raise
    if result.notes:
        _notes(result.notes)
    if args.json_report:
        _write_report(args.json_report, {**result.to_json(), "ran": True})
    if result.oom_killed:
        print("stockade: the payload was killed by the OOM killer (resources.memory)",
              file=sys.stderr)
    return result.exit_code


def _exit_fast(status: int) -> int:
    if _whole_process():
        # `stockade run` is the whole process: skip the interpreter's teardown (~5 ms of
        # module finalisation), nothing is left to do. Never when called in-process.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _whole_process() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "stockade.cli":
        return True  # python -m stockade.cli
    from stockade import cli

    return getattr(main, "entry", None) is cli.entry  # the `stockade` console script
