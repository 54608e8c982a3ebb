"""stockade diff [--check] [--json] A B

A and B: policy files, preset names, Docker/OCI seccomp profiles or OCI config.json, in
any mix. Exit status: 0 compared (and, with --check, B is no looser than A); 1 with
--check when B allows anything A does not; 2 bad input (unknown format, arches that do
not overlap).
"""

from __future__ import annotations

import argparse
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="the old/reference policy or profile")
    parser.add_argument("b", metavar="B", help="the new one")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if B allows anything A does not (CI: no looser than before)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    from stockade.learn.compare import compare, load_side, render
    from stockade.linux.hostfacts import HostFacts

    host = HostFacts.detect()
    a = load_side(args.a, host)
    b = load_side(args.b, host)
    report = compare(a, b, host)
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render(report))
    return 1 if args.check and report.looser else 0
