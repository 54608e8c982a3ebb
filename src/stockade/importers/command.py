"""stockade import docker-seccomp|oci-config|docker-inspect FILE [-o OUT.yaml]"""

from __future__ import annotations

import argparse
import os
import sys

from stockade.errors import Location, PolicyError, StockadeError

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
    from stockade.policy.render import dump_yaml
    from stockade.policy.resolve import Layer, resolve
    from stockade.policy.schema import validate_document
    from stockade.policy.source import MAX_YAML_NODES, node_count, parse_text

    if args.output and (os.path.isdir(args.output) or not os.path.isdir(os.path.dirname(
            os.path.abspath(args.output)))):
        raise StockadeError(f"import: -o {args.output}: expected a file in an existing directory")
    if args.kind == "docker-seccomp":
        from stockade.importers.docker_seccomp import import_file

        imported = import_file(args.file, name=_name(args))
    else:
        try:
            from stockade.importers.container_config import import_config
        except ModuleNotFoundError:
            raise StockadeError(f"import {args.kind} is not available in this build") from None
        imported = import_config(args.kind, args.file, name=_name(args))
    nodes = node_count(imported.document)
    if nodes > MAX_YAML_NODES:  # refused before the seconds dumping it would take
        raise PolicyError(Location(args.file), "the imported policy would be too large",
                          found=f"{nodes} YAML nodes", expected=f"at most {MAX_YAML_NODES} "
                          "(the limit for a policy)")
    for w in imported.warnings:
        print(f"stockade import: warning: {w}", file=sys.stderr)
    text = dump_yaml(imported.document)
    # Prove the output loads before anyone relies on it.
    doc = parse_text(text, args.output or "<import>")
    resolve([Layer(doc, validate_document(doc))])
    if args.output:
        from stockade.profiles.base import Artifact, Artifacts, write_artifacts

        out_dir, filename = os.path.split(os.path.abspath(args.output))
        try:  # atomically: a tmp file renamed over OUT, removed on failure
            write_artifacts(Artifacts("import", (Artifact(filename, text=text),)), out_dir)
        except OSError as exc:
            raise StockadeError(f"import: -o {args.output}: cannot write: {exc.strerror}") from None
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
