"""stockade validate FILE...: exit 0 when every file loads, 2 otherwise (1 for --strict warnings)."""

from __future__ import annotations

import argparse
import sys

from stockade.errors import StockadeError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="policy files or preset names")
    parser.add_argument("--strict", action="store_true",
                        help="also fail (exit 1) on warnings: syscalls skipped on a chosen arch")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")


def main(args: argparse.Namespace) -> int:
    from stockade.policy.loader import load_policy
    from stockade.seccomp.plan import skipped_notes

    status = 0
    for ref in args.files:
        try:
            policy = load_policy(ref)
        except StockadeError as exc:
            print(f"{exc}", file=sys.stderr)
            status = 2
            continue
        notes = skipped_notes(policy)
        for note in notes:
            print(f"{ref}: warning: {note}", file=sys.stderr)
        if notes and args.strict and status == 0:
            status = 1
        if not args.quiet:
            print(f"{ref}: ok ({policy.name}, {len(policy.sources)} file(s) merged)")
    return status
