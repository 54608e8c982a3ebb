"""`stockade oci [--root DIR] create|start|state|kill|delete|run|list|spec`.

runc's command line, so that engines can use stockade as their runtime (they put global
flags such as --root, --log and --log-format before the subcommand; see
stockade-oci-runtime, the wrapper for `podman --runtime`).
"""

from __future__ import annotations

import os
import sys

from stockade.cli import optable
from stockade.cli.optable import FLAG, INT, SUPPRESS, VALUE, Option, Positional, add_to
from stockade.oci.state import DEFAULT_ROOT

TYPE_CHECKING = False  # not typing's: argparse stays unimported on the fast path
if TYPE_CHECKING:
    import argparse

# runc's global flags (before the subcommand).
GLOBAL_OPTIONS: tuple[Option, ...] = (
    Option(("--root",), "root", VALUE, DEFAULT_ROOT, f"state directory (default {DEFAULT_ROOT})"),
    Option(("--log",), "log", VALUE, None, "also write errors to this file (engines read it)"),
    Option(("--log-format",), "log_format", VALUE, "text",
           "format of the --log file (default text)", choices=("text", "json")),
    Option(("--debug",), "debug", FLAG, False, "accepted for runc compatibility"),
    Option(("--systemd-cgroup",), "systemd_cgroup", FLAG, False,
           "refused: stockade has no systemd cgroup driver"),
)
# --root is accepted after the subcommand too; SUPPRESS keeps the one given before it.
SUB_ROOT = Option(("--root",), "root", VALUE, SUPPRESS, "state directory")
CREATING: tuple[Option, ...] = (
    Option(("--bundle", "-b"), "bundle", VALUE, ".", "bundle directory (default .)"),
    Option(("--pid-file",), "pid_file", VALUE, None, "write the container's pid here"),
    Option(("--console-socket",), "console_socket", VALUE, None,
           "unix socket that receives the pty master"),
    Option(("--policy",), "policy", VALUE, None,
           "stockade policy laid over config.json: the stricter of the two wins"),
    Option(("--dry-run",), "dry_run", FLAG, False,
           "print the merged plan (config.json + --policy) and run nothing"),
    Option(("--no-pivot",), "no_pivot", FLAG, False, "refused: always pivot_root"),
    Option(("--no-new-keyring",), "no_new_keyring", FLAG, False,
           "accepted: stockade never creates a session keyring"),
    Option(("--preserve-fds",), "preserve_fds", INT, 0,
           "refused unless 0: every fd above 2 is closed"),
)
ID: Positional = ("id", "the container's id", None)
# The subcommands engines call on every container, from one table each:
# name -> (help, options, positionals); the fast reader takes these only.
TABLED: dict[str, tuple[str, tuple[Option, ...], tuple[Positional, ...]]] = {
    "create": ("create a container, stopped before its program runs", CREATING, (ID,)),
    "run": ("create, start and wait for a container, then delete it",
            (*CREATING, Option(("--detach", "-d"), "detach", FLAG, False, "return after start")),
            (ID,)),
    "start": ("run the program of a created container", (), (ID,)),
    "state": ("the container's state (runtime spec JSON)", (), (ID,)),
    "kill": ("send a signal to the container's process",
             (Option(("--all", "-a"), "all", FLAG, False, "every process of its cgroup"),),
             (ID, ("signal", "name or number (SIGTERM)", "SIGTERM"))),
    "delete": ("remove a stopped container (--force: kill it first)",
               (Option(("--force", "-f"), "force", FLAG, False,
                       "kill a running container first"),),
               (ID,)),
}
_SUBCOMMANDS = frozenset(TABLED)


def parse_fast(argv: list[str]) -> dict[str, object] | None:
    """The fast reader's result for `stockade oci ARGV` (None: argparse's case)."""
    outer = optable.parse_fast(argv, GLOBAL_OPTIONS, stop=_SUBCOMMANDS)
    if outer is None:
        return None
    values, at = outer
    _, options, positionals = TABLED[argv[at]]
    inner = optable.parse_fast(argv[at + 1:], (SUB_ROOT, *options), positionals=positionals)
    if inner is None:
        return None
    return {**values, **inner[0], "oci_command": argv[at]}


def configure(parser: argparse.ArgumentParser) -> None:
    import argparse

    add_to(parser, GLOBAL_OPTIONS)
    sub = parser.add_subparsers(dest="oci_command", metavar="SUBCOMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add_to(common, (SUB_ROOT,))

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common])

    def tabled(name: str) -> None:
        help_, options, positionals = TABLED[name]
        add_to(add(name, help_), options, positionals)

    tabled("create")
    tabled("run")
    tabled("start")
    p = add("exec", "run another process in a created or running container, confined as "
            "its own (its seccomp filter; capabilities, rlimits, user from its process)")
    p.add_argument("--process", "-p", help="a process.json (config.json's process section) "
                   "instead of COMMAND and the flags below")
    p.add_argument("--detach", "-d", action="store_true", help="return once it runs")
    p.add_argument("--pid-file", help="write the process's pid here")
    p.add_argument("--cwd", help="working directory inside the container")
    p.add_argument("--env", "-e", action="append", help="KEY=VALUE (repeatable)")
    p.add_argument("--user", "-u", help="UID[:GID]")
    p.add_argument("--additional-gids", "-g", action="append", help="GID (repeatable)")
    p.add_argument("--cap", "-c", action="append",
                   help="add a capability (bounding, effective, permitted; repeatable)")
    p.add_argument("--no-new-privs", action="store_true", help="set no_new_privs")
    p.add_argument("--tty", "-t", action="store_true", help="allocate a pty inside")
    p.add_argument("--console-socket", help="unix socket that receives the pty master")
    p.add_argument("--apparmor", help="AppArmor profile (fails closed if not applied)")
    p.add_argument("--process-label", help="SELinux label (fails closed if not applied)")
    p.add_argument("--preserve-fds", type=int, default=0,
                   help="refused unless 0: every fd above 2 is closed")
    p.add_argument("id", help="the container's id")
    p.add_argument("exec_argv", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="COMMAND [ARG...]")
    tabled("state")
    add("pause", "freeze every process of a running container").add_argument("id", help="the container's id")
    add("resume", "thaw a paused container").add_argument("id", help="the container's id")
    p = add("update", "change a running container's resources (0: unchanged, -1: no limit)")
    p.add_argument("--resources", "-r", help="LinuxResources JSON file, - for stdin (the "
                   "flags are then ignored)")
    for flag, what in (("--memory", "memory limit (bytes)"),
                       ("--memory-swap", "memory + swap limit (bytes)"),
                       ("--cpu-quota", "CFS quota (microseconds)"),
                       ("--cpu-period", "CFS period (microseconds)"),
                       ("--cpu-share", "CPU shares"), ("--pids-limit", "maximum pids"),
                       ("--memory-reservation", "refused"), ("--cpu-rt-period", "refused"),
                       ("--cpu-rt-runtime", "refused"), ("--blkio-weight", "refused")):
        p.add_argument(flag, type=int, help=what)
    p.add_argument("--cpuset-cpus", help="refused")
    p.add_argument("--cpuset-mems", help="refused")
    p.add_argument("id", help="the container's id")
    p = add("ps", "the processes in the container (its cgroup), as runc ps")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table",
                   help="json: the pids; table: `ps` lines of those pids")
    p.add_argument("id", help="the container's id")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="PS-OPTION",
                   help="options for ps (table; default -ef)")
    tabled("kill")
    tabled("delete")
    p = add("list", "list containers")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table",
                   help="output format (default table)")
    p.add_argument("--quiet", "-q", action="store_true", help="ids only")
    p = add("spec", "write a hardened config.json generated from a stockade policy")
    p.add_argument("--policy", default="default", help="policy file or preset (default)")
    p.add_argument("--rootless", action="store_true", help="for an unprivileged runtime")
    p.add_argument("--bundle", "-b", default=".", help="where to write config.json")
    p.add_argument("-o", "--output", help="file to write (- for stdout)")
    p.add_argument("--image", help="a stored image (stockade image load): its layers become "
                   "BUNDLE/rootfs and its config the process; the policy wins")
    p.add_argument("--store", help="image store (default: /var/lib/stockade as root)")
    add("features", "what this runtime supports (runc features JSON)")
    p = add("wrapper", "write a runc-compatible runtime script for engines "
            "(podman --runtime PATH, dockerd --add-runtime stockade=PATH)")
    p.add_argument("path", help="where to write the executable script")


def main(args: argparse.Namespace) -> int:
    from stockade.errors import StockadeError
    from stockade.oci import notice

    notice.configure(args.log, args.log_format)
    try:
        return _dispatch(args)
    except StockadeError as exc:
        if args.log:
            notice.write(args.log, args.log_format, "error", str(exc))
        raise


def _dispatch(args: argparse.Namespace) -> int:
    from stockade.errors import StockadeError
    from stockade.oci import lifecycle

    if args.systemd_cgroup:
        raise StockadeError("--systemd-cgroup: stockade has no systemd cgroup driver "
                            "(use the cgroupfs manager)")
    cmd = args.oci_command
    root = args.root
    if cmd in ("create", "run"):
        return _create(args, root, run=cmd == "run")
    if cmd == "start":
        lifecycle.start(root, args.id)
    elif cmd in ("pause", "resume"):
        lifecycle.pause(root, args.id, on=cmd == "pause")
    elif cmd == "update":
        from stockade.oci.update import main_update

        main_update(root, args.id, args)
    elif cmd == "ps":
        _ps(root, args.id, args.format, list(args.ps_args))
    elif cmd == "exec":
        from stockade.oci.execute import main_exec

        return main_exec(root, args.id, args)
    elif cmd == "state":
        import json

        print(json.dumps(lifecycle.state(root, args.id), indent=2))
    elif cmd == "kill":
        lifecycle.kill(root, args.id, lifecycle.parse_signal(args.signal), args.all)
    elif cmd == "delete":
        lifecycle.delete(root, args.id, args.force)
    elif cmd == "list":
        _list(lifecycle.list_all(root), args.format, args.quiet)
    elif cmd == "spec":
        from stockade.oci.spec import write_spec

        write_spec(args.policy, args.rootless, args.bundle, args.output, args.image, args.store)
    elif cmd == "wrapper":
        from stockade.oci.wrapper import write_wrapper

        write_wrapper(args.path, root if root != DEFAULT_ROOT else None)
    elif cmd == "features":
        import json

        from stockade.oci.spec import features

        print(json.dumps(features(), indent=2))
    return 0


def _create(args: argparse.Namespace, root: str, run: bool) -> int:
    from stockade.errors import StockadeError
    from stockade.linux.host import cap_last_cap
    from stockade.oci import config, lifecycle, state
    from stockade.oci.translate import translate

    state.check_id(args.id)
    if args.no_pivot:
        raise StockadeError("--no-pivot: stockade always uses pivot_root")
    if args.preserve_fds:
        raise StockadeError("--preserve-fds: not supported (every fd above 2 is closed)")
    cfg = config.load(args.bundle)
    last_cap = cap_last_cap()
    if (os.environ.get("STOCKADE_FAST_STAMP") and not args.policy and not args.dry_run
            and not args.console_socket and not getattr(args, "detach", False)):
        _plan_for_front_end(args, root, cfg, last_cap)  # returns if it cannot hand back
    c = translate(cfg, args.bundle, args.id, last_cap=last_cap)
    merge_text = ""
    if args.policy:
        from stockade.oci.overlay import overlay

        c, merge_text = overlay(c, args.policy)
    if args.dry_run:
        from stockade.runner.plan import describe

        if merge_text:
            print(merge_text)
        print(describe(c.plan))
        for kind, hooks in c.hooks:
            for h in hooks:
                print(f"hook        {kind} {h.path}")
        return 0
    if run:
        return lifecycle.run(c, root, args.id, pid_file=args.pid_file,
                             console_socket=args.console_socket, detach=args.detach)
    lifecycle.create(c, root, args.id, pid_file=args.pid_file, console_socket=args.console_socket)
    return 0


def _plan_for_front_end(args: argparse.Namespace, root: str, cfg: dict[str, object],
                        last_cap: int) -> None:
    """The compiled front end has no plan for this bundle: translate config.json, store
    the plan and exec the front end again to carry it out (oci/fastplan.py). Returns,
    having changed nothing but the stored plans, when the front end cannot run it."""
    from stockade.oci import fastplan
    from stockade.oci.translate import translate

    c = translate(cfg, args.bundle, args.id, last_cap=last_cap, home=False)
    outcome = fastplan.offer(root, c, cfg, last_cap)
    if args.debug:
        print(f"stockade: fast plan: {outcome}", file=sys.stderr)
    if outcome.startswith("stored"):
        fastplan.hand_back()


def _ps(root: str, cid: str, fmt: str, ps_args: list[str]) -> None:
    """runc ps: json -> the pids of the container's cgroup; table -> ps's lines of them."""
    import json

    from stockade.oci import lifecycle
    from stockade.oci.ps import ps_table

    pids = lifecycle.pids(root, cid)
    if fmt == "json":
        print(json.dumps(pids))
        return
    for line in ps_table(pids, ps_args):
        print(line)


def _list(items: list[dict[str, object]], fmt: str, quiet: bool) -> None:
    import json

    if quiet:
        for it in items:
            print(it["id"])
    elif fmt == "json":
        print(json.dumps(items, indent=2))
    else:
        print(f"{'ID':20s} {'PID':>8s} {'STATUS':10s} {'BUNDLE':40s} {'CREATED':32s} OWNER")
        for it in items:
            print(f"{it['id']!s:20s} {it['pid']!s:>8s} {it['status']!s:10s} "
                  f"{it['bundle']!s:40s} {it['created']!s:32s} {it['owner']}")
