"""`stockade import docker-seccomp|oci-config|docker-inspect FILE [-o OUT.yaml]`; the
work is stockade.importers.convert."""

from __future__ import annotations

import argparse
import os
import sys

from stockade.errors import StockadeError

KINDS = ("docker-seccomp", "oci-config", "docker-inspect")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="what FILE is: %(choices)s")
    parser.add_argument("file", metavar="FILE", help="the profile or config to import")
    parser.add_argument("-o", "--output", metavar="OUT.yaml", help="write here (default: stdout)")
    parser.add_argument("--name", default=None, help="policy name (default: from the file name)")


def _name(args: argparse.Namespace) -> str:
    import re

    if args.name:
        return str(args.name)
    stem = os.path.splitext(os.path.basename(args.output or args.file))[0].lower()
    stem = re.sub(r"[^a-z0-9_-]", "-", stem).strip("-_") or "imported"
    return stem if stem[0].isalpha() else "p-" + stem


def main(args: argparse.Namespace) -> int:
    from stockade.importers.convert import convert

    if args.output and (os.path.isdir(args.output) or not os.path.isdir(os.path.dirname(
            os.path.abspath(args.output)))):
        raise StockadeError(f"import: -o {args.output}: expected a file in an existing directory")
    converted = convert(args.kind, args.file, name=_name(args), output=args.output)
    for w in converted.warnings:
        print(f"stockade import: warning: {w}", file=sys.stderr)
    if args.output:
        from stockade.profiles.base import Artifact, Artifacts, write_artifacts

        out_dir, filename = os.path.split(os.path.abspath(args.output))
        try:  # atomically: a tmp file renamed over OUT, removed on failure
            write_artifacts(Artifacts("import", (Artifact(filename, text=converted.text),)),
                            out_dir)
        except OSError as exc:
            raise StockadeError(f"import: -o {args.output}: cannot write: {exc.strerror}") from None
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(converted.text)
    return 0
