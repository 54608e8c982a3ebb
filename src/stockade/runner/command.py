"""`stockade run`: argument parsing only; the work is stockade.api.run."""

from __future__ import annotations

import argparse
import json
import os
import sys

from stockade.runner.codes import describe_codes

EPILOG = (
    "exit status: the payload's, or 128+signal when a signal ended it. Runner failures "
    "(the payload never ran) use these codes, with a one-line message naming the step:\n"
    + describe_codes()
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--policy", default="default",
                        help="policy file or preset name (default: the 'default' preset)")
    parser.add_argument("--rootfs", help="directory to use as / (default: host / read-only)")
    parser.add_argument("--bundle", metavar="DIR",
                        help="OCI bundle: rootfs, args, env, cwd and hostname from its "
                        "config.json (confinement still comes from --policy)")
    parser.add_argument("--bind", action="append", default=[], metavar="SRC:DST[:ro]",
                        help="bind SRC (host) on DST (inside); repeatable")
    parser.add_argument("--env", "-e", action="append", default=[], metavar="KEY[=VALUE]",
                        help="environment for the payload (nothing else is passed); "
                        "KEY alone copies the runner's value")
    parser.add_argument("--cwd", default="/", help="working directory inside (default /)")
    parser.add_argument("--hostname", help="hostname inside (default: the policy's)")
    parser.add_argument("--tty", "-t", action="store_true", help="allocate a pty")
    parser.add_argument("--no-init", action="store_true",
                        help="no tiny init: the payload is PID 1 of its pid namespace")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the frozen plan and run nothing")
    parser.add_argument("--json-report", metavar="FILE",
                        help="write the usage report (exit, peak memory, cpu, pids, oom) as JSON")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")


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
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")


def main(args: argparse.Namespace) -> int:
    from stockade import api
    from stockade.errors import RunnerError
    from stockade.runner.codes import runner_error

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    rootfs, env, cwd, hostname = args.rootfs, _env(args.env), args.cwd, args.hostname
    if args.bundle:
        from stockade.runner.bundle import read_bundle

        if args.rootfs:
            raise runner_error("preflight", "--rootfs and --bundle exclude each other")
        b = read_bundle(args.bundle)
        rootfs = b.rootfs
        cmd = cmd or list(b.args)
        env = {**dict(b.env), **env}
        cwd = cwd if cwd != "/" else b.cwd
        hostname = hostname or b.hostname
    if not cmd:
        raise runner_error("preflight", "no command given (stockade run [OPTIONS] -- CMD ...)")
    kwargs = dict(policy=args.policy, rootfs=rootfs, binds=args.bind, env=env, cwd=cwd,
                  tty=args.tty, hostname=hostname, init=not args.no_init)
    if args.dry_run:
        from stockade.runner.plan import describe

        print(describe(api.plan(cmd, **kwargs)))
        return 0
    try:
        result = api.run(cmd, forward_signals=True, **kwargs)
    except RunnerError as exc:
        if args.json_report:  # the report says the payload never ran, and why
            _write_report(args.json_report, {"exit_code": exc.exit_code, "ran": False,
                                             "error": {"step": exc.step, "message": exc.message}})
        raise
    for note in result.notes:
        print(f"stockade: note: {note}", file=sys.stderr)
    if args.json_report:
        _write_report(args.json_report, {**result.to_json(), "ran": True})
    if result.oom_killed:
        print("stockade: the payload was killed by the OOM killer (resources.memory)",
              file=sys.stderr)
    if _whole_process():
        # `stockade run` is the whole process: skip the interpreter's teardown (~5 ms of
        # module finalisation), nothing is left to do. Never when called in-process.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.exit_code)
    return result.exit_code


def _whole_process() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "stockade.cli":
        return True  # python -m stockade.cli
    from stockade import cli

    return getattr(main, "entry", None) is cli.entry  # the `stockade` console script
