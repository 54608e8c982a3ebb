"""`stockade run`: argument parsing and printing; the work is stockade.api.run (and,
for --image, stockade.runner.image_source)."""

from __future__ import annotations

import os
import sys

from stockade import api
from stockade.api import RunResult
from stockade.cli import optable
from stockade.cli.optable import APPEND, FLAG, VALUE, Option, Positional, add_to
from stockade.runner.codes import describe_codes

TYPE_CHECKING = False  # not typing's: argparse stays unimported on the fast path
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

EPILOG = (
    "exit status: the payload's, or 128+signal when a signal ended it. Runner failures "
    "(the payload never ran) use these codes, with a one-line message naming the step:\n"
    + describe_codes()
)

# The options of `stockade run` (argparse and the fast reader both read this table).
DEFAULT_POLICY = "default"
OPTIONS: tuple[Option, ...] = (
    Option(("--policy",), "policy", VALUE, DEFAULT_POLICY,
           "policy file or preset name (default: the 'default' preset)"),
    Option(("--rootfs",), "rootfs", VALUE, None,
           "directory to use as / (default: a jail: the host's /usr and an /etc allow-list "
           "read-only, fresh /proc /dev /tmp, nothing else of the host; `--rootfs /`: the "
           "host's whole tree read-only)"),
    Option(("--bundle",), "bundle", VALUE, None,
           "OCI bundle: rootfs, args, env, cwd and hostname from its config.json "
           "(confinement still comes from --policy)",
           metavar="DIR"),
    Option(("--image",), "image", VALUE, None,
           "image from the store (`stockade image load`): its layers are the root "
           "(overlayfs, writable layer per container) and its Entrypoint/Cmd, Env, "
           "WorkingDir and User apply unless `-- CMD`, --env, --cwd override them; the "
           "policy still decides",
           metavar="NAME[:TAG]|ID"),
    Option(("--entrypoint",), "entrypoint", VALUE, None,
           "--image: replaces the image's Entrypoint, as Docker's (the image's Cmd is then "
           "not used; `-- ARGS` follow it); \"\" clears it",
           metavar="CMD"),
    Option(("--keep",), "keep", FLAG, False,
           "--image: keep the container's writable layer (under STORE/containers/ID)"),
    Option(("--store",), "store", VALUE, None,
           "--image: store root (default: $STOCKADE_STORE, /var/lib/stockade as root, "
           "$XDG_DATA_HOME/stockade rootless)",
           metavar="DIR"),
    Option(("--bind",), "bind", APPEND, [],
           "bind SRC (host) on DST (inside); repeatable",
           metavar="SRC:DST[:ro]"),
    Option(("--env", "-e"), "env", APPEND, [],
           "environment for the payload (nothing else is passed); KEY alone copies the "
           "runner's value",
           metavar="KEY[=VALUE]"),
    Option(("--cwd",), "cwd", VALUE, None,
           "working directory inside (default: the image's WorkingDir, else /)"),
    Option(("--hostname",), "hostname", VALUE, None,
           "hostname inside (default: the policy's)"),
    Option(("--tty", "-t"), "tty", FLAG, False,
           "allocate a pty"),
    Option(("--no-init",), "no_init", FLAG, False,
           "no tiny init: the payload is PID 1 of its pid namespace"),
    Option(("--dry-run",), "dry_run", FLAG, False,
           "print the frozen plan and run nothing"),
    Option(("--json-report",), "json_report", VALUE, None,
           "write the usage report (exit, peak memory, cpu, pids, oom) as JSON",
           metavar="FILE"),
)
CMD: Positional = ("cmd", "-- CMD [ARG...]", None)  # argparse.REMAINDER


def configure(parser: argparse.ArgumentParser) -> None:
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add_to(parser, OPTIONS)
    parser.add_argument(CMD[0], nargs=argparse.REMAINDER, help=CMD[1])


def parse_fast(argv: list[str]) -> dict[str, object] | None:
    """The fast reader's result for `stockade run ARGV` (None: argparse's case)."""
    parsed = optable.parse_fast(argv, OPTIONS, rest=CMD[0])
    return None if parsed is None else parsed[0]


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
    import json

    with open(path, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")


def main(args: argparse.Namespace) -> int:
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
    return _finish(args, lambda: api.run(cmd, forward_signals=True, **kwargs))


def _run_image(args: argparse.Namespace, cmd: list[str], env: dict[str, str]) -> int:
    from stockade.runner import image_source
    from stockade.runner.plan import Bind
    from stockade.runner.prepare import load_part

    part = load_part(args.policy)
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
        # returns once the root is unmounted and removed (or kept)
        return _finish(args, lambda: image_source.run_image(img, part, forward_signals=True,
                                                           **opts))


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


def _finish(args: argparse.Namespace, start: Callable[[], RunResult]) -> int:
    from stockade.errors import RunnerError

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
