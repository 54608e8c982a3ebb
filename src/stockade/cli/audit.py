"""`stockade audit`: which escape vectors are open in a running container."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from stockade.audit.model import AuditResult, Severity, Status, Target
from stockade.errors import StockadeError

if TYPE_CHECKING:
    from stockade.linux.hostfacts import HostFacts


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("exit status: 0 nothing open at or above --fail-on; 1 something is (an `error` "
                     "finding counts: it is never a pass); 2 the audit could not run")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--self", action="store_true", help="audit the current process (inside a container)")
    which.add_argument("--pid", type=int, metavar="P", help="audit the process P from the host")
    which.add_argument("--docker", metavar="NAME", help="a Docker container (Engine API on DOCKER_HOST)")
    which.add_argument("--runc", metavar="ID", help="a runc container (state in --runc-root)")
    which.add_argument("--stockade", metavar="ID", help="a stockade runner/OCI container")
    which.add_argument("--all", action="store_true", help="every container found on the host, in parallel")
    which.add_argument("--list-checks", action="store_true", help="print the catalogue (ID, severity, title) and exit")
    parser.add_argument("--runc-root", default="/run/runc", metavar="DIR", help="runc state dir (default /run/runc)")
    parser.add_argument("--stockade-root", default="/run/stockade", metavar="DIR",
                        help="stockade state dir (default /run/stockade)")
    parser.add_argument("--format", default="table", choices=("table", "json", "sarif", "markdown", "html"),
                        help="report format: %(choices)s (default table)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report here (default stdout)")
    parser.add_argument("--fail-on", default="high", metavar="SEVERITY",
                        help="exit 1 when a finding at or above this severity is open: info, "
                        "low, medium, high or critical (default high)")
    parser.add_argument("--active", action="store_true",
                        help="also probe network APIs (Docker TCP, kubelet, cloud metadata)")
    parser.add_argument("--fix", metavar="OUT.yaml|DIR",
                        help="write a stockade policy closing what was found (it passes "
                        "`stockade validate`); with --all, a directory (created if missing) that "
                        "gets one audit-fix-NAME.yaml policy per container (NAME: the container's name or pid)")
    parser.add_argument("--jobs", type=_positive, default=8, metavar="N",
                        help="parallel audits for --all (default 8)")
    parser.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                        help="progress display on stderr for --all: %(choices)s (default auto)")


def _targets(args: argparse.Namespace) -> tuple[list[Target], list[str]]:
    from stockade.audit import targets

    if args.self:
        return [targets.from_self()], []
    if args.pid is not None:
        return [targets.from_pid(args.pid, args.stockade_root)], []
    if args.docker is not None:
        return [targets.from_docker(_container_ref("--docker", args.docker))], []
    if args.runc is not None:
        return [targets.from_runc(_container_ref("--runc", args.runc), args.runc_root)], []
    if args.stockade is not None:
        cid = _container_ref("--stockade", args.stockade)
        return [targets.from_stockade(cid, args.stockade_root)], []
    return targets.discover_all(args.runc_root, args.stockade_root)


def _container_ref(flag: str, value: str) -> str:
    """A container name or id: never empty, never a path (runc/stockade ids name a
    directory under the state root)."""
    if not value or "/" in value or value in (".", "..") or "\0" in value:
        raise StockadeError(f"{flag}: {value!r} is not a container name or id; expected a "
                            "non-empty name without '/' (see `docker ps`, `runc list`, "
                            "`stockade oci list`)")
    return value


def exit_status(results: Sequence[AuditResult], fail_on: Severity) -> int:
    for r in results:
        for f in r.findings:
            # an error is never a pass: it gates like an open finding of its severity
            if (f.status.is_open or f.status is Status.ERROR) and f.severity >= fail_on:
                return 1
    return 0


def main(args: argparse.Namespace) -> int:
    from stockade.audit import engine
    from stockade.audit.report import FORMATS
    from stockade.audit.targets import with_docker_version
    from stockade.linux.hostfacts import HostFacts

    if args.list_checks:
        return _list_checks()
    try:
        fail_on = Severity.parse(args.fail_on)
    except ValueError as exc:
        raise StockadeError(f"--fail-on: {exc}; use info, low, medium, high or critical") from None
    if args.fix:
        _check_fix_path(args.fix, many=args.all)
    if os.geteuid() != 0 and not args.self:
        print("stockade audit: not root; probes may fail to enter the container", file=sys.stderr)
    found, notes = _targets(args)
    host = with_docker_version(
        HostFacts.detect(runtimes=True, from_inside=bool(args.self)), found)
    if args.all:
        for n in notes:
            print(f"stockade audit: {n}", file=sys.stderr)
        if not found:
            raise StockadeError("no running containers found (Docker API, runc and stockade state dirs)")
        results = _run_all(found, host, args)
    else:
        results = [engine.audit(found[0], host, active=args.active)]
    text = FORMATS[args.format](results, host)
    if args.output:
        _write(args.output, text)
    else:
        sys.stdout.write(text)
    if args.fix:
        from stockade.audit.fix import write_policies

        written = write_policies(args.fix, results, many=args.all)
        if args.all:
            for path in written:
                print(f"stockade audit: wrote {path}", file=sys.stderr)
    return exit_status(results, fail_on)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _check_fix_path(path: str, *, many: bool) -> None:
    """Refuse a --fix destination that cannot take the result, before auditing."""
    if many:
        if path.endswith((".yaml", ".yml")) or os.path.lexists(path) and not os.path.isdir(path):
            raise StockadeError(f"--fix {path}: with --all one policy is written per container; "
                                "expected a directory (created if missing), e.g. --fix fixes/")
        return
    if os.path.isdir(path):
        raise StockadeError(f"--fix {path}: is a directory; expected a file name such as fix.yaml "
                            "(a directory goes with --all)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise StockadeError(f"--fix {path}: directory {parent} does not exist")


def _run_all(found: list[Target], host: HostFacts, args: argparse.Namespace) -> list[AuditResult]:
    from stockade.audit import engine

    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    if not show:
        return engine.audit_many(found, host, active=args.active, workers=args.jobs)
    from rich.progress import Progress

    with Progress(transient=True, console=None) as progress:
        task = progress.add_task(f"auditing {len(found)} containers", total=len(found))
        return engine.audit_many(found, host, active=args.active, workers=args.jobs,
                                 on_done=lambda r: progress.advance(task))


def _list_checks() -> int:
    from stockade.audit.checks import ALL

    for c in ALL.values():
        print(f"{c.id:<24} {c.severity.label:<8} {c.title}")
    return 0


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise StockadeError(f"cannot write {path}: {exc.strerror}") from None
