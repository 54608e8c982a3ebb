"""stockade show --resolved FILE: the merged policy after `extends`, as YAML."""

from __future__ import annotations

import argparse
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="policy file or preset name")
    parser.add_argument("--resolved", action="store_true", default=True,
                        help="print the merged policy (the default and only view)")
    parser.add_argument("--json", action="store_true", help="JSON instead of YAML")


def main(args: argparse.Namespace) -> int:
    from stockade.policy.loader import load_policy
    from stockade.policy.render import dump_yaml, to_document

    policy = load_policy(args.file)
    doc = to_document(policy)
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"# merged from: {', '.join(policy.sources)}\n# digest: sha256:{policy.digest}\n")
        sys.stdout.write(dump_yaml(doc))
    return 0
