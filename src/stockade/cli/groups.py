"""stockade groups [NAME]: systemd's syscall groups and their members."""

from __future__ import annotations

import argparse
import difflib
import json
import sys

from stockade.errors import StockadeError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="one group, e.g. @mount")
    parser.add_argument("--expand", action="store_true", help="flatten nested groups")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    from stockade.policy.vocab.groups import all_groups, expand_group

    groups = all_groups()
    names = list(groups)
    if args.name:
        name = args.name if args.name.startswith("@") else "@" + args.name
        if name not in groups:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise StockadeError(f"unknown syscall group {args.name!r}{hint}; `stockade groups` lists them")
        names = [name]
    if args.json:
        out = {n: {"description": groups[n].description,
                   "members": sorted(expand_group(n)) if args.expand else list(groups[n].members)}
               for n in names}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for n in names:
        g = groups[n]
        members = sorted(expand_group(n)) if args.expand else list(g.members)
        print(f"{n}  # {g.description}")
        if args.name or args.expand:
            for member in members:
                print(f"    {member}")
        else:
            print("    " + " ".join(members))
    return 0
