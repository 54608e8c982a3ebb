"""stockade schema: the JSON Schema of the policy format (for editors and CI linters)."""

from __future__ import annotations

import argparse
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def main(args: argparse.Namespace) -> int:
    from stockade.policy.schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.output:
        import os

        from stockade.profiles.base import Artifact, Artifacts, write_artifacts

        write_artifacts(Artifacts("schema", (Artifact(os.path.basename(args.output), text=text),)),
                        os.path.dirname(os.path.abspath(args.output)))
    else:
        sys.stdout.write(text)
    return 0
