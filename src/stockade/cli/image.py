"""`stockade image load|ls|rm|inspect|prune`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from stockade.image.limits import Limits, parse_count, parse_size
from stockade.image.store import ENV_STORE, ImageRecord, Store

STORE_HELP = (f"store root (default: ${ENV_STORE}, /var/lib/stockade as root, "
              "$XDG_DATA_HOME/stockade rootless)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=None, help=STORE_HELP)
    # --store is accepted after the subcommand too; SUPPRESS keeps the one given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", type=Path, default=argparse.SUPPRESS, help=STORE_HELP)
    sub = parser.add_subparsers(dest="image_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common])

    p = add("load", "verify and store a docker save archive or OCI layout")
    p.add_argument("file", type=Path, help="tar archive (- for stdin) or OCI layout directory")
    p.add_argument("-t", "--tag", action="append", default=[], help="name the image NAME[:TAG]")
    d = Limits()
    p.add_argument("--max-size", metavar="SIZE", help="most uncompressed layer bytes of the load, "
                   f"all layers (default ${_env('max_size')} or {d.max_size >> 30}G)")
    p.add_argument("--max-entries", metavar="N", help="most tar entries of the load, all layers "
                   f"(default ${_env('max_entries')} or {d.max_entries})")
    p.add_argument("--max-depth", metavar="N", help="most path components of one entry "
                   f"(default ${_env('max_depth')} or {d.max_depth})")
    p.add_argument("--max-path", metavar="BYTES", help="longest entry path or link target "
                   f"(default ${_env('max_path')} or {d.max_path})")
    p = add("ls", "list images")
    p.add_argument("-q", "--quiet", action="store_true", help="IDs only")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p = add("rm", "untag or remove images; unused layers are deleted")
    p.add_argument("refs", nargs="+", metavar="IMAGE", help="NAME[:TAG] or ID")
    p.add_argument("-f", "--force", action="store_true", help="remove an ID with several names")
    p = add("inspect", "image metadata as JSON")
    p.add_argument("refs", nargs="+", metavar="IMAGE", help="NAME[:TAG] or ID")
    p = add("prune", "remove untagged images, unused layers, leftovers")
    p.add_argument("-a", "--all", action="store_true", help="also images with names and kept container layers (unless in use)")


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}GB"


def _inspect(store: Store, rec: ImageRecord) -> dict[str, object]:
    raw = store.raw_config(rec.id)
    return {
        "Id": rec.id,
        "RepoTags": list(rec.names),
        "ManifestDigest": rec.manifest_digest,
        "Created": rec.config.created,
        "Architecture": rec.config.architecture,
        "Os": rec.config.os,
        "Size": rec.size,
        "Layers": list(rec.layers),
        "Config": rec.config.as_dict(),
        "History": raw.get("history", []),
    }


def _env(field: str) -> str:
    return "STOCKADE_IMAGE_" + field.upper()


def _limits(args: argparse.Namespace) -> Limits:
    return Limits.from_env(
        max_size=parse_size(args.max_size, "--max-size") if args.max_size else None,
        max_entries=parse_count(args.max_entries, "--max-entries") if args.max_entries else None,
        max_depth=parse_count(args.max_depth, "--max-depth") if args.max_depth else None,
        max_path=parse_count(args.max_path, "--max-path") if args.max_path else None,
    )


def main(args: argparse.Namespace) -> int:
    store = Store(args.store)
    cmd = args.image_command
    if cmd == "load":
        limits = _limits(args)
        if str(args.file) == "-":
            from stockade.image.spool import load_stream

            loaded = load_stream(store, sys.stdin.buffer, args.tag, limits)
        else:
            loaded = store.load(args.file, args.tag, limits)
        for rec in loaded:
            print(f"Loaded image {rec.id} ({', '.join(rec.names) or 'no name'}), "
                  f"{len(rec.layers)} layers")
        return 0
    if cmd == "ls":
        images = store.images()
        if args.json:
            json.dump([{"Id": r.id, "RepoTags": list(r.names), "Size": r.size,
                        "Layers": len(r.layers), "Loaded": r.loaded} for r in images],
                      sys.stdout, indent=2)
            print()
        elif args.quiet:
            for r in images:
                print(r.short_id)
        else:
            print(f"{'NAME':40} {'IMAGE ID':12}  {'LAYERS':>6}  {'SIZE':>8}  LOADED")
            for r in images:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.loaded))
                for name in r.names or ("<none>",):
                    print(f"{name:40} {r.short_id:12}  {len(r.layers):>6}  {_human(r.size):>8}  {when}")
        return 0
    if cmd == "rm":
        for ref in args.refs:
            for line in store.remove(ref, force=args.force):
                print(line)
        return 0
    if cmd == "inspect":
        docs = [_inspect(store, store.resolve(ref)) for ref in args.refs]
        json.dump(docs, sys.stdout, indent=2)
        print()
        return 0
    if cmd == "prune":
        rep = store.prune(all_images=args.all)
        for i in rep.images:
            print(f"deleted {i}")
        print(f"pruned {len(rep.images)} images, {len(rep.layers)} layers, "
              f"{rep.staging} leftover loads, {rep.containers} leftover containers")
        return 0
    raise AssertionError(cmd)
